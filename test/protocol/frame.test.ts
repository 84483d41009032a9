/**
 * Frame encoding (RFC 6455 section 5.2): headers checked byte by byte, frames decoded back with
 * the tests' own decoder (helpers.ts), never with the parser under test.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeClosePayload, encodeFrame, headerSize } from '../../src/protocol/frame.js';
import { Opcode } from '../../src/protocol/opcodes.js';
import { decodeFrames, seededRandom } from '../helpers.js';

const LENGTHS = [0, 1, 125, 126, 127, 1024, 1025, 65535, 65536, 100_000];

function randomPayload(length: number, seed: number): Buffer {
  const rng = seededRandom(seed);
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

/** The expected header without mask key, written out by hand. */
function expectedHeader(b0: number, length: number, masked: boolean): Buffer {
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) return Buffer.from([b0, maskBit | length]);
  if (length <= 0xffff) return Buffer.from([b0, maskBit | 126, length >> 8, length & 0xff]);
  const hi = Math.floor(length / 2 ** 32);
  const lo = length >>> 0;
  return Buffer.from([
    b0,
    maskBit | 127,
    hi >>> 24,
    (hi >>> 16) & 0xff,
    (hi >>> 8) & 0xff,
    hi & 0xff,
    lo >>> 24,
    (lo >>> 16) & 0xff,
    (lo >>> 8) & 0xff,
    lo & 0xff,
  ]);
}

/** The frame as one buffer, whichever shape encodeFrame returned. */
function flatten(encoded: Buffer | [Buffer, Uint8Array]): Buffer {
  return Array.isArray(encoded) ? Buffer.concat(encoded) : encoded;
}

describe('headerSize', () => {
  it('is 2, 4 or 10 bytes by length class, plus 4 when masked', () => {
    const cases: Array<[number, number]> = [
      [0, 2],
      [1, 2],
      [125, 2],
      [126, 4],
      [127, 4],
      [65535, 4],
      [65536, 10],
      [2 ** 32, 10],
      [2 ** 53 - 1, 10],
    ];
    for (const [length, size] of cases) {
      assert.equal(headerSize(length, false), size, `unmasked ${length}`);
      assert.equal(headerSize(length, true), size + 4, `masked ${length}`);
    }
  });
});

