/**
 * FrameParser (RFC 6455 sections 5 and 7). Every case is fed three ways: the whole input in one
 * push, 1 byte per push, and several seeded random splits; all must yield identical events.
 * Where it matters a case also states `at`: how many input bytes must have been pushed for each
 * event, and the event must fire in the very push that delivers that byte (not earlier, not later).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { FrameParser, type FrameParserHandler, type FrameParserOptions } from '../../src/protocol/parser.js';
import { ProtocolError, type ProtocolErrorCode } from '../../src/protocol/errors.js';
import { closeCodeIsValid } from '../../src/protocol/close-codes.js';
import { encodeFrame } from '../../src/protocol/frame.js';
import { Opcode } from '../../src/protocol/opcodes.js';
import { clientFrame, closePayload, seededRandom } from '../helpers.js';
import { isUtf8Prefix } from '../fuzz-model.js';

// ---------------------------------------------------------------------------------------------
// Events and the recording handler

type Event =
  | { type: 'message'; data: string; binary: boolean }
  | { type: 'ping'; data: string }
  | { type: 'pong'; data: string }
  | { type: 'close'; code: number; reason: string }
  | { type: 'error'; code: ProtocolErrorCode; closeCode: number };

type Bytes = string | Uint8Array | readonly number[];

/** Payloads are compared as hex: readable in a diff, and a copy, so later mutation cannot hide. */
function hex(bytes: Bytes): string {
  return (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes)).toString('hex');
}

const text = (data: Bytes): Event => ({ type: 'message', data: hex(data), binary: false });
const binary = (data: Bytes): Event => ({ type: 'message', data: hex(data), binary: true });
const ping = (data: Bytes = ''): Event => ({ type: 'ping', data: hex(data) });
const pong = (data: Bytes = ''): Event => ({ type: 'pong', data: hex(data) });
const close = (code: number, reason: Bytes = ''): Event => ({ type: 'close', code, reason: hex(reason) });
const error = (code: ProtocolErrorCode, closeCode = 1002): Event => ({ type: 'error', code, closeCode });

class Recorder implements FrameParserHandler {
  readonly events: Event[] = [];
  /** For each event, the input range [start, end) of the push during which it fired. */
  readonly spans: Array<[number, number]> = [];
  /** Message buffers exactly as the parser handed them over. */
  readonly messageBuffers: Buffer[] = [];
  readonly errors: ProtocolError[] = [];
  pushStart = 0;
  pushEnd = 0;
  parser: FrameParser | undefined;

  private record(event: Event): void {
    this.events.push(event);
    this.spans.push([this.pushStart, this.pushEnd]);
  }

  onMessage(data: Buffer, isBinary: boolean): void {
    this.messageBuffers.push(data);
    this.record({ type: 'message', data: hex(data), binary: isBinary });
  }

  onPing(data: Buffer): void {
    this.record({ type: 'ping', data: hex(data) });
  }

  onPong(data: Buffer): void {
    this.record({ type: 'pong', data: hex(data) });
  }

  onClose(code: number, reason: Buffer): void {
    this.record({ type: 'close', code, reason: hex(reason) });
  }

  onProtocolError(err: ProtocolError): void {
    assert.ok(err instanceof ProtocolError);
    this.errors.push(err);
    this.record({ type: 'error', code: err.code, closeCode: err.closeCode });
  }
}

const SERVER: FrameParserOptions = { expectMasked: true, maxPayload: 0 };
const CLIENT: FrameParserOptions = { expectMasked: false, maxPayload: 0 };

/**
 * Feed `bytes` cut at the positions in `splits` (strictly increasing, inside the input). The
 * parser unmasks in place, so every run works on its own copy of the input.
 */
function feedAll(bytes: Uint8Array, splits: readonly number[], options: FrameParserOptions = SERVER): Recorder {
  const input = Buffer.from(bytes);
  const rec = new Recorder();
  const parser = new FrameParser(rec, options);
  rec.parser = parser;
  let start = 0;
  for (const cut of [...splits, input.length]) {
    assert.ok(cut > start || (cut === 0 && input.length === 0), `bad split ${cut} after ${start}`);
    rec.pushStart = start;
    rec.pushEnd = cut;
    parser.push(input.subarray(start, cut));
    start = cut;
  }
  return rec;
}

function bytewiseSplits(length: number): number[] {
  const splits: number[] = [];
  for (let i = 1; i < length; i++) splits.push(i);
  return splits;
}

/** Seeded random cut positions: odd seeds walk in small steps (short inputs), even seeds cut a few times anywhere. */
function randomSplits(length: number, seed: number): number[] {
  if (length < 2) return [];
  const rng = seededRandom(seed * 7919 + length);
  if (seed % 2 === 1 && length <= 4096) {
    const splits: number[] = [];
    const maxStep = 2 + seed;
    for (let pos = 1 + Math.floor(rng() * maxStep); pos < length; pos += 1 + Math.floor(rng() * maxStep))
      splits.push(pos);
    return splits;
  }
  const count = 1 + Math.floor(rng() * Math.min(length - 1, 48));
  const cuts = new Set<number>();
  for (let i = 0; i < count; i++) cuts.add(1 + Math.floor(rng() * (length - 1)));
  return [...cuts].sort((a, b) => a - b);
}

const SEEDS = [1, 2, 3, 4, 5, 6];

function splitWays(length: number, bytewise = true): Array<[string, number[]]> {
  const ways: Array<[string, number[]]> = [['in one push', []]];
  if (bytewise) ways.push(['1 byte per push', bytewiseSplits(length)]);
  for (const seed of SEEDS) ways.push([`random split (seed ${seed})`, randomSplits(length, seed)]);
  return ways;
}

/** A valid frame appended after a terminal event: it must produce nothing. */
const TRAILER_SERVER = clientFrame({ opcode: Opcode.TEXT, payload: 'after' });
const TRAILER_CLIENT = clientFrame({ opcode: Opcode.TEXT, payload: 'after', mask: false });

/**
 * Feed `bytes` every way and check the events. `at[i]`: the input length at which event i must
 * fire. When the last event is terminal (close or error) the parser must be stopped, and bytes
 * after the input must change nothing.
 */
function expectEvents(
  bytes: Uint8Array,
  expected: readonly Event[],
  options: FrameParserOptions = SERVER,
  at?: readonly number[],
): Recorder {
  let first: Recorder | undefined;
  const terminal = expected.length > 0 && (expected.at(-1)!.type === 'error' || expected.at(-1)!.type === 'close');
  if (at) assert.equal(at.length, expected.length, 'test bug: one `at` per expected event');
  for (const [way, splits] of splitWays(bytes.length)) {
    const rec = feedAll(bytes, splits, options);
    assert.deepEqual(rec.events, expected, `fed ${way}`);
    assert.equal(rec.parser!.stopped, terminal, `fed ${way}: stopped`);
    if (at) {
      rec.spans.forEach(([start, end], i) => {
        assert.ok(
          start < at[i] && at[i] <= end,
          `fed ${way}: event ${i} (${expected[i].type}) must fire in the push delivering byte ${at[i]}, fired in push [${start}, ${end})`,
        );
      });
    }
    first ??= rec;
  }
  if (terminal) {
    const trailer = options.expectMasked ? TRAILER_SERVER : TRAILER_CLIENT;
    const rec = feedAll(Buffer.concat([bytes, trailer]), [bytes.length], options);
    assert.deepEqual(rec.events, expected, 'bytes after a terminal event must be ignored');
    const garbage = feedAll(Buffer.concat([bytes, Buffer.from([0xff, 0xff, 0xff, 0xff])]), [], options);
    assert.deepEqual(garbage.events, expected, 'garbage after a terminal event must be ignored');
  }
  return first!;
}

// ---------------------------------------------------------------------------------------------
// Frame building

const { CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG } = Opcode;

function toPayload(data: Bytes): Uint8Array | string {
  return typeof data === 'string' || data instanceof Uint8Array ? data : Uint8Array.from(data);
}

/** A masked (client-to-server) frame. */
function m(opcode: number, payload: Bytes = '', fin = true): Buffer {
  return clientFrame({ opcode, payload: toPayload(payload), fin });
}

/** An unmasked (server-to-client) frame. */
function u(opcode: number, payload: Bytes = '', fin = true): Buffer {
  return clientFrame({ opcode, payload: toPayload(payload), fin, mask: false });
}

/** Input length after each frame. */
function ends(frames: readonly Uint8Array[]): number[] {
  let total = 0;
  return frames.map((f) => (total += f.length));
}

function randomPayload(length: number, seed: number): Buffer {
  const rng = seededRandom(seed);
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

/** A header with a hand-written 64-bit length (8 bytes, big-endian), masked or not. */
function header64(opcode: number, lengthBytes: readonly number[], masked: boolean): Buffer {
  assert.equal(lengthBytes.length, 8);
  return Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | 127, ...lengthBytes]);
}

/**
 * Where a text message must fail, by an oracle independent of the parser (native isUtf8 via
 * isUtf8Prefix): the input length at the first payload byte after which the message's bytes so
 * far cannot begin valid UTF-8, or, when every prefix can, the end of the last text frame (the
 * message ends inside a character). `frames[i]` is a frame of the input, in order, and `text[i]`
 * its payload when it belongs to the text message (null for interleaved control frames).
 */
