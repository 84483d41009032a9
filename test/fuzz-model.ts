/**
 * Fuzzing support shared by test/node/fuzz.test.ts (live server) and
 * test/protocol/parser-fuzz.test.ts (FrameParser alone): a seeded generator of client frame
 * sequences, valid and broken, and an ORACLE — a small reference model of an RFC 6455 receiver
 * written independently of src/protocol/parser.ts — that predicts, from the exact bytes
 * received, what a receiver must report and how it must end.
 *
 * Detection points the oracle assumes (the natural ones for a streaming receiver):
 * - header rules (RSV bits, opcode, continuation state, control FIN/length, mask bit) fail as
 *   soon as the first 2 header bytes are in;
 * - length rules (minimal encoding, 64-bit MSB, maxPayload) fail once the extended length is in,
 *   before any payload is buffered;
 * - UTF-8 of a text message fails as soon as the bytes received so far (inside a frame whose
 *   rest has not come too) can no longer be the beginning of valid UTF-8, or at FIN if it ends
 *   mid-character (RFC 6455 8.1);
 * - other payload rules (close code, close reason) fail once that frame's payload is complete.
 * A Close frame ends parsing; later bytes are ignored.
 */
import { isUtf8 } from 'node:buffer';

export type Rng = () => number;

export const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
export const chance = (rng: Rng, p: number): boolean => rng() < p;
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}

export function randomBuffer(rng: Rng, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

// ---- UTF-8 -----------------------------------------------------------------------------------

const EDGE_2 = [0x80, 0x7ff];
const EDGE_3 = [0x800, 0xfff, 0x1000, 0xcfff, 0xd000, 0xd7ff, 0xe000, 0xfffd, 0xfffe, 0xffff];
const EDGE_4 = [0x10000, 0x3ffff, 0x40000, 0xfffff, 0x100000, 0x10ffff];

/** Exactly `n` bytes of valid UTF-8, biased to multi-byte characters and range edges. */
export function randomUtf8(rng: Rng, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let i = 0;
  while (i < n) {
    const w = Math.min(n - i, rng() < 0.5 ? 1 : int(rng, 1, 4));
    const edge = rng() < 0.3;
    let cp: number;
    switch (w) {
      case 1:
        out[i++] = int(rng, 0, 0x7f);
        break;
      case 2:
        cp = edge ? pick(rng, EDGE_2) : int(rng, 0x80, 0x7ff);
        out[i++] = 0xc0 | (cp >> 6);
        out[i++] = 0x80 | (cp & 0x3f);
        break;
      case 3:
        do cp = edge ? pick(rng, EDGE_3) : int(rng, 0x800, 0xffff);
        while (cp >= 0xd800 && cp <= 0xdfff);
        out[i++] = 0xe0 | (cp >> 12);
        out[i++] = 0x80 | ((cp >> 6) & 0x3f);
        out[i++] = 0x80 | (cp & 0x3f);
        break;
      default:
        cp = edge ? pick(rng, EDGE_4) : int(rng, 0x10000, 0x10ffff);
        out[i++] = 0xf0 | (cp >> 18);
        out[i++] = 0x80 | ((cp >> 12) & 0x3f);
        out[i++] = 0x80 | ((cp >> 6) & 0x3f);
        out[i++] = 0x80 | (cp & 0x3f);
    }
  }
  return out;
}

/** Ill-formed sequences: overlongs, surrogates, above U+10FFFF, stray/missing continuations. */
const INVALID_UTF8: readonly number[][] = [
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xe0, 0x9f, 0xbf],
  [0xf0, 0x80, 0x80, 0x80],
  [0xf0, 0x8f, 0xbf, 0xbf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5, 0x80, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xfe],
  [0xff],
  [0x80],
  [0xbf],
  [0x80, 0x80],
  [0xc2, 0x41],
  [0xe2, 0x82, 0x41],
  [0xf0, 0x9f, 0x98, 0x41],
  [0xe2, 0x28, 0xa1],
];
/** Valid beginnings of a character, invalid only if the message ends there. */
const TRUNCATED_UTF8: readonly number[][] = [
  [0xc3],
  [0xdf],
  [0xe2, 0x82],
  [0xed, 0x9f],
  [0xf0, 0x9f, 0x98],
  [0xf4, 0x8f, 0xbf],
  [0xf0],
];

