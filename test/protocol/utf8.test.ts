import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { Buffer, isUtf8 } from 'node:buffer';
import { isValidUtf8, Utf8Validator } from '../../src/protocol/utf8.js';
import { seededRandom } from '../helpers.js';

/** Small seeded PRNG (mulberry32) so every failure reproduces. */
const mulberry32 = seededRandom;

type Rng = () => number;

function randomInt(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}

/**
 * Copies bytes into the middle of a larger buffer padded with 0xFF (never valid UTF-8) and
 * returns a view of it, so a validator that reads outside a view's bounds fails loudly.
 */
function viewOf(bytes: Uint8Array): Uint8Array {
  const backing = new Uint8Array(bytes.length + 8).fill(0xff);
  backing.set(bytes, 4);
  return backing.subarray(4, 4 + bytes.length);
}

/**
 * Reference answer built only on native isUtf8: whether bytes[0, length) can be extended into
 * valid UTF-8. An incomplete final sequence needs at most 3 more bytes; A0, 90 or 80 fits every
 * allowed second-byte range and 80 fits every later position.
 */
function isValidPrefix(bytes: Uint8Array, length: number): boolean {
  const prefix = bytes.subarray(0, length);
  if (isUtf8(prefix)) return true;
  for (let missing = 1; missing <= 3; missing++) {
    for (const second of [0x80, 0x90, 0xa0]) {
      const extended = new Uint8Array(length + missing).fill(0x80);
      extended.set(prefix);
      extended[length] = second;
      if (isUtf8(extended)) return true;
    }
  }
  return false;
}

/** Index of the first byte after which no valid continuation exists, or null. Binary search: prefix validity is monotonic. */
function referenceFirstInvalid(bytes: Uint8Array): number | null {
  if (isValidPrefix(bytes, bytes.length)) return null;
  let low = 1; // smallest length that might be invalid
  let high = bytes.length; // known invalid
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (isValidPrefix(bytes, mid)) low = mid + 1;
    else high = mid;
  }
  return high - 1;
}

/**
 * Feeds bytes cut at `cuts` (sorted piece boundaries, may repeat for empty pieces) and checks
 * each push result against the expected first invalid byte, then `complete` against `valid`.
 */
function assertFeed(
  bytes: Uint8Array,
  cuts: readonly number[],
  firstInvalid: number | null,
  valid: boolean,
  label: string,
): void {
  const validator = new Utf8Validator();
  const view = viewOf(bytes);
  let start = 0;
  for (const end of [...cuts, bytes.length]) {
    const expected = firstInvalid === null || firstInvalid >= end;
    const actual = validator.push(view.subarray(start, end));
    if (actual !== expected) {
      assert.fail(
        `${label}: push of bytes [${start}, ${end}) returned ${actual}, expected ${expected} ` +
          `(first invalid ${firstInvalid}, input ${Buffer.from(bytes).toString('hex')}, cuts ${cuts.join(',')})`,
      );
    }
    start = end;
  }
  assert.equal(
    validator.complete,
    valid,
    `${label}: complete (input ${Buffer.from(bytes).toString('hex')}, cuts ${cuts.join(',')})`,
  );
}