function utf8FailsAt(frames: readonly Uint8Array[], text: ReadonlyArray<Bytes | null>): number {
  let end = 0;
  let lastTextEnd = 0;
  let soFar = Buffer.alloc(0);
  for (let i = 0; i < frames.length; i++) {
    end += frames[i].length;
    const part = text[i];
    if (part === null || part === undefined) continue;
    const bytes = Buffer.from(toPayload(part));
    const payloadStart = end - bytes.length;
    for (let k = 1; k <= bytes.length; k++) {
      if (!isUtf8Prefix(Buffer.concat([soFar, bytes.subarray(0, k)]))) return payloadStart + k;
    }
    soFar = Buffer.concat([soFar, bytes]);
    lastTextEnd = end;
  }
  return lastTextEnd;
}

// ---------------------------------------------------------------------------------------------

describe('FrameParser: test helpers', () => {
  it('feedAll feeds the exact input for every way it is split', () => {
    const bytes = Buffer.concat([m(TEXT, 'hello'), m(BINARY, [1, 2, 3]), m(PING, 'p')]);
    for (const [way, splits] of splitWays(bytes.length)) {
      const rec = feedAll(bytes, splits);
      assert.deepEqual(rec.events, [text('hello'), binary([1, 2, 3]), ping('p')], way);
      assert.equal(rec.spans.at(-1)![1], bytes.length, way);
    }
  });
});

describe('FrameParser: RFC 6455 section 5.7 examples', () => {
  const hello = [0x48, 0x65, 0x6c, 0x6c, 0x6f];
  it('single-frame unmasked text (client side)', () => {
    expectEvents(Buffer.from([0x81, 0x05, ...hello]), [text('Hello')], CLIENT, [7]);
  });
  it('single-frame masked text (server side)', () => {
    expectEvents(
      Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
      [text('Hello')],
      SERVER,
      [11],
    );
  });
  it('fragmented unmasked text', () => {
    expectEvents(Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]), [text('Hello')], CLIENT, [9]);
  });
  it('unmasked ping and masked pong', () => {
    expectEvents(Buffer.from([0x89, 0x05, ...hello]), [ping('Hello')], CLIENT, [7]);
    expectEvents(
      Buffer.from([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
      [pong('Hello')],
      SERVER,
      [11],
    );
  });
  it('256 bytes binary in a 16-bit length, 64 KiB binary in a 64-bit length', () => {
    const p256 = randomPayload(256, 256);
    expectEvents(Buffer.concat([Buffer.from([0x82, 0x7e, 0x01, 0x00]), p256]), [binary(p256)], CLIENT, [260]);
    const p64k = randomPayload(65536, 65536);
    expectEvents(
      Buffer.concat([header64(BINARY, [0, 0, 0, 0, 0, 1, 0, 0], false), p64k]),
      [binary(p64k)],
      CLIENT,
      [65546],
    );
  });
});

describe('FrameParser: masking direction', () => {
  it('server side (expectMasked: true) accepts masked frames of every kind', () => {
    const frames = [
      m(TEXT, 'hi'),
      m(BINARY, [1, 2, 3]),
      m(PING, 'p'),
      m(PONG, 'q'),
      m(TEXT, 'frag', false),
      m(CONTINUATION, 'ment'),
      m(CLOSE, closePayload(1000, 'bye')),
    ];
    const e = ends(frames);
    expectEvents(
      Buffer.concat(frames),
      [text('hi'), binary([1, 2, 3]), ping('p'), pong('q'), text('fragment'), close(1000, 'bye')],
      SERVER,
      [e[0], e[1], e[2], e[3], e[5], e[6]],
    );
  });

  it('client side (expectMasked: false) accepts unmasked frames of every kind', () => {
    const frames = [
      u(TEXT, 'hi'),
      u(BINARY, [1, 2, 3]),
      u(PING, 'p'),
      u(PONG, 'q'),
      u(TEXT, 'frag', false),
      u(CONTINUATION, 'ment'),
      u(CLOSE, closePayload(1000, 'bye')),
    ];
    const e = ends(frames);
    expectEvents(
      Buffer.concat(frames),
      [text('hi'), binary([1, 2, 3]), ping('p'), pong('q'), text('fragment'), close(1000, 'bye')],
      CLIENT,
      [e[0], e[1], e[2], e[3], e[5], e[6]],
    );
  });

  for (const opcode of [TEXT, BINARY, CLOSE, PING, PONG]) {
    for (const payload of ['', 'abc']) {
      it(`unmasked opcode ${opcode} (${payload.length}-byte payload) to a server -> WS_ERR_EXPECTED_MASK 1002 after 2 bytes`, () => {
        expectEvents(u(opcode, payload), [error('WS_ERR_EXPECTED_MASK')], SERVER, [2]);
      });
      it(`masked opcode ${opcode} (${payload.length}-byte payload) to a client -> WS_ERR_UNEXPECTED_MASK 1002 after 2 bytes`, () => {
        expectEvents(m(opcode, payload), [error('WS_ERR_UNEXPECTED_MASK')], CLIENT, [2]);
      });
    }
  }

  it('wrong direction on a continuation frame', () => {
    const s = [m(TEXT, 'ab', false), u(CONTINUATION, 'cd')];
    expectEvents(Buffer.concat(s), [error('WS_ERR_EXPECTED_MASK')], SERVER, [ends(s)[0] + 2]);
    const c = [u(TEXT, 'ab', false), m(CONTINUATION, 'cd')];
    expectEvents(Buffer.concat(c), [error('WS_ERR_UNEXPECTED_MASK')], CLIENT, [ends(c)[0] + 2]);
  });

  it('wrong direction after valid frames keeps the earlier events', () => {
    const frames = [m(TEXT, 'ok'), m(PING, ''), u(TEXT, 'bad')];
    const e = ends(frames);
    expectEvents(Buffer.concat(frames), [text('ok'), ping(), error('WS_ERR_EXPECTED_MASK')], SERVER, [
      e[0],
      e[1],
      e[1] + 2,
    ]);
  });
});

describe('FrameParser: payload lengths', () => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536]) {
    for (const [side, options, masked] of [
      ['server', SERVER, true],
      ['client', CLIENT, false],
    ] as const) {
      it(`${length}-byte binary and text messages (${side} side)`, () => {
        const payload = randomPayload(length, length + 1);
        const bin = clientFrame({ opcode: BINARY, payload, mask: masked });
        const headerLength = (length < 126 ? 2 : length <= 0xffff ? 4 : 10) + (masked ? 4 : 0);
        assert.equal(bin.length, headerLength + length);
        expectEvents(bin, [binary(payload)], options, [bin.length]);
        const str = 'é'.repeat(length >> 1) + 'x'.repeat(length & 1);
        const txt = clientFrame({ opcode: TEXT, payload: str, mask: masked });
        expectEvents(Buffer.concat([txt, bin]), [text(str), binary(payload)], options, [
          txt.length,
          txt.length + bin.length,
        ]);
      });
    }
  }

  const MIB = 1024 * 1024 + 7;
  it('a ~1 MiB masked payload (64-bit length) in one push and random splits', () => {
    const payload = randomPayload(MIB, 1);
    const bytes = Buffer.concat([clientFrame({ opcode: BINARY, payload }), m(PING, 'after')]);
    for (const [way, splits] of splitWays(bytes.length, false)) {
      const rec = feedAll(bytes, splits);
      assert.equal(rec.events.length, 2, way);
      assert.deepEqual(rec.events, [binary(payload), ping('after')], way);
    }
  });

  // A hang guard, not a speed test: a parser quadratic in the number of chunks took ~350 s here;
  // a linear one takes about 0.5 s. The bound only keeps such a regression from hanging the run.
  it('a ~1 MiB masked payload fed 1 byte per push does not hang (in a worker, bounded at 30 s)', async () => {
    const payload = randomPayload(MIB, 1);
    const bytes = Buffer.concat([clientFrame({ opcode: BINARY, payload }), m(PING, 'after')]);
    const events = await feedBytewiseInWorker(bytes, SERVER, 30_000);
    assert.deepEqual(events, [binary(payload), ping('after')]);
  });
});

describe('FrameParser: non-minimal length encodings', () => {
  for (const length of [0, 1, 125]) {
    it(`${length} in a 16-bit length -> WS_ERR_NON_MINIMAL_LENGTH 1002`, () => {
      const payload = randomPayload(length, 3);
      expectEvents(
        clientFrame({ opcode: BINARY, payload, lengthEncoding: 16 }),
        [error('WS_ERR_NON_MINIMAL_LENGTH')],
        SERVER,
        [4],
      );
      expectEvents(
        clientFrame({ opcode: TEXT, payload: 'a'.repeat(length), lengthEncoding: 16, mask: false }),
        [error('WS_ERR_NON_MINIMAL_LENGTH')],
        CLIENT,
        [4],
      );
    });
  }
  for (const length of [0, 125, 126, 65535]) {
    it(`${length} in a 64-bit length -> WS_ERR_NON_MINIMAL_LENGTH 1002`, () => {
      const payload = randomPayload(length, 4);
      expectEvents(
        clientFrame({ opcode: BINARY, payload, lengthEncoding: 64 }),
        [error('WS_ERR_NON_MINIMAL_LENGTH')],
        SERVER,
        [10],
      );
      expectEvents(
        clientFrame({ opcode: BINARY, payload, lengthEncoding: 64, mask: false }),
        [error('WS_ERR_NON_MINIMAL_LENGTH')],
        CLIENT,
        [10],
      );
    });
  }
  it('the smallest length of each encoding is accepted (126 in 16 bits, 65536 in 64 bits)', () => {
    const p126 = randomPayload(126, 5);
    expectEvents(clientFrame({ opcode: BINARY, payload: p126, lengthEncoding: 16 }), [binary(p126)]);
    const p64k = randomPayload(65536, 6);
    expectEvents(clientFrame({ opcode: BINARY, payload: p64k, lengthEncoding: 64 }), [binary(p64k)]);
  });
  it('a continuation frame with a non-minimal length', () => {
    const frames = [m(TEXT, 'ab', false), clientFrame({ opcode: CONTINUATION, payload: 'cd', lengthEncoding: 16 })];
    expectEvents(Buffer.concat(frames), [error('WS_ERR_NON_MINIMAL_LENGTH')], SERVER, [ends(frames)[0] + 4]);
  });
});

