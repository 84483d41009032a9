/**
 * UTF-8 validation for text messages. RFC 6455 section 8.1 requires failing the connection as
 * soon as invalid UTF-8 arrives, so text payloads are checked piece by piece as they come in,
 * not once the whole message is buffered.
 *
 * Well-formed sequences follow Unicode Table 3-7:
 *
 *   U+0000..U+007F     00..7F
 *   U+0080..U+07FF     C2..DF  80..BF
 *   U+0800..U+0FFF     E0      A0..BF  80..BF
 *   U+1000..U+CFFF     E1..EC  80..BF  80..BF
 *   U+D000..U+D7FF     ED      80..9F  80..BF
 *   U+E000..U+FFFF     EE..EF  80..BF  80..BF
 *   U+10000..U+3FFFF   F0      90..BF  80..BF  80..BF
 *   U+40000..U+FFFFF   F1..F3  80..BF  80..BF  80..BF
 *   U+100000..U+10FFFF F4      80..8F  80..BF  80..BF
 *
 * Only the second byte of a sequence has a range other than 80..BF; that is where overlongs
 * (E0, F0), surrogates (ED) and code points above U+10FFFF (F4) are ruled out.
 */

import { isUtf8 } from 'node:buffer';

/** Whole-buffer check. Use node:buffer's native `isUtf8` (Node >= 18.14). */
export function isValidUtf8(buf: Uint8Array): boolean {
  return isUtf8(buf);
}

/**
 * Below this many bytes the byte loop is cheaper than finding the tail and calling into native
 * code; above it the native check wins by a wide margin.
 */
const FAST_PATH_MIN_BYTES = 16;

/** `remaining` value once invalid input has been seen; sticky until reset(). */
const INVALID = -1;

/** Validates a byte stream delivered in pieces (fragments, or chunks of fragments). */
export class Utf8Validator {
  /** Continuation bytes still expected for the current sequence, or INVALID. */
  #remaining = 0;
  /** Allowed range of the next continuation byte (narrower than 80..BF only for the 2nd byte). */
  #nextMin = 0x80;
  #nextMax = 0xbf;

  /**
   * Feed the next piece. Returns false as soon as the stream so far cannot be a prefix of valid
   * UTF-8 (e.g. E0 80 fails on the 80, even if it is the last byte of the piece). Once false,
   * stays false until reset().
   */
  push(buf: Uint8Array): boolean {
    if (this.#remaining === INVALID) return false;
    const end = buf.length;
    let pos = 0;
    // A sequence split across pieces must be finished byte by byte: the native check only
    // accepts whole characters.
    while (this.#remaining > 0 && pos < end) {
      if (!this.#step(buf[pos])) return false;
      pos++;
    }
    if (end - pos > FAST_PATH_MIN_BYTES) return this.#pushAtBoundary(buf, pos, end);
    return this.#scan(buf, pos, end);
  }

  /**
   * True when all input so far ends on a character boundary (no partial sequence pending) and
   * nothing was invalid. Call at end of message.
   */
  get complete(): boolean {
    return this.#remaining === 0;
  }

  /** Back to the initial state, for the next message. */
  reset(): void {
    this.#remaining = 0;
    this.#nextMin = 0x80;
    this.#nextMax = 0xbf;
  }

  /**
   * Fast path for buf[start, end) beginning on a character boundary: the body up to the last
   * (possibly incomplete) sequence goes to native `isUtf8`, and only that sequence, at most
   * 3 bytes, goes through the state machine so its partial state carries into the next piece.
   */
  #pushAtBoundary(buf: Uint8Array, start: number, end: number): boolean {
    const tailStart = incompleteTailStart(buf, start, end);
    if (tailStart > start) {
      // subarray is a view, not a copy; skipped when the whole buffer is the body.
      const body = start === 0 && tailStart === buf.length ? buf : buf.subarray(start, tailStart);
      if (!isUtf8(body)) {
        this.#remaining = INVALID;
        return false;
      }
    }
    return this.#scan(buf, tailStart, end);
  }

  /** Runs the state machine over buf[start, end). */
  #scan(buf: Uint8Array, start: number, end: number): boolean {
    for (let i = start; i < end; i++) {
      const byte = buf[i];
      // ASCII at a boundary is the common case; skip the call.
      if (byte < 0x80 && this.#remaining === 0) continue;
      if (!this.#step(byte)) return false;
    }
    return true;
  }

  /**
   * Advances the state machine by one byte; on invalid input records it and returns false.
   * Never called for ASCII between sequences: both callers skip it (#scan) or only call it
   * inside a sequence (push), so a byte here either continues a sequence or starts one.
   */
  #step(byte: number): boolean {
    if (this.#remaining > 0) {
      if (byte < this.#nextMin || byte > this.#nextMax) return this.#fail();
      this.#remaining--;
      this.#nextMin = 0x80;
      this.#nextMax = 0xbf;
      return true;
    }
    // C0 and C1 could only start overlong 2-byte forms; 80..BF are stray continuations.
    if (byte < 0xc2) return this.#fail();
    if (byte < 0xe0) {
      this.#remaining = 1;
      return true;
    }
    if (byte < 0xf0) {
      this.#remaining = 2;
      if (byte === 0xe0)
        this.#nextMin = 0xa0; // below A0 is an overlong 3-byte form
      else if (byte === 0xed) this.#nextMax = 0x9f; // above 9F encodes a surrogate
      return true;
    }
    if (byte < 0xf5) {
      this.#remaining = 3;
      if (byte === 0xf0)
        this.#nextMin = 0x90; // below 90 is an overlong 4-byte form
      else if (byte === 0xf4) this.#nextMax = 0x8f; // above 8F is past U+10FFFF
      return true;
    }
    // F5..FF would encode past U+10FFFF.
    return this.#fail();
  }

  #fail(): false {
    this.#remaining = INVALID;
    return false;
  }
}

/**
 * Where the last sequence of buf[start, end) starts if it is cut off by the end of the piece,
 * else `end`. An incomplete sequence is at most 3 bytes, so only the last 3 can hold its lead;
 * finding none there means the piece ends on a complete sequence or is invalid. Invalid shapes
 * (stray continuations, bad lead bytes, too many continuations) return `end` so the native
 * check sees and rejects them.
 */
function incompleteTailStart(buf: Uint8Array, start: number, end: number): number {
  const lookbackLimit = Math.max(start, end - 3);
  for (let i = end - 1; i >= lookbackLimit; i--) {
    const byte = buf[i];
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    return end - i < sequenceLength(byte) ? i : end;
  }
  return end;
}

/** Byte count of the sequence a lead byte starts; 1 for bytes that cannot start one. */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 1;
}