/** About `n` bytes of text with one ill-formed sequence (or a truncated last character). */
export function invalidUtf8(rng: Rng, n: number): Buffer {
  const base = randomUtf8(rng, n);
  if (chance(rng, 0.25)) return Buffer.concat([base, Buffer.from(pick(rng, TRUNCATED_UTF8))]);
  const boundaries = [0];
  for (let i = 1; i <= base.length; i++) if (i === base.length || (base[i] & 0xc0) !== 0x80) boundaries.push(i);
  const at = pick(rng, boundaries);
  return Buffer.concat([base.subarray(0, at), Buffer.from(pick(rng, INVALID_UTF8)), base.subarray(at)]);
}

/** True when `buf` can be continued into valid UTF-8 (it is a prefix of some valid string). */
export function isUtf8Prefix(buf: Buffer): boolean {
  if (isUtf8(buf)) return true;
  // At most 3 bytes of an unfinished character can be pending. Every allowed range of the
  // byte after a lead byte (80-BF, A0-BF, 80-9F, 90-BF, 80-8F) contains 80, 90 or A0, and any
  // later continuation byte may be 80: these completions cover every case.
  for (let j = 1; j <= Math.min(3, buf.length); j++) {
    if (!isUtf8(buf.subarray(0, buf.length - j))) continue;
    const tail = buf.subarray(buf.length - j);
    for (let k = 1; k <= 3; k++) {
      for (const first of [0x80, 0x90, 0xa0]) {
        const completion = [first, ...new Array<number>(k - 1).fill(0x80)];
        if (isUtf8(Buffer.concat([tail, Buffer.from(completion)]))) return true;
      }
    }
  }
  return false;
}

// ---- frames ----------------------------------------------------------------------------------

export interface FrameSpec {
  opcode: number;
  payload: Buffer;
  fin?: boolean;
  /** 0-7: RSV1..RSV3. */
  rsv?: number;
  /** Default: the direction the receiver expects. */
  masked?: boolean;
  /** Length encoding; default minimal. */
  enc?: 7 | 16 | 64;
  /** Length written in the header (default payload.length); the payload bytes are sent as-is. */
  declared?: bigint;
  /** Set the most significant bit of a 64-bit length. */
  msb?: boolean;
}

export function encodeFrameSpec(rng: Rng, spec: FrameSpec, defaultMasked: boolean): Buffer {
  const masked = spec.masked ?? defaultMasked;
  const length = spec.declared ?? BigInt(spec.payload.length);
  const enc = spec.enc ?? (length < 126n ? 7 : length <= 0xffffn ? 16 : 64);
  const head: number[] = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f)];
  const m = masked ? 0x80 : 0;
  if (enc === 7) head.push(m | Number(length & 0x7fn));
  else if (enc === 16) head.push(m | 126, Number((length >> 8n) & 0xffn), Number(length & 0xffn));
  else {
    head.push(m | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((length >> shift) & 0xffn));
    if (spec.msb) head[2] = head[2] | 0x80;
  }
  if (!masked) return Buffer.concat([Buffer.from(head), spec.payload]);
  const key = randomBuffer(rng, 4);
  const body = Buffer.from(spec.payload);
  for (let i = 0; i < body.length; i++) body[i] = body[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

export function closeBody(code: number, reason: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(2 + reason.length);
  b.writeUInt16BE(code, 0);
  reason.copy(b, 2);
  return b;
}

// ---- generator -------------------------------------------------------------------------------

export interface GenConfig {
  maxPayload: number;
  /** Frames are masked by default (client to server). */
  masked: boolean;
  /** Allow payloads of thousands of bytes up to maxPayload (live server); else keep them small. */
  large: boolean;
}

export interface Sequence {
  frames: Buffer[];
  /** What the generator did, for failure messages. */
  labels: string[];
}

const VALID_CLOSE = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
const INVALID_CLOSE = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 0xffff];
const RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf];