describe('FrameParser: 64-bit lengths and maxPayload', () => {
  for (const [name, lengthBytes] of [
    ['0x8000000000000000', [0x80, 0, 0, 0, 0, 0, 0, 0]],
    ['0x8000000000000001', [0x80, 0, 0, 0, 0, 0, 0, 1]],
    ['0xFFFFFFFFFFFFFFFF', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
  ] as const) {
    it(`64-bit length with the most significant bit set (${name}) -> WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH 1002`, () => {
      const masked = Buffer.concat([header64(BINARY, lengthBytes, true), Buffer.from([1, 2, 3, 4, 5, 6])]);
      expectEvents(masked, [error('WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH')], SERVER, [10]);
      expectEvents(
        masked,
        [error('WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH')],
        { expectMasked: true, maxPayload: 1000 },
        [10],
      );
      const unmasked = Buffer.concat([header64(TEXT, lengthBytes, false), Buffer.from('abc')]);
      expectEvents(unmasked, [error('WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH')], CLIENT, [10]);
    });
  }

  it('a length above 2^53 - 1 -> 1009 even without maxPayload', () => {
    const bytes = header64(BINARY, [0x00, 0x20, 0, 0, 0, 0, 0, 0], true);
    expectEvents(bytes, [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)], SERVER, [10]);
    expectEvents(
      header64(BINARY, [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], false),
      [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)],
      CLIENT,
      [10],
    );
  });

  it('without maxPayload, a length up to the largest possible Buffer is accepted (the parser waits); beyond it 1009', () => {
    // 2^32 - 1 (kMaxLength is 2^32 on 64-bit Node 20): waits for the payload.
    const bytes = Buffer.concat([
      header64(BINARY, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], true),
      Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]),
    ]);
    expectEvents(bytes, [], SERVER);
    // 2^53 - 1 could never be allocated: refused at once instead of failing later.
    const huge = Buffer.concat([
      header64(BINARY, [0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], true),
      Buffer.from([1, 2, 3, 4]),
    ]);
    expectEvents(huge, [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)], SERVER, [10]);
  });

  it('a huge length over maxPayload fails with 1009 as soon as the length is read, before any payload', () => {
    const options = { expectMasked: true, maxPayload: 1024 * 1024 };
    const header = header64(BINARY, [0, 0, 0, 1, 0, 0, 0, 0], true); // 2^32 bytes
    // Only the header: no mask key, no payload.
    expectEvents(header, [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)], options, [10]);
    // Header, mask key and a little payload: still raised at byte 10.
    expectEvents(
      Buffer.concat([header, Buffer.from([9, 9, 9, 9, 1, 2, 3])]),
      [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)],
      options,
      [10],
    );
    // Pushed by hand, header only.
    const rec = new Recorder();
    const parser = new FrameParser(rec, options);
    parser.push(Buffer.from(header));
    assert.deepEqual(rec.events, [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)]);
    assert.equal(parser.stopped, true);
    // Client side, 16-bit length.
    expectEvents(
      Buffer.from([0x82, 126, 0xff, 0xff]),
      [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)],
      { expectMasked: false, maxPayload: 1000 },
      [4],
    );
  });

  it('maxPayload: a message of exactly maxPayload passes, one byte more fails at its header', () => {
    const options = { expectMasked: true, maxPayload: 100 };
    const p100 = randomPayload(100, 7);
    expectEvents(clientFrame({ opcode: BINARY, payload: p100 }), [binary(p100)], options);
    expectEvents(clientFrame({ opcode: TEXT, payload: 'a'.repeat(100) }), [text('a'.repeat(100))], options);
    expectEvents(
      clientFrame({ opcode: BINARY, payload: randomPayload(101, 8) }),
      [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)],
      options,
      [2],
    );
    const big = { expectMasked: true, maxPayload: 1000 };
    expectEvents(
      clientFrame({ opcode: BINARY, payload: randomPayload(1001, 9) }),
      [error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)],
      big,
      [4],
    );
  });

  it('maxPayload is summed over fragments (error at the header of the fragment that crosses it)', () => {
    const options = { expectMasked: true, maxPayload: 100 };
    const frames = [
      m(BINARY, randomPayload(40, 10), false),
      m(PING, 'x'.repeat(90)),
      m(CONTINUATION, randomPayload(40, 11), false),
      m(CONTINUATION, randomPayload(21, 12)),
    ];
    const e = ends(frames);
    expectEvents(
      Buffer.concat(frames),
      [ping('x'.repeat(90)), error('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009)],
      options,
      [e[1], e[2] + 2],
    );

    const exactFrames = [
      m(TEXT, 'a'.repeat(40), false),
      m(PONG, 'y'.repeat(100)),
      m(CONTINUATION, 'b'.repeat(40), false),
      m(CONTINUATION, '', false),
      m(CONTINUATION, 'c'.repeat(20)),
    ];
    const ee = ends(exactFrames);
    expectEvents(
      Buffer.concat(exactFrames),
      [pong('y'.repeat(100)), text('a'.repeat(40) + 'b'.repeat(40) + 'c'.repeat(20))],
      options,
      [ee[1], ee[4]],
    );
  });

  it('maxPayload counts each message afresh and ignores control frames', () => {
    const options = { expectMasked: true, maxPayload: 100 };
    const frames = [
      m(BINARY, randomPayload(60, 13), false),
      m(CONTINUATION, randomPayload(40, 14)),
      m(TEXT, 'z'.repeat(70), false),
      m(CONTINUATION, 'z'.repeat(30)),
      m(PING, 'p'.repeat(125)),
      m(BINARY, randomPayload(100, 15)),
    ];
    const expected = [
      binary(Buffer.concat([randomPayload(60, 13), randomPayload(40, 14)])),
      text('z'.repeat(100)),
      ping('p'.repeat(125)),
      binary(randomPayload(100, 15)),
    ];
    expectEvents(Buffer.concat(frames), expected, options);
  });
});

