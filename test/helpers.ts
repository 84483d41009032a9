/**
 * Shared test helpers: start a server on 127.0.0.1:0, speak raw bytes over TCP, build client
 * frames by hand, and read the server's frames back with an independent mini-decoder.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { WebSocketServer, type ServerOptions, type WebSocket } from '../src/index.js';

export const HOST = '127.0.0.1';

/** Start a WebSocketServer on 127.0.0.1 with a free port. */
export async function startServer<T extends typeof WebSocket = typeof WebSocket>(
  options: ServerOptions<T> = {},
): Promise<{ wss: WebSocketServer<T>; port: number; close: () => Promise<void> }> {
  const wss = new WebSocketServer<T>({ port: 0, host: HOST, ...options });
  await once(wss, 'listening');
  const address = wss.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    wss,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients ?? []) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

/** A valid client upgrade request for `path`. `extra` lines are added as-is. */
export function upgradeRequest(path = '/', extra: string[] = [], key = randomBytes(16).toString('base64')): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: ${HOST}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
    ...extra,
    '',
    '',
  ].join('\r\n');
}

/** Build a client frame by hand. Every field can be set wrong on purpose. */
export function clientFrame(opts: {
  opcode: number;
  payload?: Uint8Array | string;
  fin?: boolean;
  rsv?: number; // 0-7 -> RSV1..3 bits
  mask?: boolean; // default true (clients must mask)
  lengthEncoding?: 7 | 16 | 64; // force a (possibly non-minimal) length encoding
  declaredLength?: number; // lie about the length (bytes sent are still `payload`)
}): Buffer {
  const payload = typeof opts.payload === 'string' ? Buffer.from(opts.payload) : Buffer.from(opts.payload ?? []);
  const fin = opts.fin ?? true;
  const mask = opts.mask ?? true;
  const length = opts.declaredLength ?? payload.length;
  const enc = opts.lengthEncoding ?? (length < 126 ? 7 : length <= 0xffff ? 16 : 64);
  const head: number[] = [(fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opts.opcode];
  const m = mask ? 0x80 : 0;
  if (enc === 7) head.push(m | length);
  else if (enc === 16) head.push(m | 126, (length >> 8) & 0xff, length & 0xff);
  else {
    const hi = Math.floor(length / 2 ** 32);
    const lo = length >>> 0;
    head.push(
      m | 127,
      (hi >>> 24) & 0xff,
      (hi >>> 16) & 0xff,
      (hi >>> 8) & 0xff,
      hi & 0xff,
      (lo >>> 24) & 0xff,
      (lo >>> 16) & 0xff,
      (lo >>> 8) & 0xff,
      lo & 0xff,
    );
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, masked]);
}

/** A close payload: 2-byte code + reason. */
export function closePayload(code: number, reason: string | Buffer = ''): Buffer {
  const r = typeof reason === 'string' ? Buffer.from(reason) : reason;
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/** A frame the server sent, decoded by the tests' own minimal decoder. */
export interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Decode as many whole frames as `buf` holds; returns them and the unused rest. */
export function decodeFrames(buf: Buffer): { frames: ServerFrame[]; rest: Buffer } {
  const frames: ServerFrame[] = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off];
    const b1 = buf[off + 1];
    let len = b1 & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length - p < 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length - p < 8) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    let key: Buffer | undefined;
    if (masked) {
      if (buf.length - p < 4) break;
      key = buf.subarray(p, p + 4);
      p += 4;
    }
    if (buf.length - p < len) break;
    const payload = Buffer.from(buf.subarray(p, p + len));
    if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
    frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload });
    off = p + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** A raw TCP client that did the opening handshake. */