export function generateSequence(rng: Rng, cfg: GenConfig): Sequence {
  const frames: Buffer[] = [];
  const labels: string[] = [];
  const add = (label: string, ...specs: FrameSpec[]): void => {
    labels.push(label);
    for (const spec of specs) frames.push(encodeFrameSpec(rng, spec, cfg.masked));
  };
  const size = (): number => {
    const r = rng();
    if (!cfg.large) return r < 0.8 ? int(rng, 0, 40) : r < 0.97 ? int(rng, 41, 200) : int(rng, 126, 600);
    if (r < 0.7) return int(rng, 0, 40);
    if (r < 0.85) return int(rng, 41, 125);
    if (r < 0.95) return int(rng, 126, 2000);
    if (r < 0.99 || cfg.maxPayload <= 0xffff) return int(rng, 2001, Math.min(20000, cfg.maxPayload));
    return int(rng, 0x10000, cfg.maxPayload);
  };
  const controlPayload = (): Buffer => randomBuffer(rng, chance(rng, 0.7) ? int(rng, 0, 10) : int(rng, 0, 125));
  const data = (text: boolean, n = size()): Buffer => (text ? randomUtf8(rng, n) : randomBuffer(rng, n));
  const anyValidFrame = (): FrameSpec => {
    const opcode = pick(rng, [1, 2, 9, 10]);
    return { opcode, payload: opcode >= 8 ? controlPayload() : data(opcode === 1, int(rng, 0, 30)) };
  };
  /** Split `payload` into fragment frames, with control frames in between now and then. */
  const fragmented = (opcode: number, payload: Buffer, count: number): FrameSpec[] => {
    const cuts = Array.from({ length: count - 1 }, () => int(rng, 0, payload.length)).sort((a, b) => a - b);
    const bounds = [0, ...cuts, payload.length];
    const specs: FrameSpec[] = [];
    for (let i = 0; i < count; i++) {
      specs.push({
        opcode: i === 0 ? opcode : 0,
        fin: i === count - 1,
        payload: payload.subarray(bounds[i], bounds[i + 1]),
      });
      if (i < count - 1 && chance(rng, 0.3)) specs.push({ opcode: pick(rng, [9, 10]), payload: controlPayload() });
    }
    return specs;
  };

  const valid = (): boolean => {
    const r = rng();
    if (r < 0.25) add('text', { opcode: 1, payload: data(true) });
    else if (r < 0.45) add('binary', { opcode: 2, payload: data(false) });
    else if (r < 0.7) {
      const text = chance(rng, 0.5);
      add(text ? 'frag-text' : 'frag-binary', ...fragmented(text ? 1 : 2, data(text), int(rng, 2, 5)));
    } else if (r < 0.82) add('ping', { opcode: 9, payload: controlPayload() });
    else if (r < 0.88) add('pong', { opcode: 10, payload: controlPayload() });
    else if (r < 0.96) add('empty', { opcode: pick(rng, [1, 2]), payload: Buffer.alloc(0) });
    else {
      const closeKind = rng();
      if (closeKind < 0.3) add('close-empty', { opcode: 8, payload: Buffer.alloc(0) });
      else
        add('close-valid', {
          opcode: 8,
          payload: closeBody(pick(rng, VALID_CLOSE), randomUtf8(rng, int(rng, 0, chance(rng, 0.2) ? 123 : 20))),
        });
      return true;
    }
    return false;
  };

  /** One broken item. Returns true when nothing should follow (close, truncation). */
  const mutation = (): boolean => {
    const kind = int(rng, 0, 15);
    switch (kind) {
      case 0:
        add('rsv', { ...anyValidFrame(), rsv: int(rng, 1, 7) });
        return false;
      case 1:
        add('reserved-opcode', { opcode: pick(rng, RESERVED_OPCODES), payload: randomBuffer(rng, int(rng, 0, 20)) });
        return false;
      case 2:
        add('wrong-mask-bit', { ...anyValidFrame(), masked: !cfg.masked });
        return false;
      case 3: {
        const spec = anyValidFrame();
        const enc = spec.payload.length > 0xffff ? 64 : pick(rng, [16, 64] as const);
        add(`non-minimal-${enc}`, { ...spec, enc });
        return false;
      }
      case 4:
        add('msb-length', { ...anyValidFrame(), enc: 64, msb: true });
        return false;
      case 5: {
        const over = pick(rng, [1n, BigInt(int(rng, 2, 5000)), 1n << 32n, (1n << 53n) + 7n, (1n << 62n) + 3n]);
        add('over-max', {
          opcode: pick(rng, [1, 2]),
          payload: randomBuffer(rng, int(rng, 0, 16)),
          declared: BigInt(cfg.maxPayload) + over,
        });
        return false;
      }
      case 6: {
        if (!cfg.large || !chance(rng, 0.3)) {
          add(
            'over-max-frag',
            { opcode: 2, fin: false, payload: randomBuffer(rng, int(rng, 0, 100)) },
            { opcode: 0, payload: randomBuffer(rng, 5), declared: BigInt(cfg.maxPayload) },
          );
        } else {
          const first = int(rng, cfg.maxPayload >> 1, cfg.maxPayload);
          add(
            'over-max-frag-big',
            { opcode: 1, fin: false, payload: randomUtf8(rng, first) },
            { opcode: 0, payload: randomUtf8(rng, 10), declared: BigInt(cfg.maxPayload - first + int(rng, 1, 100)) },
          );
        }
        return false;
      }
      case 7: {
        const opcode = pick(rng, [8, 9, 10]);
        const n = int(rng, 126, 300);
        const payload = opcode === 8 ? closeBody(1000, randomUtf8(rng, n - 2)) : randomBuffer(rng, n);
        add('big-control', chance(rng, 0.8) ? { opcode, payload } : { opcode, payload, enc: 64 });
        return false;
      }
      case 8:
        add('fragmented-control', { opcode: pick(rng, [8, 9, 10]), fin: false, payload: controlPayload() });
        return false;
      case 9:
        add('lone-continuation', {
          opcode: 0,
          fin: chance(rng, 0.5),
          payload: data(chance(rng, 0.5), int(rng, 0, 20)),
        });
        return false;
      case 10:
        add(
          'new-data-in-fragmented',
          { opcode: pick(rng, [1, 2]), fin: false, payload: data(true, int(rng, 0, 20)) },
          { opcode: pick(rng, [1, 2]), payload: data(true, int(rng, 0, 20)) },
        );
        return false;
      case 11:
        add('bad-utf8', { opcode: 1, payload: invalidUtf8(rng, size()) });
        return false;
      case 12:
        add('bad-utf8-frag', ...fragmented(1, invalidUtf8(rng, int(rng, 0, 60)), int(rng, 2, 5)));
        return false;
      case 13: {
        const r = rng();
        if (r < 0.4)
          add('close-bad-code', {
            opcode: 8,
            payload: closeBody(pick(rng, INVALID_CLOSE), randomUtf8(rng, int(rng, 0, 10))),
          });
        else if (r < 0.6) add('close-1-byte', { opcode: 8, payload: randomBuffer(rng, 1) });
        else
          add('close-bad-reason', {
            opcode: 8,
            payload: closeBody(pick(rng, VALID_CLOSE), invalidUtf8(rng, int(rng, 0, 30)).subarray(0, 123)),
          });
        return true;
      }
      case 14: {
        // Declared length longer than what is sent; the client then half-closes.
        const text = chance(rng, 0.5);
        const payload = data(text, int(rng, 0, 200));
        add('truncated', { opcode: text ? 1 : 2, payload, declared: BigInt(payload.length + int(rng, 1, 2000)) });
        return true;
      }
      default:
        // A fragmented message left open; what follows decides whether that is a violation.
        add('unfinished-fragmented', { opcode: pick(rng, [1, 2]), fin: false, payload: data(true, int(rng, 0, 20)) });
        return false;
    }
  };

  const clean = chance(rng, 0.35);
  const items = int(rng, 1, 6);
  for (let i = 0; i < items; i++) {
    const last = !clean && chance(rng, 0.3) ? mutation() : valid();
    if (last) break;
  }
  if (chance(rng, 0.1) && frames.length > 0) {
    const flips = chance(rng, 0.7) ? 1 : int(rng, 2, 3);
    for (let f = 0; f < flips; f++) {
      const idx = int(rng, 0, frames.length - 1);
      const frame = frames[idx];
      const pos = chance(rng, 0.5) ? int(rng, 0, Math.min(frame.length, 14) - 1) : int(rng, 0, frame.length - 1);
      const bit = int(rng, 0, 7);
      frame[pos] = frame[pos] ^ (1 << bit);
      labels.push(`flip(frame ${idx}, byte ${pos}, bit ${bit})`);
    }
  }
  return { frames, labels };
}