describe('FrameParser: fragmentation', () => {
  function fragmentsOf(
    opcode: number,
    parts: readonly Bytes[],
    mask: (op: number, p: Bytes, fin: boolean) => Buffer,
  ): Buffer[] {
    return parts.map((p, i) => mask(i === 0 ? opcode : CONTINUATION, p, i === parts.length - 1));
  }

  for (const count of [2, 3, 10]) {
    it(`text and binary in ${count} fragments, server and client side`, () => {
      const parts = Array.from({ length: count }, (_, i) => `part${i}-é€`);
      const bparts = Array.from({ length: count }, (_, i) => randomPayload(i * 7 + 1, 20 + i));
      for (const [options, make] of [
        [SERVER, m],
        [CLIENT, u],
      ] as const) {
        const tf = fragmentsOf(TEXT, parts, make);
        const bf = fragmentsOf(BINARY, bparts, make);
        expectEvents(Buffer.concat([...tf, ...bf]), [text(parts.join('')), binary(Buffer.concat(bparts))], options, [
          ends(tf).at(-1)!,
          ends([...tf, ...bf]).at(-1)!,
        ]);
      }
    });
  }

  it('empty fragments: first, middle, last and all', () => {
    const cases: Array<[Bytes[], string]> = [
      [['', 'abc'], 'abc'],
      [['abc', ''], 'abc'],
      [['ab', '', 'c'], 'abc'],
      [['', '', '', 'x', '', ''], 'x'],
      [['', ''], ''],
      [['', '', ''], ''],
    ];
    for (const [parts, whole] of cases) {
      expectEvents(Buffer.concat(fragmentsOf(TEXT, parts, m)), [text(whole)]);
      expectEvents(Buffer.concat(fragmentsOf(BINARY, parts, m)), [binary(whole)]);
      expectEvents(Buffer.concat(fragmentsOf(TEXT, parts, u)), [text(whole)], CLIENT);
    }
  });

  it('empty unfragmented messages', () => {
    expectEvents(Buffer.concat([m(TEXT), m(BINARY)]), [text(''), binary('')]);
    expectEvents(Buffer.concat([u(TEXT), u(BINARY)]), [text(''), binary('')], CLIENT);
  });

  it('pings and pongs interleaved between fragments are delivered at once', () => {
    const frames = [
      m(PING, 'p0'),
      m(TEXT, 'Hel', false),
      m(PING, 'p1'),
      m(PONG, 'q1'),
      m(CONTINUATION, 'lo, ', false),
      m(PONG, ''),
      m(CONTINUATION, 'world'),
      m(PING, 'p2'),
    ];
    const e = ends(frames);
    expectEvents(
      Buffer.concat(frames),
      [ping('p0'), ping('p1'), pong('q1'), pong(''), text('Hello, world'), ping('p2')],
      SERVER,
      [e[0], e[2], e[3], e[5], e[6], e[7]],
    );
    const bframes = [
      m(BINARY, [1], false),
      m(PING, ''),
      m(CONTINUATION, [], false),
      m(PONG, 'x'),
      m(CONTINUATION, [2, 3]),
    ];
    const be = ends(bframes);
    expectEvents(Buffer.concat(bframes), [ping(''), pong('x'), binary([1, 2, 3])], SERVER, [be[1], be[3], be[4]]);
  });

  it('a close frame in the middle of a fragmented message ends everything', () => {
    const frames = [m(TEXT, 'abc', false), m(CLOSE, closePayload(1001)), m(CONTINUATION, 'def')];
    expectEvents(Buffer.concat(frames), [close(1001)], SERVER, [ends(frames)[1]]);
  });

  it('fragmented and unfragmented messages alternate', () => {
    const frames = [
      m(TEXT, 'a', false),
      m(CONTINUATION, 'b'),
      m(BINARY, [1]),
      m(BINARY, [2], false),
      m(CONTINUATION, [3]),
      m(TEXT, 'c'),
    ];
    expectEvents(Buffer.concat(frames), [text('ab'), binary([1]), binary([2, 3]), text('c')]);
  });

  it('a continuation frame without a message in progress -> WS_ERR_UNEXPECTED_CONTINUATION 1002', () => {
    expectEvents(m(CONTINUATION, 'x'), [error('WS_ERR_UNEXPECTED_CONTINUATION')], SERVER, [2]);
    expectEvents(m(CONTINUATION, 'x', false), [error('WS_ERR_UNEXPECTED_CONTINUATION')], SERVER, [2]);
    expectEvents(u(CONTINUATION, ''), [error('WS_ERR_UNEXPECTED_CONTINUATION')], CLIENT, [2]);
    const after = [m(TEXT, 'done'), m(CONTINUATION, 'more')];
    expectEvents(Buffer.concat(after), [text('done'), error('WS_ERR_UNEXPECTED_CONTINUATION')], SERVER, [
      ends(after)[0],
      ends(after)[0] + 2,
    ]);
    const afterFragmented = [m(TEXT, 'a', false), m(CONTINUATION, 'b'), m(CONTINUATION, 'c')];
    const e = ends(afterFragmented);
    expectEvents(Buffer.concat(afterFragmented), [text('ab'), error('WS_ERR_UNEXPECTED_CONTINUATION')], SERVER, [
      e[1],
      e[1] + 2,
    ]);
  });

  it('a new data frame while a fragmented message is in progress -> WS_ERR_EXPECTED_CONTINUATION 1002', () => {
    for (const [first, second] of [
      [TEXT, TEXT],
      [TEXT, BINARY],
      [BINARY, TEXT],
      [BINARY, BINARY],
    ]) {
      for (const fin of [true, false]) {
        const frames = [m(first, 'ab', false), m(PING, 'p'), m(second, 'cd', fin)];
        const e = ends(frames);
        expectEvents(Buffer.concat(frames), [ping('p'), error('WS_ERR_EXPECTED_CONTINUATION')], SERVER, [
          e[1],
          e[1] + 2,
        ]);
      }
    }
    const empty = [u(BINARY, '', false), u(TEXT, 'x')];
    expectEvents(Buffer.concat(empty), [error('WS_ERR_EXPECTED_CONTINUATION')], CLIENT, [ends(empty)[0] + 2]);
  });
});

describe('FrameParser: maxFragments (frames per message)', () => {
  const limited = (maxFragments: number, base: FrameParserOptions = SERVER): FrameParserOptions => ({
    ...base,
    maxFragments,
  });
  const tooMany = error('WS_ERR_TOO_MANY_BUFFERED_PARTS', 1009);
  /** A message of `count` frames: `parts[i]` or '' for each, the last with FIN. */
  function message(opcode: number, count: number, make: typeof m = m, part: (i: number) => Bytes = () => ''): Buffer[] {
    return Array.from({ length: count }, (_, i) => make(i === 0 ? opcode : CONTINUATION, part(i), i === count - 1));
  }

  it('exactly maxFragments frames pass; one more fails with 1009 at the 2nd header byte of the frame over it', () => {
    for (const [options, make] of [
      [SERVER, m],
      [CLIENT, u],
    ] as const) {
      for (const opcode of [TEXT, BINARY]) {
        const deliver = opcode === TEXT ? text : binary;
        const ok = message(opcode, 5, make, (i) => `p${i}`);
        expectEvents(Buffer.concat(ok), [deliver('p0p1p2p3p4')], limited(5, options), [ends(ok).at(-1)!]);
        const over = message(opcode, 6, make, (i) => `p${i}`);
        // The 6th frame's header is rejected once its first two bytes are in, before its payload.
        expectEvents(Buffer.concat(over), [tooMany], limited(5, options), [ends(over)[4] + 2]);
      }
    }
  });

  it('empty continuation frames count; an endless run of them fails at the first one over', () => {
    const endless = [m(BINARY, 'x', false), ...Array.from({ length: 20 }, () => m(CONTINUATION, '', false))];
    expectEvents(Buffer.concat(endless), [tooMany], limited(8), [ends(endless)[7] + 2]);
    const emptyText = [m(TEXT, '', false), ...Array.from({ length: 20 }, () => m(CONTINUATION, '', false))];
    expectEvents(Buffer.concat(emptyText), [tooMany], limited(8), [ends(emptyText)[7] + 2]);
  });

  it('control frames between fragments do not count; each message starts afresh', () => {
    const frames = [
      m(TEXT, 'a', false),
      m(PING, '1'),
      m(PONG, '2'),
      m(CONTINUATION, 'b', false),
      m(PING, '3'),
      m(CONTINUATION, 'c'),
    ];
    expectEvents(Buffer.concat(frames), [ping('1'), pong('2'), ping('3'), text('abc')], limited(3));
    // Three messages of 3 frames each, and unfragmented ones between: all within a limit of 3.
    const many = [...message(BINARY, 3), m(TEXT, 'x'), ...message(TEXT, 3), m(BINARY, 'y'), ...message(BINARY, 3)];
    expectEvents(Buffer.concat(many), [binary(''), text('x'), text(''), binary('y'), binary('')], limited(3));
  });

  it('maxFragments 1 allows unfragmented messages only', () => {
    expectEvents(Buffer.concat([m(TEXT, 'a'), m(BINARY, 'b')]), [text('a'), binary('b')], limited(1));
    const two = message(TEXT, 2);
    expectEvents(Buffer.concat(two), [tooMany], limited(1), [ends(two)[0] + 2]);
  });

  it('absent or 0 means no limit (10,000 one-byte fragments pass)', () => {
    const frames = message(BINARY, 10_000, m, () => [7]);
    for (const options of [SERVER, limited(0)]) {
      const rec = feedAll(Buffer.concat(frames), [], options);
      assert.equal(rec.events.length, 1);
      assert.equal(rec.messageBuffers[0].length, 10_000);
    }
    assert.deepEqual(feedAll(Buffer.concat(frames), [], limited(9_999)).events, [tooMany]);
  });

  it('65,536 frames of 64 bytes (a 4 MiB message) pass within a limit of 2^17', () => {
    const fragment = Buffer.alloc(64, 0x61);
    const one = m(CONTINUATION, fragment, false);
    const input = Buffer.concat([
      m(TEXT, fragment, false),
      ...Array.from({ length: 65_534 }, () => one),
      m(CONTINUATION, fragment),
    ]);
    const rec = feedAll(
      input,
      randomSplits(input.length, 2),
      limited(2 ** 17, { expectMasked: true, maxPayload: 4 * 1024 * 1024 }),
    );
    assert.equal(rec.events.length, 1);
    assert.equal(rec.events[0].type, 'message');
    assert.equal(rec.messageBuffers[0].length, 4 * 1024 * 1024);
    assert.ok(rec.messageBuffers[0].every((b) => b === 0x61));
  });
});