/** Piece boundaries mixing tiny pieces (byte loop) and pieces over 16 bytes (native fast path), with some empty ones. */
function randomCuts(rng: Rng, length: number): number[] {
  const cuts: number[] = [];
  let pos = 0;
  while (true) {
    pos += rng() < 0.5 ? randomInt(rng, 0, 4) : randomInt(rng, 0, 48);
    if (pos >= length) return cuts;
    cuts.push(pos);
  }
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** Whole, byte at a time, every 2-way split, and seeded random splits. */
function assertEverySplit(bytes: Uint8Array, firstInvalid: number | null, valid: boolean, seed: number): void {
  assertFeed(bytes, [], firstInvalid, valid, 'whole');
  assertFeed(bytes, range(1, bytes.length), firstInvalid, valid, 'byte at a time');
  for (let cut = 0; cut <= bytes.length; cut++) assertFeed(bytes, [cut], firstInvalid, valid, `split at ${cut}`);
  const rng = mulberry32(seed);
  for (let i = 0; i < 30; i++)
    assertFeed(bytes, randomCuts(rng, bytes.length), firstInvalid, valid, `random split ${i}`);
}

interface Case {
  name: string;
  bytes: number[];
  /** Index of the first byte that makes the stream impossible to complete validly; by hand. */
  firstInvalid: number | null;
  /** Whole input is valid UTF-8 (false also for a valid but unfinished prefix). */
  valid: boolean;
}

function validCase(name: string, bytes: number[]): Case {
  return { name, bytes, firstInvalid: null, valid: true };
}
function invalidCase(name: string, bytes: number[], firstInvalid: number): Case {
  return { name, bytes, firstInvalid, valid: false };
}
function unfinishedCase(name: string, bytes: number[]): Case {
  return { name, bytes, firstInvalid: null, valid: false };
}

const ascii = (text: string): number[] => [...Buffer.from(text, 'latin1')];

const cases: Case[] = [
  validCase('empty', []),
  validCase('ASCII', ascii('Hello, world!')),
  validCase('U+0000', [0x00]),
  validCase('U+007F', [0x7f]),
  validCase('U+0080', [0xc2, 0x80]),
  validCase('U+00E9 (2-byte)', [0xc3, 0xa9]),
  validCase('U+07FF', [0xdf, 0xbf]),
  validCase('U+0800', [0xe0, 0xa0, 0x80]),
  validCase('U+20AC (3-byte)', [0xe2, 0x82, 0xac]),
  validCase('U+D7FF', [0xed, 0x9f, 0xbf]),
  validCase('U+E000', [0xee, 0x80, 0x80]),
  validCase('U+FFFF', [0xef, 0xbf, 0xbf]),
  validCase('U+10000', [0xf0, 0x90, 0x80, 0x80]),
  validCase('U+1F600 (4-byte)', [0xf0, 0x9f, 0x98, 0x80]),
  validCase('U+40000', [0xf1, 0x80, 0x80, 0x80]),
  validCase('U+10FFFF', [0xf4, 0x8f, 0xbf, 0xbf]),
  validCase('mixed', [0x61, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0x7a]),

  invalidCase('overlong C0 80 (U+0000)', [0xc0, 0x80], 0),
  invalidCase('overlong C0 AF (/)', [0xc0, 0xaf], 0),
  invalidCase('overlong C1 BF', [0xc1, 0xbf], 0),
  invalidCase('overlong E0 80 80', [0xe0, 0x80, 0x80], 1),
  invalidCase('overlong E0 9F BF', [0xe0, 0x9f, 0xbf], 1),
  invalidCase('overlong F0 80 80 80', [0xf0, 0x80, 0x80, 0x80], 1),
  invalidCase('overlong F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf], 1),
  invalidCase('surrogate U+D800', [0xed, 0xa0, 0x80], 1),
  invalidCase('surrogate U+DFFF', [0xed, 0xbf, 0xbf], 1),
  invalidCase('surrogate pair (CESU-8)', [0xed, 0xa0, 0xbd, 0xed, 0xb2, 0xa9], 1),
  invalidCase('surrogate after text', [0x61, 0x62, 0x63, 0xed, 0xa0, 0x80], 4),
  invalidCase('U+110000', [0xf4, 0x90, 0x80, 0x80], 1),
  invalidCase('F4 BF BF BF', [0xf4, 0xbf, 0xbf, 0xbf], 1),
  invalidCase('F5 lead', [0xf5, 0x80, 0x80, 0x80], 0),
  invalidCase('F7 lead', [0xf7, 0xbf, 0xbf, 0xbf], 0),
  invalidCase('F8 lead', [0xf8, 0x88, 0x80, 0x80, 0x80], 0),
  invalidCase('FC lead', [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80], 0),
  invalidCase('FE', [0xfe], 0),
  invalidCase('FF after text', [0x61, 0xff], 1),
  invalidCase('stray 80', [0x80], 0),
  invalidCase('stray BF after text', [0x61, 0xbf], 1),
  invalidCase('extra continuation after 2-byte', [0xc3, 0xa9, 0xa9], 2),
  invalidCase('extra continuation after 3-byte', [0xe2, 0x82, 0xac, 0x80], 3),
  invalidCase('extra continuation after 4-byte', [0xf0, 0x9f, 0x98, 0x80, 0x80], 4),
  invalidCase('truncated 2-byte then ASCII', [0xc3, 0x41], 1),
  invalidCase('truncated 3-byte (1 of 3) then ASCII', [0xe2, 0x41], 1),
  invalidCase('truncated 3-byte (2 of 3) then ASCII', [0xe2, 0x82, 0x41], 2),
  invalidCase('truncated 4-byte (3 of 4) then ASCII', [0xf0, 0x9f, 0x98, 0x41], 3),
  invalidCase('truncated 2-byte then lead', [0xc3, 0xc3, 0xa9], 1),
  invalidCase('truncated 3-byte then lead', [0xe2, 0x82, 0xe2, 0x82, 0xac], 2),

  unfinishedCase('lone 2-byte lead at end', [0xc3]),
  unfinishedCase('lone 3-byte lead at end', [0xe2]),
  unfinishedCase('3-byte missing last', [0xe2, 0x82]),
  unfinishedCase('E0 A0 at end', [0xe0, 0xa0]),
  unfinishedCase('ED 9F at end', [0xed, 0x9f]),
  unfinishedCase('4-byte missing last', [0xf0, 0x9f, 0x98]),
  unfinishedCase('F4 8F BF at end', [0xf4, 0x8f, 0xbf]),
  unfinishedCase('text then partial 4-byte', [0x61, 0x62, 0x63, 0xf0, 0x9f]),
];

/** Over 16 bytes, so cases shifted behind it reach the native fast path and pending-then-fast transitions. */
const padding = [...Buffer.from('padding past the fast-path threshold: é€😀', 'utf8')];

describe('utf8 test table', () => {
  it('boundary code points match the encoder', () => {
    for (const [codePoint, bytes] of [
      [0x7f, [0x7f]],
      [0x80, [0xc2, 0x80]],
      [0x7ff, [0xdf, 0xbf]],
      [0x800, [0xe0, 0xa0, 0x80]],
      [0xd7ff, [0xed, 0x9f, 0xbf]],
      [0xe000, [0xee, 0x80, 0x80]],
      [0xffff, [0xef, 0xbf, 0xbf]],
      [0x10000, [0xf0, 0x90, 0x80, 0x80]],
      [0x10ffff, [0xf4, 0x8f, 0xbf, 0xbf]],
    ] as const) {
      assert.deepEqual([...Buffer.from(String.fromCodePoint(codePoint), 'utf8')], bytes);
    }
  });

  it('hand-computed expectations agree with native isUtf8', () => {
    for (const c of cases) {
      const bytes = Uint8Array.from(c.bytes);
      assert.equal(isUtf8(bytes), c.valid, c.name);
      assert.equal(referenceFirstInvalid(bytes), c.firstInvalid, c.name);
    }
  });
});

describe('isValidUtf8', () => {
  for (const c of cases) {
    it(`${c.valid ? 'accepts' : 'rejects'} ${c.name}`, () => {
      assert.equal(isValidUtf8(Uint8Array.from(c.bytes)), c.valid);
      assert.equal(isValidUtf8(viewOf(Uint8Array.from([...padding, ...c.bytes]))), c.valid);
    });
  }
});

describe('Utf8Validator on every split', () => {
  cases.forEach((c, index) => {
    const verdict = c.valid ? 'valid' : c.firstInvalid === null ? 'unfinished' : `invalid at ${c.firstInvalid}`;
    it(`${c.name}: ${verdict}`, () => {
      assertEverySplit(Uint8Array.from(c.bytes), c.firstInvalid, c.valid, 1000 + index);
      const shiftedFirstInvalid = c.firstInvalid === null ? null : c.firstInvalid + padding.length;
      assertEverySplit(Uint8Array.from([...padding, ...c.bytes]), shiftedFirstInvalid, c.valid, 2000 + index);
    });
  });
});

describe('Utf8Validator behaviour', () => {
  it('fails on the invalid byte even when it ends the piece', () => {
    const validator = new Utf8Validator();
    assert.equal(validator.push(Uint8Array.from([0xe0, 0x80])), false);
    assert.equal(validator.complete, false);

    const long = new Utf8Validator();
    assert.equal(long.push(Uint8Array.from([...padding, 0xf4, 0x90])), false);
  });

  it('a lone lead byte at the end is accepted but not complete', () => {
    const validator = new Utf8Validator();
    assert.equal(validator.push(Uint8Array.from([0x61, 0xf0])), true);
    assert.equal(validator.complete, false);
    assert.equal(validator.push(Uint8Array.from([0x9f, 0x98])), true);
    assert.equal(validator.complete, false);
    assert.equal(validator.push(Uint8Array.from([0x80])), true);
    assert.equal(validator.complete, true);
  });

  it('stays invalid until reset, then validates the next message', () => {
    const validator = new Utf8Validator();
    assert.equal(validator.push(Uint8Array.from([0xc0, 0x80])), false);
    assert.equal(validator.push(Uint8Array.from([0x61])), false);
    assert.equal(validator.push(new Uint8Array(0)), false);
    assert.equal(validator.complete, false);

    validator.reset();
    assert.equal(validator.complete, true);
    assert.equal(validator.push(Buffer.from('ok €', 'utf8')), true);
    assert.equal(validator.complete, true);
  });

  it('reset drops a pending partial sequence', () => {
    const validator = new Utf8Validator();
    assert.equal(validator.push(Uint8Array.from([0xe2, 0x82])), true);
    validator.reset();
    // 0x41 would be invalid had the E2 82 still been pending.
    assert.equal(validator.push(Uint8Array.from([0x41])), true);
    assert.equal(validator.complete, true);
  });

  it('reset clears a narrowed second-byte range', () => {
    const validator = new Utf8Validator();
    assert.equal(validator.push(Uint8Array.from([0xe0])), true); // next byte must be A0..BF
    validator.reset();
    assert.equal(validator.push(Uint8Array.from([0xe1, 0x80, 0x80])), true);
    assert.equal(validator.complete, true);
  });

  it('validates a large message in 64 KiB chunks', () => {
    const text = 'ascii é € 😀 '.repeat(50_000);
    const bytes = Buffer.from(text, 'utf8');
    const validator = new Utf8Validator();
    for (let start = 0; start < bytes.length; start += 65_536) {
      assert.equal(validator.push(bytes.subarray(start, start + 65_536)), true);
    }
    assert.equal(validator.complete, true);
  });
});

/** Random valid code point, any length class, never a surrogate. */
function randomCodePoint(rng: Rng): number {
  switch (randomInt(rng, 0, 4)) {
    case 0:
      return randomInt(rng, 0, 0x7f);
    case 1:
      return randomInt(rng, 0x80, 0x7ff);
    case 2: {
      const codePoint = randomInt(rng, 0x800, 0xffff - 0x800);
      return codePoint >= 0xd800 ? codePoint + 0x800 : codePoint;
    }
    case 3:
      return randomInt(rng, 0x10000, 0x10ffff);
    default:
      return pick(rng, [0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff]);
  }
}

/** Bytes that sit on the edges of Table 3-7 ranges. */
const edgeBytes = [
  0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
];

function randomHighByte(rng: Rng): number {
  return rng() < 0.5 ? randomInt(rng, 0x80, 0xff) : pick(rng, edgeBytes);
}

/**
 * Random bytes biased toward the interesting cases: either valid text with a few corruptions
 * (so invalid bytes land deep inside pieces large enough for the native fast path), or a soup
 * of valid characters, high bytes and range-edge bytes.
 */
function randomByteString(rng: Rng): Uint8Array {
  const targetLength = rng() < 0.7 ? randomInt(rng, 0, 40) : randomInt(rng, 0, 300);
  const bytes: number[] = [];
  if (rng() < 0.5) {
    while (bytes.length < targetLength) bytes.push(...Buffer.from(String.fromCodePoint(randomCodePoint(rng)), 'utf8'));
    const corruptions = randomInt(rng, 0, 2);
    for (let i = 0; i < corruptions && bytes.length > 0; i++) {
      const at = randomInt(rng, 0, bytes.length - 1);
      const mode = randomInt(rng, 0, 2);
      if (mode === 0) bytes[at] = randomHighByte(rng);
      else if (mode === 1) bytes.splice(at, 1);
      else bytes.splice(at, 0, randomHighByte(rng));
    }
  } else {
    while (bytes.length < targetLength) {
      const roll = rng();
      if (roll < 0.4) bytes.push(...Buffer.from(String.fromCodePoint(randomCodePoint(rng)), 'utf8'));
      else if (roll < 0.55) bytes.push(randomInt(rng, 0, 0x7f));
      else bytes.push(randomHighByte(rng));
    }
  }
  return Uint8Array.from(bytes);
}

describe('Utf8Validator differential against native isUtf8', () => {
  it('agrees on 4000 random byte strings in random splits', () => {
    const rng = mulberry32(0xdecaf);
    let validCount = 0;
    let invalidCount = 0;
    let deepFailures = 0;
    for (let i = 0; i < 4000; i++) {
      const bytes = randomByteString(rng);
      const valid = isUtf8(bytes);
      const firstInvalid = referenceFirstInvalid(bytes);
      if (valid) validCount++;
      else if (firstInvalid !== null) {
        invalidCount++;
        if (firstInvalid > 16) deepFailures++;
      }
      assertFeed(bytes, [], firstInvalid, valid, `random ${i} whole`);
      assertFeed(bytes, randomCuts(rng, bytes.length), firstInvalid, valid, `random ${i} split`);
    }
    // Guards against the generator drifting into only one outcome.
    assert.ok(validCount > 400, `valid strings: ${validCount}`);
    assert.ok(invalidCount > 400, `invalid strings: ${invalidCount}`);
    assert.ok(deepFailures > 100, `failures past byte 16: ${deepFailures}`);
  });

  it('accepts 2000 random valid strings encoded by Buffer.from', () => {
    const rng = mulberry32(0xc0ffee);
    for (let i = 0; i < 2000; i++) {
      const length = rng() < 0.7 ? randomInt(rng, 0, 20) : randomInt(rng, 0, 120);
      let text = '';
      for (let j = 0; j < length; j++) text += String.fromCodePoint(randomCodePoint(rng));
      const bytes = Buffer.from(text, 'utf8');
      assert.equal(isValidUtf8(bytes), true);
      assertFeed(bytes, randomCuts(rng, bytes.length), null, true, `valid string ${i}`);
    }
  });
});