export class RawClient {
  readonly socket: net.Socket;
  /**
   * Everything received after the 101 response: a view of a buffer that grows by doubling,
   * so collecting a long stream costs linear time (a Buffer.concat per chunk was quadratic:
   * 20 MiB in 64 KiB reads took seconds on a slow machine).
   */
  get received(): Buffer {
    return this.store.subarray(0, this.storeLength);
  }
  /** The HTTP response head (status line and headers). */
  responseHead = '';
  ended = false;
  closed = false;
  private store: Buffer = Buffer.alloc(0);
  private storeLength = 0;
  private waiters: Array<() => void> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (!this.responseHead) {
        const all = Buffer.concat([this.received, chunk]);
        const end = all.indexOf('\r\n\r\n');
        if (end === -1) {
          this.store = all;
          this.storeLength = all.length;
          return;
        }
        this.responseHead = all.subarray(0, end).toString('latin1');
        this.store = Buffer.from(all.subarray(end + 4));
        this.storeLength = this.store.length;
      } else {
        this.append(chunk);
      }
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private append(chunk: Buffer): void {
    const needed = this.storeLength + chunk.length;
    if (needed > this.store.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.store.length * 2, 64 * 1024));
      this.store.copy(grown, 0, 0, this.storeLength);
      this.store = grown;
    }
    chunk.copy(this.store, this.storeLength);
    this.storeLength = needed;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Connect and send `request` (default: a valid upgrade to `/`). Resolves when the response head arrived or TCP closed. */
  static async connect(port: number, request: string | Buffer = upgradeRequest()): Promise<RawClient> {
    const socket = net.connect(port, HOST);
    socket.setNoDelay(true);
    await once(socket, 'connect');
    const client = new RawClient(socket);
    socket.write(request);
    await client.until(() => client.responseHead !== '' || client.closed, 5000);
    return client;
  }

  /** The HTTP status code of the response (0 if none). */
  get status(): number {
    const m = /^HTTP\/1\.1 (\d{3})/.exec(this.responseHead);
    return m ? Number(m[1]) : 0;
  }

  /** Wait until `cond()` is true (re-checked on each event), failing after `ms`. */
  until(cond: () => boolean, ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** Frames received so far. */
  frames(): ServerFrame[] {
    return decodeFrames(this.received).frames;
  }

  /** Wait for the server's Close frame and for TCP to close; returns the close code (1005 if none, 0 if no Close frame). */
  async closeCode(ms = 5000): Promise<number> {
    await this.until(() => this.closed, ms);
    const close = this.frames().find((f) => f.opcode === 0x8);
    if (!close) return 0;
    return close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005;
  }

  write(data: Buffer | string): void {
    this.socket.write(data);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Resolves with the code and reason of the next `close` event of a ws or duet socket. */
export function closeEvent(socket: {
  once(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
}): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    socket.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString('utf8') }));
  });
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolve in the next event-loop turn (after this turn's writes are flushed). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** `p`, or a rejection naming `what` after `ms`: a generous bound on an event, never a speed test. */
export function within<V>(p: Promise<V>, ms = 10_000, what = 'an event'): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * With a broker between processes, a subscription takes effect once the process's watch of the
 * topic reached the broker (a round trip): send probe messages from the first client until
 * every client has heard one (at most 200, 100 ms apart). `withoutProbes` drops them again.
 */
export async function probeUntilAllHear(
  chats: Array<{ ws: { send(data: string): void }; got: string[] }>,
): Promise<void> {
  for (let probe = 0; !chats.every((c) => c.got.some((m) => m.startsWith('probe'))); probe++) {
    if (probe >= 200) throw new Error('the subscriptions never took effect');
    chats[0].ws.send(`probe${probe}`);
    await sleep(100);
  }
}

/** What a client got, without the messages of probeUntilAllHear. */
export function withoutProbes(got: string[]): string[] {
  return got.filter((m) => !m.startsWith('probe'));
}

/** Poll `cond` until true, failing with `what()` after `ms` (a generous bound, never a speed test). */
export async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await sleep(5);
  }
}

/** A small seeded PRNG (mulberry32) so random tests replay exactly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Record what a channel server refuses on this connection, where it is sent: the code of each
 * `error` and of each refused entry of an `acks` (so a refusal the client handles quietly, a
 * `rate_limited` it retries, is counted all the same), and each close code it sends.
 */
export function recordRefusals(ws: WebSocket, refusals: string[], closes: number[]): void {
  const send = ws.send.bind(ws);
  ws.send = (data: unknown, ...rest: unknown[]) => {
    if (typeof data === 'string' && (data.startsWith('{"type":"error"') || data.startsWith('{"type":"acks"'))) {
      const msg = JSON.parse(data) as { code?: string; acks?: { code?: string }[] };
      for (const entry of msg.acks ?? [msg]) if (entry.code !== undefined) refusals.push(entry.code);
    }
    return (send as (...args: unknown[]) => void)(data, ...rest);
  };
  const close = ws.close.bind(ws);
  ws.close = (code?: number, reason?: string) => {
    if (code !== undefined) closes.push(code);
    close(code, reason);
  };
}

/**
 * The processes holding the server side of the established TCP connections on `port` (Linux:
 * `ss -tnp`): which `--workers` process accepted which connection.
 */
export function serverPidsOn(port: number): Set<number> {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}