describe('FrameParser: reserved bits and opcodes, control frame rules', () => {
  for (let rsv = 1; rsv <= 7; rsv++) {
    const code: ProtocolErrorCode = rsv & 4 ? 'WS_ERR_UNEXPECTED_RSV_1' : 'WS_ERR_UNEXPECTED_RSV_2_3';
    it(`RSV bits ${rsv.toString(2).padStart(3, '0')} (RSV1 RSV2 RSV3) -> ${code} 1002`, () => {
      for (const opcode of [TEXT, BINARY, PING, PONG, CLOSE]) {
        expectEvents(clientFrame({ opcode, payload: 'x', rsv }), [error(code)], SERVER, [2]);
        expectEvents(clientFrame({ opcode, payload: '', rsv, mask: false }), [error(code)], CLIENT, [2]);
      }
      const frames = [m(TEXT, 'a', false), clientFrame({ opcode: CONTINUATION, payload: 'b', rsv })];
      expectEvents(Buffer.concat(frames), [error(code)], SERVER, [ends(frames)[0] + 2]);
    });
  }

  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    it(`reserved opcode 0x${opcode.toString(16)} -> WS_ERR_INVALID_OPCODE 1002`, () => {
      expectEvents(m(opcode, 'x'), [error('WS_ERR_INVALID_OPCODE')], SERVER, [2]);
      expectEvents(m(opcode, '', false), [error('WS_ERR_INVALID_OPCODE')], SERVER, [2]);
      expectEvents(u(opcode, 'xyz'), [error('WS_ERR_INVALID_OPCODE')], CLIENT, [2]);
      const frames = [m(BINARY, [1], false), m(opcode, 'x')];
      expectEvents(Buffer.concat(frames), [error('WS_ERR_INVALID_OPCODE')], SERVER, [ends(frames)[0] + 2]);
    });
  }

  for (const opcode of [PING, PONG, CLOSE]) {
    it(`control opcode ${opcode}: 125 bytes pass, 126 and more -> WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH 1002`, () => {
      const ok = opcode === CLOSE ? closePayload(1000, 'r'.repeat(123)) : Buffer.from('c'.repeat(125));
      const expectedOk = opcode === CLOSE ? close(1000, 'r'.repeat(123)) : opcode === PING ? ping(ok) : pong(ok);
      expectEvents(m(opcode, ok), [expectedOk], SERVER);
      for (const length of [126, 127, 65535, 65536]) {
        const frame = clientFrame({ opcode, payload: randomPayload(length, length) });
        expectEvents(frame, [error('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')], SERVER, [2]);
      }
      // A short payload in an extended length field is over the 7-bit limit too.
      expectEvents(
        clientFrame({ opcode, payload: closePayload(1000), lengthEncoding: 16 }),
        [error('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')],
        SERVER,
        [2],
      );
      expectEvents(
        clientFrame({ opcode, payload: randomPayload(126, 1), mask: false }),
        [error('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')],
        CLIENT,
        [2],
      );
    });

    it(`fragmented control opcode ${opcode} -> WS_ERR_EXPECTED_FIN 1002`, () => {
      expectEvents(m(opcode, closePayload(1000), false), [error('WS_ERR_EXPECTED_FIN')], SERVER, [2]);
      expectEvents(u(opcode, '', false), [error('WS_ERR_EXPECTED_FIN')], CLIENT, [2]);
      const frames = [m(TEXT, 'a', false), m(opcode, '', false)];
      expectEvents(Buffer.concat(frames), [error('WS_ERR_EXPECTED_FIN')], SERVER, [ends(frames)[0] + 2]);
    });
  }
});

describe('FrameParser: close frames', () => {
  it('an empty close frame -> onClose(1005) with an empty reason', () => {
    expectEvents(m(CLOSE), [close(1005)], SERVER, [6]);
    expectEvents(u(CLOSE), [close(1005)], CLIENT, [2]);
  });

  it('a 1-byte close payload -> WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH 1002', () => {
    for (const byte of [0x00, 0x03, 0xe8, 0xff]) {
      expectEvents(m(CLOSE, [byte]), [error('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')], SERVER, [7]);
      expectEvents(u(CLOSE, [byte]), [error('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')], CLIENT, [3]);
    }
  });

  it('every code 0..5000 (and a few above): valid -> onClose(code), invalid -> WS_ERR_INVALID_CLOSE_CODE 1002', () => {
    let valid = 0;
    const codes = [...Array.from({ length: 5001 }, (_, i) => i), 5001, 9999, 0x7fff, 0x8000, 0xffff];
    for (const code of codes) {
      const frame = m(CLOSE, closePayload(code));
      if (closeCodeIsValid(code)) {
        valid++;
        expectEvents(frame, [close(code)], SERVER, [frame.length]);
      } else {
        expectEvents(frame, [error('WS_ERR_INVALID_CLOSE_CODE')], SERVER, [frame.length]);
      }
    }
    // 1000-1003, 1007-1014, 3000-4999: guards against closeCodeIsValid accepting everything.
    assert.equal(valid, 4 + 8 + 2000);
  });

  it('close codes with a reason, server and client side', () => {
    for (const [code, reason] of [
      [1000, 'bye'],
      [1001, 'going away'],
      [4999, 'ça va ✓ 𝄞'],
      [3000, ''],
    ] as const) {
      expectEvents(m(CLOSE, closePayload(code, reason)), [close(code, reason)]);
      expectEvents(u(CLOSE, closePayload(code, reason)), [close(code, reason)], CLIENT);
    }
    expectEvents(m(CLOSE, closePayload(1005, 'x')), [error('WS_ERR_INVALID_CLOSE_CODE')]);
    expectEvents(m(CLOSE, closePayload(1006)), [error('WS_ERR_INVALID_CLOSE_CODE')]);
    expectEvents(m(CLOSE, closePayload(1015)), [error('WS_ERR_INVALID_CLOSE_CODE')]);
  });

  for (const [name, bytes] of [
    ['0xFF', [0xff]],
    ['a truncated sequence', [0x61, 0xe2, 0x82]],
    ['an overlong form', [0xc0, 0xaf]],
    ['a surrogate', [0xed, 0xa0, 0x80]],
    ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['an invalid byte after 30 ASCII bytes', [...Buffer.from('a'.repeat(30)), 0x80]],
  ] as const) {
    it(`a close reason with invalid UTF-8 (${name}) -> WS_ERR_INVALID_UTF8 1007`, () => {
      const frame = m(CLOSE, closePayload(1000, Buffer.from(bytes)));
      expectEvents(frame, [error('WS_ERR_INVALID_UTF8', 1007)], SERVER, [frame.length]);
      expectEvents(u(CLOSE, closePayload(4000, Buffer.from(bytes))), [error('WS_ERR_INVALID_UTF8', 1007)], CLIENT);
    });
  }

  it('data after a close frame is ignored', () => {
    const frames = [m(TEXT, 'before'), m(CLOSE, closePayload(1000, 'done')), m(TEXT, 'after'), m(PING, 'p'), m(CLOSE)];
    expectEvents(Buffer.concat(frames), [text('before'), close(1000, 'done')], SERVER);
    // Bytes that would be an error are ignored too.
    expectEvents(Buffer.concat([m(CLOSE), u(TEXT, 'unmasked'), Buffer.from([0xff, 0xff])]), [close(1005)]);
    expectEvents(Buffer.concat([u(CLOSE, closePayload(1001)), m(BINARY, [1, 2])]), [close(1001)], CLIENT);
    // In a later push.
    const rec = feedAll(m(CLOSE, closePayload(1000)), []);
    rec.parser!.push(Buffer.from(m(TEXT, 'later')));
    assert.deepEqual(rec.events, [close(1000)]);
    assert.equal(rec.parser!.stopped, true);
  });
});

