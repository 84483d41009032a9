/**
 * SharedMessage: one message for many connections is framed once, and compressed once per
 * distinct (window bits, level, memLevel), whatever order the connections ask in. Frames are
 * read back with the tests' own decoder and inflated with node:zlib directly.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { SharedMessage } from '../../src/node/shared-message.js';
import { resolveDeflateSettings, type DeflateSettings, type MessageDeflate } from '../../src/node/deflate.js';
import type { EncodedFrame } from '../../src/protocol/frame.js';
import { decodeFrames, type ServerFrame } from '../helpers.js';

/** What compressedFrame() and shouldCompress() read of a connection's deflate state. */
function deflateOf(settings: DeflateSettings, ownWindowBits = 15): MessageDeflate {
  return { settings, ownWindowBits } as unknown as MessageDeflate;
}

function settings(overrides: Partial<DeflateSettings> = {}): DeflateSettings {
  return { ...resolveDeflateSettings({}), ...overrides };
}

/** The one frame `encoded` holds, decoded independently. */
function decodeOne(encoded: EncodedFrame): ServerFrame {
  const bytes = Buffer.isBuffer(encoded) ? encoded : Buffer.concat(encoded);
  const { frames, rest } = decodeFrames(bytes);
  assert.equal(frames.length, 1);
  assert.equal(rest.length, 0);
  return frames[0];
}

/** RFC 7692 7.2.2: append 00 00 ff ff, inflate raw. */
function inflate(body: Buffer, windowBits = 15): Buffer {
  return zlib.inflateRawSync(Buffer.concat([body, Buffer.from([0, 0, 0xff, 0xff])]), {
    windowBits: Math.max(9, windowBits),
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
}

const text = Buffer.from(JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => ({ i, name: `row ${i}` })) }));

describe('SharedMessage: the plain frame', () => {
  it('is built once: every connection gets the same frame object', () => {
    const m = new SharedMessage(text, false);
    const first = m.frame;
    assert.equal(m.frame, first);
    assert.equal(m.frame, first);
  });

  for (const [name, payload, binary, opcode] of [
    ['text', Buffer.from('héllo'), false, 0x1],
    ['binary', Buffer.from([0, 1, 2, 255]), true, 0x2],
    ['empty text', Buffer.alloc(0), false, 0x1],
    ['64 KiB binary (a 64-bit length)', Buffer.alloc(65536, 7), true, 0x2],
  ] as const) {
    it(`${name}: one final, unmasked frame without RSV bits carrying the payload`, () => {
      const f = decodeOne(new SharedMessage(payload, binary).frame);
      assert.deepEqual(
        { fin: f.fin, rsv: f.rsv, opcode: f.opcode, masked: f.masked },
        { fin: true, rsv: 0, opcode, masked: false },
      );
      assert.ok(f.payload.equals(payload));
    });
  }
});

describe('SharedMessage: compression', () => {
  it('shouldCompress: at or over the threshold, unless the publisher said compress: false', () => {
    const d = deflateOf(settings({ threshold: 10 }));
    assert.equal(new SharedMessage(Buffer.alloc(9), true).shouldCompress(d), false);
    assert.equal(new SharedMessage(Buffer.alloc(10), true).shouldCompress(d), true);
    assert.equal(new SharedMessage(Buffer.alloc(10_000), true, false).shouldCompress(d), false);
    assert.equal(new SharedMessage(Buffer.alloc(0), true).shouldCompress(deflateOf(settings({ threshold: 0 }))), true);
  });

  it('shouldCompress: not over publishCompressLimit (compressing is synchronous; 1 MiB by default)', () => {
    const d = deflateOf(settings({ threshold: 0, publishCompressLimit: 1000 }));
    assert.equal(new SharedMessage(Buffer.alloc(1000), true).shouldCompress(d), true);
    assert.equal(new SharedMessage(Buffer.alloc(1001), true).shouldCompress(d), false);
    const defaults = deflateOf(settings());
    assert.equal(new SharedMessage(Buffer.alloc(1024 * 1024), true).shouldCompress(defaults), true);
    assert.equal(new SharedMessage(Buffer.alloc(1024 * 1024 + 1), true).shouldCompress(defaults), false);
  });

  it('the compressed frame: RSV1, same opcode, final, a body that inflates back to the payload on its own', () => {
    for (const binary of [false, true]) {
      const m = new SharedMessage(text, binary);
      const f = decodeOne(m.compressedFrame(deflateOf(settings())));
      assert.deepEqual(
        { fin: f.fin, rsv: f.rsv, opcode: f.opcode, masked: f.masked },
        { fin: true, rsv: 4, opcode: binary ? 0x2 : 0x1, masked: false },
      );
      assert.ok(f.payload.length < text.length / 2, 'compressed');
      assert.ok(inflate(f.payload).equals(text), 'a fresh inflater (no shared context) decodes it');
    }
  });

  it('is compressed once for all connections with the same parameters, even from different settings objects', () => {
    const m = new SharedMessage(text, false);
    const a = m.compressedFrame(deflateOf(settings()));
    assert.equal(m.compressedFrame(deflateOf(settings())), a, 'another connection of the same server');
    assert.equal(m.compressedFrame(deflateOf({ ...settings() })), a, 'an equal settings object (another server)');
    assert.equal(m.compressedFrame(deflateOf(settings({ threshold: 0 }))), a, 'threshold does not change the bytes');
  });

  it('once per parameter set: window bits, level and memLevel each give their own frame, kept when connections alternate', () => {
    const m = new SharedMessage(text, true);
    const base = settings({ level: 6, memLevel: 8 });
    const variants: Array<[string, MessageDeflate]> = [
      ['15 bits', deflateOf(base, 15)],
      ['10 bits', deflateOf(base, 10)],
      ['level 1', deflateOf({ ...base, level: 1 }, 15)],
      ['memLevel 2', deflateOf({ ...base, memLevel: 2 }, 15)],
    ];
    const frames = variants.map(([, d]) => m.compressedFrame(d));
    assert.equal(new Set(frames).size, variants.length, 'one frame per parameter set');
    // Ask again in another order: every answer is the frame made the first time.
    for (const i of [3, 0, 2, 1, 0, 3]) assert.equal(m.compressedFrame(variants[i][1]), frames[i], variants[i][0]);
    variants.forEach(([name, d], i) => {
      const f = decodeOne(frames[i]);
      assert.ok(inflate(f.payload, d.ownWindowBits).equals(text), name);
    });
  });

  it("8 window bits asked: compressed with zlib's smallest raw window (9), so a 9-bit inflater decodes it", () => {
    const m = new SharedMessage(text, false);
    const f = decodeOne(m.compressedFrame(deflateOf(settings(), 8)));
    assert.ok(inflate(f.payload, 9).equals(text));
  });

  it('compressing does not touch the plain frame, and the plain frame does not depend on compression', () => {
    const m = new SharedMessage(text, false);
    const compressed = m.compressedFrame(deflateOf(settings()));
    const plain = m.frame;
    assert.notEqual(plain, compressed);
    assert.ok(decodeOne(plain).payload.equals(text));
    assert.equal(decodeOne(plain).rsv, 0);
  });
});