// ---- oracle ----------------------------------------------------------------------------------

export type OracleEvent =
  { type: 'message'; binary: boolean; data: Buffer } | { type: 'ping'; data: Buffer } | { type: 'pong'; data: Buffer };

export type OracleEnd =
  /** A valid Close frame arrived; code 1005 when it carried none. */
  | { type: 'close'; code: number; reason: Buffer }
  /** The receiver must fail the connection with `code` (1002, 1007, 1009). */
  | { type: 'fail'; code: number; why: string }
  /** The input ended on a frame boundary. */
  | { type: 'open' }
  /** The input ended inside a frame, before any violation could be seen. */
  | { type: 'truncated' };

export interface Prediction {
  events: OracleEvent[];
  end: OracleEnd;
}

function closeCodeAllowed(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

export function predict(bytes: Buffer, cfg: { maxPayload: number; masked: boolean }): Prediction {
  const events: OracleEvent[] = [];
  const fail = (code: number, why: string): Prediction => ({ events, end: { type: 'fail', code, why } });
  let off = 0;
  let messageOpcode = 0; // 0: no fragmented message in progress
  let parts: Buffer[] = [];
  let messageLength = 0;

  for (;;) {
    const left = bytes.length - off;
    if (left === 0) return { events, end: { type: 'open' } };
    if (left < 2) return { events, end: { type: 'truncated' } };
    const b0 = bytes[off];
    const b1 = bytes[off + 1];
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    const control = opcode >= 8;
    if ((b0 & 0x70) !== 0) return fail(1002, 'reserved bit set');
    if (opcode !== 0 && opcode !== 1 && opcode !== 2 && opcode !== 8 && opcode !== 9 && opcode !== 10)
      return fail(1002, 'reserved opcode');
    if (opcode === 0 && messageOpcode === 0) return fail(1002, 'continuation without a message');
    if ((opcode === 1 || opcode === 2) && messageOpcode !== 0)
      return fail(1002, 'new data frame inside a fragmented message');
    if (control && !fin) return fail(1002, 'fragmented control frame');
    if (control && len7 > 125) return fail(1002, 'control frame over 125 bytes');
    if (masked !== cfg.masked) return fail(1002, 'wrong mask bit');
    let p = off + 2;
    let length: number;
    if (len7 === 126) {
      if (bytes.length - p < 2) return { events, end: { type: 'truncated' } };
      length = bytes.readUInt16BE(p);
      p += 2;
      if (length < 126) return fail(1002, 'non-minimal 16-bit length');
    } else if (len7 === 127) {
      if (bytes.length - p < 8) return { events, end: { type: 'truncated' } };
      const big = bytes.readBigUInt64BE(p);
      p += 8;
      if (big >> 63n) return fail(1002, '64-bit length with MSB set');
      if (big <= 0xffffn) return fail(1002, 'non-minimal 64-bit length');
      length = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
    } else {
      length = len7;
    }
    if (!control && messageLength + length > cfg.maxPayload) return fail(1009, 'message over maxPayload');
    const keyLength = masked ? 4 : 0;
    if (bytes.length - p < keyLength + length) {
      // A text frame cut short: what did arrive must still be able to begin valid UTF-8.
      const arrived = bytes.length - p - keyLength;
      const text = opcode === 1 || (opcode === 0 && messageOpcode === 1);
      if (text && arrived > 0) {
        const piece = Buffer.from(bytes.subarray(p + keyLength));
        if (masked) for (let i = 0; i < piece.length; i++) piece[i] = piece[i] ^ bytes[p + (i & 3)];
        if (!isUtf8Prefix(Buffer.concat([...parts, piece])))
          return fail(1007, 'invalid UTF-8 in a text frame cut short');
      }
      return { events, end: { type: 'truncated' } };
    }
    const payload = Buffer.from(bytes.subarray(p + keyLength, p + keyLength + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i] ^ bytes[p + (i & 3)];
    off = p + keyLength + length;

    if (opcode === 9) {
      events.push({ type: 'ping', data: payload });
      continue;
    }
    if (opcode === 10) {
      events.push({ type: 'pong', data: payload });
      continue;
    }
    if (opcode === 8) {
      if (payload.length === 0) return { events, end: { type: 'close', code: 1005, reason: payload } };
      if (payload.length === 1) return fail(1002, '1-byte close payload');
      const code = payload.readUInt16BE(0);
      if (!closeCodeAllowed(code)) return fail(1002, `close code ${code}`);
      const reason = payload.subarray(2);
      if (!isUtf8(reason)) return fail(1007, 'invalid UTF-8 in close reason');
      return { events, end: { type: 'close', code, reason } };
    }
    if (opcode !== 0) messageOpcode = opcode;
    parts.push(payload);
    messageLength += length;
    const soFar = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    if (messageOpcode === 1) {
      if (fin ? !isUtf8(soFar) : !isUtf8Prefix(soFar)) return fail(1007, 'invalid UTF-8 in text message');
    }
    if (fin) {
      events.push({ type: 'message', binary: messageOpcode === 2, data: soFar });
      messageOpcode = 0;
      parts = [];
      messageLength = 0;
    }
  }
}

/** Short printable form of bytes for failure messages. */
export function hex(buf: Buffer, max = 256): string {
  return buf.length <= max ? buf.toString('hex') : `${buf.subarray(0, max).toString('hex')}… (${buf.length} bytes)`;
}