describe('FrameParser: UTF-8 in text messages', () => {
  const INVALID: ReadonlyArray<readonly [string, readonly number[]]> = [
    ['0xFF', [0xff]],
    ['a stray continuation byte', [0x61, 0x80, 0x62]],
    ['overlong 2-byte form C0 AF', [0xc0, 0xaf]],
    ['overlong 3-byte form E0 80 AF', [0xe0, 0x80, 0xaf]],
    ['a surrogate ED A0 80', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF: F4 90 80 80', [0xf4, 0x90, 0x80, 0x80]],
    ['lead byte F5', [0xf5, 0x80, 0x80, 0x80]],
    ['a truncated sequence followed by ASCII', [0xe2, 0x82, 0x61]],
    ['a message ending inside a sequence', [0x61, 0xe2, 0x82]],
    ['a message ending after a 4-byte lead', [0xf0]],
    [
      'an invalid byte between 20-byte ASCII runs',
      [...Buffer.from('a'.repeat(20)), 0xff, ...Buffer.from('b'.repeat(20))],
    ],
  ];

  for (const [name, bytes] of INVALID) {
    it(`a single text frame with ${name} -> WS_ERR_INVALID_UTF8 1007 at the first impossible byte`, () => {
      const frame = m(TEXT, bytes);
      expectEvents(frame, [error('WS_ERR_INVALID_UTF8', 1007)], SERVER, [utf8FailsAt([frame], [bytes])]);
      const unmasked = u(TEXT, bytes);
      expectEvents(unmasked, [error('WS_ERR_INVALID_UTF8', 1007)], CLIENT, [utf8FailsAt([unmasked], [bytes])]);
      expectEvents(m(BINARY, bytes), [binary(bytes)], SERVER);
    });
  }

  it('valid multi-byte text in one frame', () => {
    const s = 'héllo € 𝄞 \u0000 \u{10ffff} \ud7ff \ue000';
    expectEvents(m(TEXT, s), [text(s)]);
  });

  it('invalid UTF-8 in a middle fragment fails at its first impossible byte, before the final fragment arrives', () => {
    // [name, fragments, index of the fragment that makes the text impossible]
    const cases: Array<[string, Bytes[], number]> = [
      ['0xFF in a short fragment', ['hello', [0x77, 0x6f, 0xff, 0x6c], 'final'], 1],
      [
        '0xFF in a long fragment',
        ['hello', [...Buffer.from('x'.repeat(40)), 0xff, ...Buffer.from('y'.repeat(40))], 'more', 'final'],
        1,
      ],
      ['an overlong form completed in the next fragment', ['ab', [0xe0], [0x80, 0x80], 'final'], 2],
      ['a 4-byte sequence broken by ASCII in the next fragment', [[0xf0, 0x9d], [0x84, 0x41], 'final'], 1],
      ['a surrogate split over fragments', [[0xed], [0xa0], [0x80], 'final'], 1],
      ['a stray continuation at the start of a fragment', ['é', [0x80], 'final'], 1],
      ['0xFF in the first of many fragments', [[0x61, 0xff], 'b', 'c', 'final'], 0],
    ];
    for (const [name, parts, bad] of cases) {
      const frames = parts.map((p, i) => m(i === 0 ? TEXT : CONTINUATION, p, i === parts.length - 1));
      const e = ends(frames);
      assert.ok(bad < frames.length - 1, 'test bug: the bad fragment must come before the final one');
      const failsAt = utf8FailsAt(frames, parts);
      assert.ok(
        failsAt > e[bad] - frames[bad].length && failsAt <= e[bad],
        `test bug: ${name} must become impossible in fragment ${bad}`,
      );
      expectEvents(Buffer.concat(frames), [error('WS_ERR_INVALID_UTF8', 1007)], SERVER, [failsAt]);
      if (bad > 0) {
        const withPing = [frames[0], m(PING, 'p'), ...frames.slice(1)];
        const pingFailsAt = utf8FailsAt(withPing, [parts[0], null, ...parts.slice(1)]);
        expectEvents(Buffer.concat(withPing), [ping('p'), error('WS_ERR_INVALID_UTF8', 1007)], SERVER, [
          ends(withPing)[1],
          pingFailsAt,
        ]);
      }

      // Frame by frame: nothing until the bad fragment, the error right then, nothing after.
      const rec = new Recorder();
      const parser = new FrameParser(rec, SERVER);
      frames.forEach((frame, i) => {
        parser.push(Buffer.from(frame));
        const expected = i < bad ? [] : [error('WS_ERR_INVALID_UTF8', 1007)];
        assert.deepEqual(rec.events, expected, `${name}: after fragment ${i}`);
      });
    }
  });

  it('a fragmented text message ending inside a multi-byte sequence fails at the final fragment', () => {
    const cases: Bytes[][] = [
      ['ab', [0xe2, 0x82]],
      [[0x61, 0xe2, 0x82], ''],
      [[0xe2], [0x82]],
      [[0xf0, 0x9f], [0x98], [0x80, 0xf0]],
      ['', [0xc3]],
    ];
    for (const parts of cases) {
      const frames = parts.map((p, i) => m(i === 0 ? TEXT : CONTINUATION, p, i === parts.length - 1));
      const e = ends(frames);
      expectEvents(Buffer.concat(frames), [error('WS_ERR_INVALID_UTF8', 1007)], SERVER, [e.at(-1)!]);
      // The same prefix as a binary message is fine.
      const bin = parts.map((p, i) => m(i === 0 ? BINARY : CONTINUATION, p, i === parts.length - 1));
      expectEvents(Buffer.concat(bin), [binary(Buffer.concat(parts.map((p) => Buffer.from(toPayload(p)))))], SERVER);
    }
  });

  it('multi-byte characters split across fragments at every position are valid', () => {
    const s = 'aé€𝄞z';
    const bytes = Buffer.from(s);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const parts = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)];
        const frames = [
          m(TEXT, parts[0], false),
          m(PING, ''),
          m(CONTINUATION, parts[1], false),
          m(CONTINUATION, parts[2]),
        ];
        expectEvents(Buffer.concat(frames), [ping(''), text(s)], SERVER);
      }
    }
    // One byte per fragment.
    const frames = [...bytes].map((b, i) => m(i === 0 ? TEXT : CONTINUATION, [b], i === bytes.length - 1));
    expectEvents(Buffer.concat(frames), [text(s)], SERVER);
  });

  /** The header and the first bytes of a frame declared `declared` bytes long; the rest never comes. */
  function frameStart(opcode: number, declared: number, prefix: Bytes, masked: boolean, fin = true): Buffer {
    return clientFrame({ opcode, payload: toPayload(prefix), declaredLength: declared, mask: masked, fin });
  }

  it('an invalid byte in the first piece of a frame whose rest never comes fails in that push, both directions', () => {
    for (const masked of [true, false]) {
      const options = masked ? SERVER : CLIENT;
      // Lengths in each encoding: 7-bit, 16-bit (frame buffer sized at once), 64-bit (grows).
      for (const declared of [100, 1000, 200_000]) {
        for (let bad = 0; bad < 10; bad++) {
          const prefix = Buffer.from('0123456789');
          prefix[bad] = 0xff;
          const input = frameStart(TEXT, declared, prefix, masked);
          const where = `masked ${masked}, declared ${declared}, 0xFF at ${bad}`;
          // One push of everything there is: the error comes with it.
          const whole = feedAll(input, [], options);
          assert.deepEqual(whole.events, [error('WS_ERR_INVALID_UTF8', 1007)], where);
          assert.ok(whole.parser!.stopped, where);
          // Header first, then the payload bytes one by one: the error comes with the 0xFF.
          const header = input.length - prefix.length;
          const splits = [header, ...Array.from({ length: prefix.length - 1 }, (_, i) => header + i + 1)];
          const rec = feedAll(input, splits, options);
          assert.deepEqual(rec.events, [error('WS_ERR_INVALID_UTF8', 1007)], where);
          assert.deepEqual(
            rec.spans[0],
            [header + bad, header + bad + 1],
            `${where}: fired in the push of the bad byte`,
          );
        }
      }
      // The same bytes as a valid prefix, or as binary: nothing happens, the parser waits.
      for (const [opcode, prefix] of [
        [TEXT, '0123456789'],
        [TEXT, [0x61, 0xe2, 0x82]],
        [BINARY, [0xff, 0xfe]],
      ] as const) {
        const rec = feedAll(frameStart(opcode, 1000, prefix, masked), [], options);
        assert.deepEqual(rec.events, [], `masked ${masked}: opcode ${opcode} ${hex(prefix)} waits`);
        assert.equal(rec.parser!.stopped, false);
      }
    }
  });

  it('an invalid byte in the first piece of a continuation frame whose rest never comes fails in that push', () => {
    for (const masked of [true, false]) {
      const frame = masked ? m : u;
      const first = frame(TEXT, 'abc', false);
      // The continuation completes a character begun in the first fragment wrongly (E2 then 0x28).
      const cases: Array<[string, Buffer, Bytes, number]> = [
        ['0xFF after ASCII', frame(TEXT, 'abc', false), [0x64, 0xff, 0x65], 2],
        ['a sequence from the previous fragment broken', frame(TEXT, [0x61, 0xe2], false), [0x82, 0x28], 2],
        ['a stray continuation byte first', first, [0x80], 1],
      ];
      for (const [name, start, prefix, failsAfter] of cases) {
        const input = Buffer.concat([start, frameStart(CONTINUATION, 5000, prefix, masked, false)]);
        const header = input.length - Buffer.from(toPayload(prefix)).length;
        const splits = [
          start.length,
          header,
          ...Array.from({ length: Buffer.from(toPayload(prefix)).length - 1 }, (_, i) => header + i + 1),
        ];
        const rec = feedAll(input, splits, masked ? SERVER : CLIENT);
        assert.deepEqual(rec.events, [error('WS_ERR_INVALID_UTF8', 1007)], `masked ${masked}: ${name}`);
        assert.equal(
          rec.spans[0][1],
          header + failsAfter,
          `masked ${masked}: ${name}: fired in the push of the bad byte`,
        );
      }
    }
  });

  it('valid multi-byte characters split across pushes inside frames and across fragments pass (every split of a long frame)', () => {
    // Over 16 bytes per piece takes the validator's native path; short pieces its byte loop.
    const s = `é€𝄞${'a'.repeat(20)}€𝄞é${'ÿ'.repeat(12)}𝄞`;
    const bytes = Buffer.from(s);
    for (const masked of [true, false]) {
      const frame = masked ? m : u;
      const options = masked ? SERVER : CLIENT;
      const single = frame(TEXT, bytes);
      const header = single.length - bytes.length;
      // Two pushes, cut at every payload position (every mask offset, inside every character).
      for (let cut = header + 1; cut < single.length; cut++) {
        assert.deepEqual(feedAll(single, [cut], options).events, [text(s)], `masked ${masked}: cut at ${cut}`);
      }
      // Three fragments, each arriving in pieces, cut inside characters and between fragments.
      for (let i = 1; i < bytes.length - 1; i += 3) {
        const parts = [bytes.subarray(0, i), bytes.subarray(i, i + 7), bytes.subarray(i + 7)];
        const frames = [
          frame(TEXT, parts[0], false),
          frame(PING, 'p'),
          frame(CONTINUATION, parts[1], false),
          frame(CONTINUATION, parts[2]),
        ];
        expectEvents(Buffer.concat(frames), [ping('p'), text(s)], options);
      }
    }
  });

  it('a final frame arriving in pieces that ends inside a character fails with its last byte, not before', () => {
    for (const masked of [true, false]) {
      const frame = masked ? m : u;
      const options = masked ? SERVER : CLIENT;
      for (const tail of [[0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]) {
        const payload = [...Buffer.from('x'.repeat(30)), ...tail];
        const single = frame(TEXT, payload);
        expectEvents(single, [error('WS_ERR_INVALID_UTF8', 1007)], options, [single.length]);
        const frames = [frame(TEXT, 'é', false), frame(CONTINUATION, payload)];
        expectEvents(Buffer.concat(frames), [error('WS_ERR_INVALID_UTF8', 1007)], options, [ends(frames)[1]]);
      }
    }
  });

  it('UTF-8 state does not leak from one message to the next', () => {
    const frames = [m(TEXT, [0xe2, 0x82], false), m(CONTINUATION, [0xac]), m(TEXT, [0x82, 0xac])];
    const e = ends(frames);
    // The new message's first byte, 0x82, is a stray continuation: it fails right there.
    expectEvents(Buffer.concat(frames), [text('€'), error('WS_ERR_INVALID_UTF8', 1007)], SERVER, [e[1], e[2] - 1]);
    const frames2 = [m(TEXT, 'a', false), m(CONTINUATION, 'b'), m(TEXT, [0xe2, 0x82], false), m(CONTINUATION, [0xac])];
    expectEvents(Buffer.concat(frames2), [text('ab'), text('€')]);
  });
});

