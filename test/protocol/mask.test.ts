/**
 * XOR masking (RFC 6455 section 5.3) against a naive byte loop, over the lengths where the
 * implementation switches loops (bytes, 32-bit words, 64-bit words), unaligned views (byteOffset
 * 0..7) and every key offset.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyMask, copyMasked } from '../../src/protocol/mask.js';
import { seededRandom } from '../helpers.js';

function naiveMask(data: Uint8Array, key: Uint8Array, keyOffset: number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ key[(keyOffset + i) % 4];
  return out;
}

function randomBytes(rng: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

const GUARD = 8;

/**
 * `bytes` placed at `byteOffset` inside a larger ArrayBuffer with guard bytes on both sides, so
 * a view starting at any alignment is exercised and writes outside the view are caught.
 */
function placed(bytes: Uint8Array, byteOffset: number, asBuffer: boolean): { view: Uint8Array; backing: Uint8Array } {
  const backing = new Uint8Array(byteOffset + bytes.length + GUARD).fill(0xa5);
  backing.set(bytes, byteOffset);
  const view = asBuffer
    ? Buffer.from(backing.buffer, byteOffset, bytes.length)
    : new Uint8Array(backing.buffer, byteOffset, bytes.length);
  return { view, backing };
}

function assertGuards(backing: Uint8Array, byteOffset: number, length: number, label: string): void {
  for (let i = 0; i < byteOffset; i++) assert.equal(backing[i], 0xa5, `${label}: byte ${i} before the view changed`);
  for (let i = byteOffset + length; i < backing.length; i++)
    assert.equal(backing[i], 0xa5, `${label}: byte ${i} after the view changed`);
}

describe('applyMask', () => {
  it('matches a byte loop for lengths 0..300, byteOffsets 0..7 and keyOffsets 0..7', () => {
    const rng = seededRandom(0x6d61736b);
    let checked = 0;
    for (let length = 0; length <= 300; length++) {
      for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
        const data = randomBytes(rng, length);
        const key = randomBytes(rng, 4);
        for (let keyOffset = 0; keyOffset < 8; keyOffset++) {
          const asBuffer = (length + byteOffset + keyOffset) % 2 === 0;
          const { view, backing } = placed(data, byteOffset, asBuffer);
          applyMask(view, key, keyOffset);
          const label = `length ${length}, byteOffset ${byteOffset}, keyOffset ${keyOffset}`;
          assert.deepEqual(new Uint8Array(view), naiveMask(data, key, keyOffset), label);
          assertGuards(backing, byteOffset, length, label);
          checked++;
        }
      }
    }
    assert.equal(checked, 301 * 8 * 8);
  });

  it('matches a byte loop around the 1 KiB switch to wider words and for large payloads, at every alignment', () => {
    const rng = seededRandom(7);
    const lengths = [...Array.from({ length: 33 }, (_, i) => 1008 + i), 4096, 16384 + 3, 65536 + 7];
    for (const length of lengths) {
      for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
        const data = randomBytes(rng, length);
        const key = randomBytes(rng, 4);
        for (let keyOffset = 0; keyOffset < 8; keyOffset++) {
          if (length > 1040 && keyOffset !== byteOffset) continue; // the big ones: one keyOffset per alignment
          const { view, backing } = placed(data, byteOffset, keyOffset % 2 === 0);
          applyMask(view, key, keyOffset);
          const label = `length ${length}, byteOffset ${byteOffset}, keyOffset ${keyOffset}`;
          assert.deepEqual(new Uint8Array(view), naiveMask(data, key, keyOffset), label);
          assertGuards(backing, byteOffset, length, label);
        }
      }
    }
  });

  it('keyOffset defaults to 0', () => {
    const data = Uint8Array.from({ length: 40 }, (_, i) => i);
    const key = Uint8Array.from([1, 2, 3, 4]);
    const copy = data.slice();
    applyMask(copy, key);
    assert.deepEqual(copy, naiveMask(data, key, 0));
  });

  it('does not modify the key', () => {
    const key = Uint8Array.from([0xde, 0xad, 0xbe, 0xef]);
    applyMask(new Uint8Array(100), key, 3);
    assert.deepEqual([...key], [0xde, 0xad, 0xbe, 0xef]);
  });

  it('applying it twice restores the input', () => {
    const rng = seededRandom(99);
    for (let length = 0; length <= 300; length += 7) {
      for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
        const data = randomBytes(rng, length);
        const key = randomBytes(rng, 4);
        const keyOffset = Math.floor(rng() * 8);
        const { view } = placed(data, byteOffset, false);
        applyMask(view, key, keyOffset);
        if (length >= 4)
          assert.notDeepEqual(new Uint8Array(view), data, 'a random key changes at least one of 4+ bytes');
        applyMask(view, key, keyOffset);
        assert.deepEqual(
          new Uint8Array(view),
          data,
          `length ${length}, byteOffset ${byteOffset}, keyOffset ${keyOffset}`,
        );
      }
    }
  });

  it('a payload masked in pieces (keyOffset = piece start) equals one pass over the whole', () => {
    const rng = seededRandom(1234);
    for (let round = 0; round < 200; round++) {
      const length = Math.floor(rng() * 400);
      const data = randomBytes(rng, length);
      const key = randomBytes(rng, 4);
      const whole = data.slice();
      applyMask(whole, key, 0);
      const pieces = data.slice();
      const cuts = [
        0,
        ...Array.from({ length: 3 }, () => Math.floor(rng() * (length + 1))).sort((a, b) => a - b),
        length,
      ];
      for (let i = 0; i + 1 < cuts.length; i++) applyMask(pieces.subarray(cuts[i], cuts[i + 1]), key, cuts[i]);
      assert.deepEqual(pieces, whole, `round ${round}: cuts ${cuts.join(',')}`);
    }
  });
});

describe('copyMasked', () => {
  it('writes the masked source at dstOffset and leaves the source and the rest of dst alone', () => {
    const rng = seededRandom(5);
    for (const length of [0, 1, 3, 31, 32, 33, 100, 1000]) {
      for (let dstOffset = 0; dstOffset < 8; dstOffset++) {
        const src = randomBytes(rng, length);
        const original = src.slice();
        const key = randomBytes(rng, 4);
        const dst = new Uint8Array(dstOffset + length + GUARD).fill(0xa5);
        copyMasked(src, dst, dstOffset, key);
        const label = `length ${length}, dstOffset ${dstOffset}`;
        assert.deepEqual(src, original, `${label}: source modified`);
        assert.deepEqual(dst.subarray(dstOffset, dstOffset + length), naiveMask(src, key, 0), label);
        assertGuards(dst, dstOffset, length, label);
      }
    }
  });
});