describe('encodeFrame', () => {
  for (const length of LENGTHS) {
    it(`${length}-byte payload: header bytes, size and payload, unmasked and masked`, () => {
      const payload = randomPayload(length, length + 1);
      for (const mask of [false, true]) {
        const frame = flatten(encodeFrame(Opcode.BINARY, payload, { fin: true, mask }));
        const header = expectedHeader(0x82, length, mask);
        assert.equal(frame.length, header.length + (mask ? 4 : 0) + length);
        assert.equal(headerSize(length, mask), header.length + (mask ? 4 : 0));
        assert.deepEqual(frame.subarray(0, header.length), header, `header (mask: ${mask})`);
        const { frames, rest } = decodeFrames(frame);
        assert.equal(rest.length, 0);
        assert.equal(frames.length, 1);
        assert.equal(frames[0].masked, mask);
        assert.equal(frames[0].opcode, Opcode.BINARY);
        assert.ok(frames[0].payload.equals(payload), `payload (mask: ${mask})`);
      }
    });
  }

  it('writes the opcode, FIN and RSV1 bits and never RSV2/RSV3', () => {
    for (const opcode of Object.values(Opcode)) {
      for (const fin of [false, true]) {
        for (const rsv1 of [undefined, false, true]) {
          for (const mask of [false, true]) {
            const frame = flatten(encodeFrame(opcode, Buffer.from('abc'), { fin, rsv1, mask }));
            const expected = (fin ? 0x80 : 0) | (rsv1 === true ? 0x40 : 0) | opcode;
            assert.equal(frame[0], expected, `opcode ${opcode} fin ${fin} rsv1 ${rsv1} mask ${mask}`);
            assert.equal(frame[0] & 0x30, 0);
            assert.equal(frame[1] & 0x80, mask ? 0x80 : 0);
          }
        }
      }
    }
  });

  it('mask defaults to off', () => {
    const frame = flatten(encodeFrame(Opcode.TEXT, Buffer.from('hi'), { fin: true }));
    assert.deepEqual(frame, Buffer.from([0x81, 0x02, 0x68, 0x69]));
  });

  it('masked output unmasks to the payload with the key that follows the header', () => {
    const rng = seededRandom(42);
    for (let length = 0; length <= 300; length++) {
      const payload = randomPayload(length, Math.floor(rng() * 1e9));
      const frame = flatten(encodeFrame(Opcode.TEXT, payload, { fin: true, mask: true }));
      const keyAt = headerSize(length, false);
      const key = frame.subarray(keyAt, keyAt + 4);
      const body = frame.subarray(keyAt + 4);
      assert.equal(body.length, length);
      const unmasked = Buffer.from(body.map((b, i) => b ^ key[i & 3]));
      assert.ok(unmasked.equals(payload), `length ${length}`);
    }
  });

  it('uses a fresh mask key per frame', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const frame = flatten(encodeFrame(Opcode.BINARY, Buffer.alloc(8), { fin: true, mask: true }));
      keys.add(frame.subarray(2, 6).toString('hex'));
      // With an all-zero payload the masked body is the key repeated.
      assert.deepEqual(frame.subarray(6, 10), frame.subarray(2, 6));
      assert.deepEqual(frame.subarray(10, 14), frame.subarray(2, 6));
    }
    assert.ok(keys.size > 1, 'mask keys must vary from frame to frame');
  });

  it("never modifies the caller's payload (Buffer, plain Uint8Array, offset views)", () => {
    for (const length of LENGTHS) {
      const original = randomPayload(length, length + 7);
      const backing = new Uint8Array(length + 5);
      backing.set(original, 3);
      const inputs: Uint8Array[] = [Buffer.from(original), Uint8Array.from(original), backing.subarray(3, 3 + length)];
      for (const input of inputs) {
        for (const mask of [false, true]) {
          const frame = flatten(encodeFrame(Opcode.BINARY, input, { fin: true, mask }));
          assert.ok(Buffer.from(input).equals(original), `payload modified (length ${length}, mask ${mask})`);
          const { frames } = decodeFrames(frame);
          assert.ok(frames[0].payload.equals(original));
        }
      }
      assert.deepEqual([...backing.subarray(0, 3), ...backing.subarray(3 + length)], [0, 0, 0, 0, 0]);
    }
  });

  it('small unmasked payloads come back as one buffer', () => {
    for (const length of [0, 1, 125, 126, 1000]) {
      const encoded = encodeFrame(Opcode.BINARY, randomPayload(length, 1), { fin: true });
      assert.ok(Buffer.isBuffer(encoded), `length ${length}`);
    }
  });

  it('masked payloads always come back as one buffer', () => {
    for (const length of LENGTHS) {
      const encoded = encodeFrame(Opcode.BINARY, randomPayload(length, 2), { fin: true, mask: true });
      assert.ok(Buffer.isBuffer(encoded), `length ${length}`);
    }
  });

  it('large unmasked payloads come back as [header, payload] with the payload not copied', () => {
    for (const length of [65536, 100_000, 1024 * 1024]) {
      const payload = randomPayload(length, 3);
      for (const input of [payload, new Uint8Array(payload.buffer, payload.byteOffset, payload.length)]) {
        const encoded = encodeFrame(Opcode.BINARY, input, { fin: false, rsv1: true });
        assert.ok(Array.isArray(encoded), `length ${length}`);
        const [header, body] = encoded;
        assert.equal(body, input, 'the very same object');
        assert.deepEqual(header, expectedHeader(0x42, length, false));
      }
    }
  });

  it('writes lengths above 2^32 in the 64-bit field (without allocating them)', () => {
    // An unmasked payload over the copy threshold is only measured, never read.
    for (const length of [2 ** 32, 2 ** 32 + 5, 2 ** 40 + 0x01020304, 2 ** 53 - 1]) {
      // Reading anything but its length (copying it, say) throws instead of allocating gigabytes.
      const fake = new Proxy(new Uint8Array(0), {
        get(_target, property) {
          if (property === 'length') return length;
          throw new Error(`payload.${String(property)} read: the payload must not be touched`);
        },
      });
      const encoded = encodeFrame(Opcode.BINARY, fake, { fin: true });
      assert.ok(Array.isArray(encoded));
      assert.equal(encoded[1], fake);
      assert.deepEqual(encoded[0], expectedHeader(0x82, length, false), `length ${length}`);
    }
  });
});

describe('encodeClosePayload', () => {
  it('no code -> empty payload (even with a reason)', () => {
    assert.equal(encodeClosePayload(undefined).length, 0);
    assert.equal(encodeClosePayload(undefined, 'ignored').length, 0);
  });

  it('a code alone -> 2 bytes big-endian', () => {
    assert.deepEqual(encodeClosePayload(1000), Buffer.from([0x03, 0xe8]));
    assert.deepEqual(encodeClosePayload(4999), Buffer.from([0x13, 0x87]));
    assert.deepEqual(encodeClosePayload(1001, ''), Buffer.from([0x03, 0xe9]));
  });

  it('code then the reason as UTF-8', () => {
    assert.deepEqual(encodeClosePayload(1000, 'bye'), Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]));
    const reason = 'ça va ✓ 𝄞';
    assert.deepEqual(
      encodeClosePayload(3000, reason),
      Buffer.concat([Buffer.from([0x0b, 0xb8]), Buffer.from(reason, 'utf8')]),
    );
  });

  it('a reason given as bytes is copied as is', () => {
    const reason = new Uint8Array([0xe2, 0x82, 0xac, 0x41]);
    const payload = encodeClosePayload(1011, reason);
    assert.deepEqual(payload, Buffer.from([0x03, 0xf3, 0xe2, 0x82, 0xac, 0x41]));
    assert.deepEqual([...reason], [0xe2, 0x82, 0xac, 0x41]);
  });

  it('the largest legal close payload (123-byte reason) frames as a 125-byte control frame', () => {
    const payload = encodeClosePayload(1000, 'r'.repeat(123));
    assert.equal(payload.length, 125);
    const frame = flatten(encodeFrame(Opcode.CLOSE, payload, { fin: true }));
    assert.deepEqual(frame.subarray(0, 2), Buffer.from([0x88, 125]));
  });
});