describe('FrameParser: stopping', () => {
  it('after a protocol error further bytes give no events', () => {
    const rec = feedAll(Buffer.concat([m(TEXT, 'ok'), u(TEXT, 'bad')]), []);
    assert.deepEqual(rec.events, [text('ok'), error('WS_ERR_EXPECTED_MASK')]);
    assert.equal(rec.parser!.stopped, true);
    for (const more of [m(TEXT, 'x'), m(PING, 'p'), m(CLOSE, closePayload(1000)), Buffer.from([0xff])])
      rec.parser!.push(Buffer.from(more));
    assert.deepEqual(rec.events, [text('ok'), error('WS_ERR_EXPECTED_MASK')]);
    assert.equal(rec.errors.length, 1);
    assert.equal(rec.errors[0].closeCode, 1002);
    assert.equal(rec.errors[0].code, 'WS_ERR_EXPECTED_MASK');
  });

  it('an error in the middle of a chunk drops the rest of that chunk', () => {
    const rec = feedAll(Buffer.concat([m(TEXT, 'a'), m(3, 'x'), m(TEXT, 'b'), m(PING, '')]), []);
    assert.deepEqual(rec.events, [text('a'), error('WS_ERR_INVALID_OPCODE')]);
  });

  it('stop() drops buffered and later input', () => {
    const frame = m(TEXT, 'hello');
    const rec = new Recorder();
    const parser = new FrameParser(rec, SERVER);
    parser.push(Buffer.from(frame.subarray(0, 4)));
    assert.equal(parser.stopped, false);
    parser.stop();
    assert.equal(parser.stopped, true);
    parser.push(Buffer.from(frame.subarray(4)));
    parser.push(Buffer.from(m(TEXT, 'again')));
    assert.deepEqual(rec.events, []);
  });

  it('a frame cut off at the end of input gives no event yet', () => {
    const frame = m(TEXT, 'hello');
    for (let cut = 0; cut < frame.length; cut++) {
      const rec = feedAll(frame.subarray(0, cut), cut > 1 ? [1] : []);
      assert.deepEqual(rec.events, [], `cut at ${cut}`);
      assert.equal(rec.parser!.stopped, false);
    }
  });
});

describe('FrameParser: zero-copy payloads', () => {
  /** `bytes` in its own ArrayBuffer (not Node's shared pool, where a copy could land too). */
  function ownBuffer(bytes: Uint8Array): Buffer {
    const out = Buffer.from(new ArrayBuffer(bytes.length));
    out.set(bytes);
    return out;
  }

  for (const length of [0, 5, 125, 200, 70000]) {
    for (const [side, options, masked] of [
      ['server', SERVER, true],
      ['client', CLIENT, false],
    ] as const) {
      it(`an unfragmented ${length}-byte message in one chunk is a view of the input (${side} side)`, () => {
        const payload = randomPayload(length, 30);
        for (const [opcode, expected] of [
          [BINARY, binary(payload)],
          [TEXT, text('t'.repeat(length))],
        ] as const) {
          const frame = clientFrame({ opcode, payload: opcode === TEXT ? 't'.repeat(length) : payload, mask: masked });
          const input = ownBuffer(frame);
          const rec = new Recorder();
          new FrameParser(rec, options).push(input);
          assert.deepEqual(rec.events, [expected]);
          const data = rec.messageBuffers[0];
          if (length === 0) continue;
          assert.equal(data.buffer, input.buffer, 'the message shares the input ArrayBuffer');
          assert.equal(data.byteOffset, input.byteOffset + frame.length - length);
          assert.equal(data.length, length);
        }
      });
    }
  }

  it('a second message in the same chunk is a view too', () => {
    const frames = [m(TEXT, 'first'), m(BINARY, [1, 2, 3, 4])];
    const input = ownBuffer(Buffer.concat(frames));
    const rec = new Recorder();
    new FrameParser(rec, SERVER).push(input);
    assert.deepEqual(rec.events, [text('first'), binary([1, 2, 3, 4])]);
    assert.equal(rec.messageBuffers[1].buffer, input.buffer);
    assert.equal(rec.messageBuffers[1].byteOffset, input.byteOffset + input.length - 4);
  });

  it('a fragmented message is copied out of the input, so it never keeps a whole read alive', () => {
    // One read holding a 1-byte fragment and 64 KiB of pings: a view of that fragment would
    // pin the whole read for as long as the message is being assembled.
    const pings = Array.from({ length: 500 }, () => m(PING, 'p'.repeat(125)));
    const input = ownBuffer(Buffer.concat([m(BINARY, [7], false), ...pings, m(CONTINUATION, [8], true)]));
    const rec = new Recorder();
    new FrameParser(rec, SERVER).push(input);
    assert.equal(rec.events.length, 501);
    assert.deepEqual(rec.events[500], binary([7, 8]));
    assert.notEqual(rec.messageBuffers[0].buffer, input.buffer, 'the message owns its memory');
  });

  it('a payload split over many pieces is copied as it arrives, not kept as the pieces', () => {
    const payload = randomPayload(50_000, 31);
    const frame = clientFrame({ opcode: BINARY, payload });
    const pieces: Buffer[] = [];
    for (let i = 0; i < frame.length; i += 7) pieces.push(ownBuffer(frame.subarray(i, i + 7)));
    const rec = new Recorder();
    const parser = new FrameParser(rec, SERVER);
    for (const piece of pieces) parser.push(piece);
    assert.deepEqual(rec.events, [binary(payload)]);
    assert.ok(pieces.every((piece) => rec.messageBuffers[0].buffer !== piece.buffer));
  });
});

describe('FrameParser: round trip with encodeFrame', () => {
  const CHARS = ['a', 'Z', ' ', '~', '\u0000', 'é', 'ß', '€', '中', '\uffff', '𝄞', '😀', '\u{10ffff}'];

  function randomText(rng: () => number, byteLength: number): string {
    const parts: string[] = [];
    for (let bytes = 0; bytes < byteLength;) {
      const c = CHARS[Math.floor(rng() * CHARS.length)];
      parts.push(c);
      bytes += Buffer.byteLength(c);
    }
    return parts.join('');
  }

  function flatten(encoded: Buffer | [Buffer, Uint8Array]): Buffer {
    return Array.isArray(encoded) ? Buffer.concat(encoded) : encoded;
  }

  for (const [side, options, mask] of [
    ['server (mask: true)', SERVER, true],
    ['client (mask: false)', CLIENT, false],
  ] as const) {
    it(`random messages in random fragments with pings, ${side}, yield the original messages in order`, () => {
      const rng = seededRandom(mask ? 0xd0e7 : 0x5eed);
      const int = (n: number): number => Math.floor(rng() * n);
      for (let iteration = 0; iteration < 40; iteration++) {
        const wire: Buffer[] = [];
        const expected: Event[] = [];
        let largest = 0;
        const count = 1 + int(6);
        for (let k = 0; k < count; k++) {
          const isBinary = rng() < 0.5;
          const roll = rng();
          // One message over 64 KiB (64-bit length when unfragmented); the rest small or 16-bit.
          const size =
            iteration === 0 && k === 0 ? 65536 + int(3000) : roll < 0.1 ? 0 : roll < 0.8 ? int(200) : 126 + int(3000);
          const payload = isBinary ? randomPayload(size, int(1e9)) : Buffer.from(randomText(rng, size));
          largest = Math.max(largest, payload.length);
          const pieces = 1 + int(5);
          const cuts = Array.from({ length: pieces - 1 }, () => int(payload.length + 1)).sort((a, b) => a - b);
          const bounds = [0, ...cuts, payload.length];
          for (let i = 0; i < pieces; i++) {
            if (i > 0 && rng() < 0.25) {
              const p = randomPayload(int(126), int(1e9));
              wire.push(flatten(encodeFrame(PING, p, { fin: true, mask })));
              expected.push(ping(p));
            }
            const opcode = i > 0 ? CONTINUATION : isBinary ? BINARY : TEXT;
            wire.push(
              flatten(encodeFrame(opcode, payload.subarray(bounds[i], bounds[i + 1]), { fin: i === pieces - 1, mask })),
            );
          }
          expected.push(isBinary ? binary(payload) : text(payload));
        }
        const bytes = Buffer.concat(wire);
        // maxPayload set to the largest message: the boundary must be inclusive.
        expectEvents(bytes, expected, { ...options, maxPayload: Math.max(1, largest) });
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Feeding 1 byte per push in a worker, so a parser that is slow on many tiny chunks fails the
// test after a bound instead of hanging the run. The worker records events like Recorder does.

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  (await import(workerData.tsxApi)).register();
  const { FrameParser } = await import(workerData.parserUrl);
  const hex = (b) => Buffer.from(b).toString('hex');
  const events = [];
  const parser = new FrameParser({
    onMessage: (data, isBinary) => events.push({ type: 'message', data: hex(data), binary: isBinary }),
    onPing: (data) => events.push({ type: 'ping', data: hex(data) }),
    onPong: (data) => events.push({ type: 'pong', data: hex(data) }),
    onClose: (code, reason) => events.push({ type: 'close', code, reason: hex(reason) }),
    onProtocolError: (err) => events.push({ type: 'error', code: err.code, closeCode: err.closeCode }),
  }, workerData.options);
  const u8 = workerData.bytes;
  const bytes = Buffer.from(u8.buffer, u8.byteOffset, u8.length);
  for (let i = 0; i < bytes.length; i++) parser.push(bytes.subarray(i, i + 1));
  parentPort.postMessage(events);
})().catch((err) => { throw err; });
`;

function feedBytewiseInWorker(bytes: Buffer, options: FrameParserOptions, deadlineMs: number): Promise<Event[]> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      tsxApi: import.meta.resolve('tsx/esm/api'),
      parserUrl: new URL('../../src/protocol/parser.ts', import.meta.url).href,
      bytes,
      options,
    },
  });
  return new Promise<Event[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`feeding ${bytes.length} bytes 1 byte per push did not finish within ${deadlineMs} ms`));
    }, deadlineMs);
    worker.once('message', (events: Event[]) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(events);
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// permessage-deflate (RFC 7692 section 6): RSV1 and pausing while a message is inflated

describe('FrameParser: RSV1 with permessage-deflate negotiated', () => {
  const DEFLATE: FrameParserOptions = { expectMasked: true, maxPayload: 0, allowCompressed: true };
  type Got =
    { data: string; binary: boolean; compressed: boolean } | { error: string; closeCode: number } | { control: string };
  function run(
    input: Buffer,
    options: FrameParserOptions = DEFLATE,
    onMessage?: (parser: FrameParser) => void,
  ): { got: Got[]; parser: FrameParser } {
    const got: Got[] = [];
    let parser: FrameParser;
    const handler: FrameParserHandler = {
      onMessage(data, isBinary, compressed) {
        got.push({ data: hex(data), binary: isBinary, compressed });
        onMessage?.(parser);
      },
      onPing: (data) => got.push({ control: `ping:${data.toString()}` }),
      onPong: (data) => got.push({ control: `pong:${data.toString()}` }),
      onClose: (code) => got.push({ control: `close:${code}` }),
      onProtocolError: (err) => got.push({ error: err.code, closeCode: err.closeCode }),
    };
    parser = new FrameParser(handler, options);
    // One byte at a time: the flag must survive every split.
    for (let i = 0; i < input.length; i++) parser.push(input.subarray(i, i + 1));
    return { got, parser };
  }
  const invalidUtf8 = Buffer.from([0xc3, 0x28, 0xff]);

  it('RSV1 on a text or binary frame marks the message compressed and skips the UTF-8 check', () => {
    const input = Buffer.concat([
      clientFrame({ opcode: TEXT, payload: invalidUtf8, rsv: 4 }),
      clientFrame({ opcode: BINARY, payload: Buffer.from([1, 2]), rsv: 4 }),
      clientFrame({ opcode: TEXT, payload: 'plain' }),
    ]);
    assert.deepEqual(run(input).got, [
      { data: hex(invalidUtf8), binary: false, compressed: true },
      { data: hex([1, 2]), binary: true, compressed: true },
      { data: hex('plain'), binary: false, compressed: false },
    ]);
  });

  it('a fragmented compressed message: RSV1 on the first frame only, control frames between', () => {
    const input = Buffer.concat([
      clientFrame({ opcode: TEXT, payload: invalidUtf8.subarray(0, 1), rsv: 4, fin: false }),
      clientFrame({ opcode: PING, payload: 'p' }),
      clientFrame({ opcode: CONTINUATION, payload: invalidUtf8.subarray(1), fin: true }),
    ]);
    assert.deepEqual(run(input).got, [
      { control: 'ping:p' },
      { data: hex(invalidUtf8), binary: false, compressed: true },
    ]);
  });

  it('RSV1 on a continuation or a control frame is still 1002, and so is RSV1 when not negotiated', () => {
    const continuation = Buffer.concat([
      clientFrame({ opcode: TEXT, payload: 'a', rsv: 4, fin: false }),
      clientFrame({ opcode: CONTINUATION, payload: 'b', rsv: 4 }),
    ]);
    assert.deepEqual(run(continuation).got, [{ error: 'WS_ERR_UNEXPECTED_RSV_1', closeCode: 1002 }]);
    for (const opcode of [PING, PONG, CLOSE]) {
      assert.deepEqual(run(clientFrame({ opcode, payload: '', rsv: 4 })).got, [
        { error: 'WS_ERR_UNEXPECTED_RSV_1', closeCode: 1002 },
      ]);
    }
    assert.deepEqual(run(clientFrame({ opcode: TEXT, payload: 'x', rsv: 4 }), SERVER).got, [
      { error: 'WS_ERR_UNEXPECTED_RSV_1', closeCode: 1002 },
    ]);
    // RSV2 and RSV3 stay reserved.
    assert.deepEqual(run(clientFrame({ opcode: TEXT, payload: 'x', rsv: 6 })).got, [
      { error: 'WS_ERR_UNEXPECTED_RSV_2_3', closeCode: 1002 },
    ]);
  });

  it('maxPayload applies to the compressed bytes on the wire as well', () => {
    const got = run(clientFrame({ opcode: BINARY, payload: Buffer.alloc(200), rsv: 4 }), {
      ...DEFLATE,
      maxPayload: 100,
    }).got;
    assert.deepEqual(got, [{ error: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', closeCode: 1009 }]);
  });
});

describe('FrameParser: pause() and resume()', () => {
  function frames(): Buffer {
    return Buffer.concat([
      clientFrame({ opcode: TEXT, payload: 'one' }),
      clientFrame({ opcode: PING, payload: 'p' }),
      clientFrame({ opcode: TEXT, payload: 'two' }),
      clientFrame({ opcode: CLOSE, payload: closePayload(1000) }),
    ]);
  }

  /** A parser whose handler pauses it after every message, recording what it sees in `order`. */
  function pausingParser(order: string[]): FrameParser {
    const parser: FrameParser = new FrameParser(
      {
        onMessage(data) {
          order.push(`message:${data.toString()}`);
          parser.pause();
        },
        onPing: (data) => order.push(`ping:${data.toString()}`),
        onPong: () => order.push('pong'),
        onClose: (code) => order.push(`close:${code}`),
        onProtocolError: (err) => order.push(`error:${err.code}`),
      },
      SERVER,
    );
    return parser;
  }

  it('a handler that pauses holds every later frame, in order, until resume()', () => {
    const order: string[] = [];
    const parser = pausingParser(order);
    const input = frames();
    const cut = 7; // the first frame (2 + 4 + 3 bytes) ends after byte 9: cut inside it
    parser.push(input.subarray(0, cut));
    parser.push(input.subarray(cut, 20));
    assert.deepEqual(order, ['message:one']);
    assert.equal(parser.isPaused, true);
    parser.push(input.subarray(20)); // arrives while paused: kept behind the rest
    assert.equal(parser.pendingBytes, input.length - 9);
    parser.resume(); // delivers the ping, then 'two' pauses again
    assert.deepEqual(order, ['message:one', 'ping:p', 'message:two']);
    parser.resume();
    assert.deepEqual(order, ['message:one', 'ping:p', 'message:two', 'close:1000']);
    assert.equal(parser.pendingBytes, 0);
  });

  it('bytes pushed by a handler while kept input is being delivered go behind it', () => {
    // resume() hands the kept chunks over one by one; a push() from a handler in between (the
    // parser no longer paused, a chunk still kept) must wait its turn, not overtake.
    const order: string[] = [];
    const later = clientFrame({ opcode: CLOSE, payload: closePayload(1000) });
    const parser: FrameParser = new FrameParser(
      {
        onMessage(data) {
          order.push(`message:${data.toString()}`);
          if (order.length === 1) parser.pause();
        },
        onPing: (data) => {
          order.push(`ping:${data.toString()}`);
          parser.push(later);
        },
        onPong: () => order.push('pong'),
        onClose: (code) => order.push(`close:${code}`),
        onProtocolError: (err) => order.push(`error:${err.code}`),
      },
      SERVER,
    );
    parser.push(clientFrame({ opcode: TEXT, payload: Buffer.from('one') }));
    assert.equal(parser.isPaused, true);
    parser.push(clientFrame({ opcode: PING, payload: Buffer.from('p') }));
    parser.push(clientFrame({ opcode: TEXT, payload: Buffer.from('two') }));
    parser.resume();
    assert.deepEqual(order, ['message:one', 'ping:p', 'message:two', 'close:1000']);
    assert.equal(parser.pendingBytes, 0);
  });

  it('stop() while paused drops what was kept', () => {
    const order: string[] = [];
    const parser = pausingParser(order);
    parser.push(frames());
    parser.stop();
    assert.equal(parser.pendingBytes, 0);
    parser.resume();
    assert.deepEqual(order, ['message:one']);
  });
});

describe('assembling: a fragmented message in progress', () => {
  it('is true from the first frame of a fragmented message until its last, not for whole messages or control frames between', () => {
    const rec = new Recorder();
    const parser = new FrameParser(rec, SERVER);
    rec.parser = parser;
    assert.equal(parser.assembling, false);
    parser.push(clientFrame({ opcode: Opcode.TEXT, payload: 'whole' }));
    assert.equal(parser.assembling, false, 'an unfragmented message');
    const first = clientFrame({ opcode: Opcode.TEXT, payload: 'a', fin: false });
    parser.push(first.subarray(0, 3));
    assert.equal(parser.assembling, false, 'the first frame has not arrived whole yet');
    parser.push(first.subarray(3));
    assert.equal(parser.assembling, true);
    parser.push(clientFrame({ opcode: Opcode.PING, payload: 'p' }));
    parser.push(clientFrame({ opcode: Opcode.CONTINUATION, payload: '', fin: false }));
    assert.equal(parser.assembling, true);
    parser.push(clientFrame({ opcode: Opcode.CONTINUATION, payload: 'b', fin: true }));
    assert.equal(parser.assembling, false);
  });
});
