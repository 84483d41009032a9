/**
 * Live-server fuzz: thousands of seeded random frame sequences (valid frames and every kind of
 * broken one, see test/fuzz-model.ts) sent over real TCP, in random chunks with random pauses,
 * to an echo server. For each connection the independent oracle predicts, from the exact
 * bytes sent, the echoes and pongs the server must send, in order, and how it must close; the
 * server must also close TCP within a bound. A long-lived canary connection must keep working
 * throughout, and at the end no connection, socket or listener may be left over.
 *
 * Seeded: a failure prints FUZZ_SEED; `FUZZ_SEED=<n> node --import tsx --test
 * test/node/fuzz.test.ts` replays it (FUZZ_CASE=<i> runs only case i, FUZZ_CASES the count).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from '../../src/index.js';
import { RawClient, decodeFrames, seededRandom, startServer, upgradeRequest, type ServerFrame } from '../helpers.js';
import {
  chance,
  closeBody,
  encodeFrameSpec,
  generateSequence,
  hex,
  int,
  predict,
  randomBuffer,
  randomUtf8,
  type GenConfig,
  type Rng,
} from '../fuzz-model.js';

const SEED =
  process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const ONLY_CASE = process.env.FUZZ_CASE !== undefined ? Number(process.env.FUZZ_CASE) : undefined;
const CONCURRENCY = 20;
const CANARY_EVERY = 200;
// Slightly over 64 KiB so that valid frames with a 64-bit length (>= 65536 bytes) exist.
const MAX_PAYLOAD = 70_000;
const CLOSE_TIMEOUT = 500;
/** How long a connection may take to be closed by the server once everything is sent. */
const CLOSE_BOUND = 5_000;

const GEN: GenConfig = { maxPayload: MAX_PAYLOAD, masked: true, large: true };

function countTcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** A server frame in comparable form: opcode and payload. */
function show(f: { opcode: number; payload: Buffer }): string {
  const name = { 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' }[f.opcode] ?? `op${f.opcode}`;
  return `${name}[${f.payload.length}] ${hex(f.payload, 24)}`;
}

/** Cut `bytes` into chunks at random points (sometimes byte by byte). */
function chunk(rng: Rng, bytes: Buffer): Buffer[] {
  if (bytes.length === 0) return [];
  if (bytes.length <= 64 && chance(rng, 0.2)) return Array.from(bytes, (b) => Buffer.from([b]));
  const count = int(rng, 1, Math.min(8, bytes.length));
  const cuts = [...new Set(Array.from({ length: count - 1 }, () => int(rng, 1, bytes.length - 1)))].sort(
    (a, b) => a - b,
  );
  const bounds = [0, ...cuts, bytes.length];
  return bounds.slice(1).map((to, i) => bytes.subarray(bounds[i], to));
}

/** A pause between two writes: none (same tick), a setImmediate, or a short timer. */
function pause(rng: Rng): Promise<void> | undefined {
  const r = rng();
  if (r < 0.4) return undefined;
  if (r < 0.75) return new Promise((resolve) => setImmediate(resolve));
  const ms = int(rng, 0, 3);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface CaseResult {
  failure?: string;
}

async function runCase(port: number, index: number, caseSeed: number): Promise<CaseResult> {
  const rng = seededRandom(caseSeed);
  const seq = generateSequence(rng, GEN);
  let bytes = Buffer.concat(seq.frames);
  let prediction = predict(bytes, GEN);
  let halfClose = false;
  if (prediction.end.type === 'open' && chance(rng, 0.85)) {
    // Ended cleanly: finish with a proper Close 1000 and expect it echoed.
    bytes = Buffer.concat([
      bytes,
      encodeFrameSpec(rng, { opcode: 8, payload: closeBody(1000, randomUtf8(rng, int(rng, 0, 10))) }, true),
    ]);
    seq.labels.push('close-1000');
    prediction = predict(bytes, GEN);
  } else if (prediction.end.type === 'open' || prediction.end.type === 'truncated') {
    halfClose = true;
    seq.labels.push('half-close');
  }
  const expectedFrames: string[] = [];
  for (const e of prediction.events) {
    if (e.type === 'message') expectedFrames.push(show({ opcode: e.binary ? 2 : 1, payload: e.data }));
    else if (e.type === 'ping') expectedFrames.push(show({ opcode: 10, payload: e.data }));
  }
  const end = prediction.end;
  // The Close frame the server must send: its code (1005 = empty payload), or none at all when
  // the client half-closed TCP without a Close frame (the connection just ends, 1006).
  const expectedClose = end.type === 'close' ? end.code : end.type === 'fail' ? end.code : 'none';
  const why = end.type === 'fail' ? ` (${end.why})` : '';

  const chunks = chunk(rng, bytes);
  const inHead = chunks.length > 0 && chance(rng, 0.05);

  const describe = (actual: string): string =>
    [
      `case ${index} (FUZZ_SEED=${SEED} FUZZ_CASE=${index}, case seed ${caseSeed}): ${seq.labels.join(', ')}${inHead ? ' [first chunk sent with the handshake]' : ''}`,
      `  bytes: ${hex(bytes, 400)}`,
      `  chunks: ${chunks.map((c) => c.length).join('+')}`,
      `  expected: ${expectedFrames.length} frames, then ${expectedClose === 'none' ? 'no Close frame' : `Close ${expectedClose}`}${why}`,
      `  actual: ${actual}`,
    ].join('\n');

  const request = inHead ? Buffer.concat([Buffer.from(upgradeRequest()), chunks[0]]) : upgradeRequest();
  let client: RawClient;
  try {
    client = await RawClient.connect(port, request);
  } catch (err) {
    return { failure: describe(`handshake failed: ${String(err)}`) };
  }
  if (client.status !== 101) {
    client.destroy();
    return { failure: describe(`handshake status ${client.status}`) };
  }
  for (let i = inHead ? 1 : 0; i < chunks.length; i++) {
    if (client.closed || !client.socket.writable) break;
    client.write(chunks[i]);
    const p = pause(rng);
    if (p) await p;
  }
  if (halfClose && client.socket.writable) client.socket.end();
  try {
    await client.until(() => client.closed, CLOSE_BOUND);
  } catch {
    client.destroy();
    return {
      failure: describe(
        `TCP not closed by the server within ${CLOSE_BOUND} ms (hang); received ${hex(client.received, 64)}`,
      ),
    };
  }

  const { frames, rest } = decodeFrames(client.received);
  const bad = frames.find((f: ServerFrame) => f.masked || f.rsv !== 0 || !f.fin);
  if (bad) return { failure: describe(`server sent a masked, RSV or fragmented frame: ${show(bad)}`) };
  if (rest.length > 0)
    return { failure: describe(`${rest.length} trailing bytes that are no complete frame: ${hex(rest, 32)}`) };
  const closeIndex = frames.findIndex((f) => f.opcode === 8);
  if (closeIndex !== -1 && closeIndex !== frames.length - 1)
    return { failure: describe(`frames after the Close frame: ${frames.map(show).join(' | ')}`) };
  const close = closeIndex === -1 ? undefined : frames[closeIndex];
  const dataFrames = (close ? frames.slice(0, -1) : frames).map(show);
  const actualClose =
    close === undefined
      ? 'none'
      : close.payload.length === 0
        ? 1005
        : close.payload.length >= 2
          ? close.payload.readUInt16BE(0)
          : `1-byte payload ${hex(close.payload)}`;
  try {
    assert.deepEqual(dataFrames, expectedFrames);
  } catch {
    return {
      failure: describe(
        `frames differ, got ${dataFrames.length}: ${dataFrames.join(' | ')}; expected ${expectedFrames.join(' | ')}; Close ${actualClose}`,
      ),
    };
  }
  if (actualClose !== expectedClose) {
    return {
      failure: describe(
        `${actualClose === 'none' ? 'no Close frame' : `Close ${actualClose}`} (echoed frames matched)`,
      ),
    };
  }
  return {};
}

/** The long-lived connection: every check sends a text, a binary and a ping, and expects them back. */
class Canary {
  private seen = 0;
  constructor(
    readonly client: RawClient,
    private readonly rng: Rng,
  ) {}

  async check(): Promise<string | undefined> {
    const text = randomUtf8(this.rng, int(this.rng, 0, 300));
    const binary = randomBuffer(this.rng, int(this.rng, 0, 300));
    const ping = randomBuffer(this.rng, int(this.rng, 0, 125));
    for (const spec of [
      { opcode: 1, payload: text },
      { opcode: 9, payload: ping },
      { opcode: 2, payload: binary },
    ]) {
      this.client.write(encodeFrameSpec(this.rng, spec, true));
    }
    const want = [
      show({ opcode: 1, payload: text }),
      show({ opcode: 10, payload: ping }),
      show({ opcode: 2, payload: binary }),
    ];
    try {
      await this.client.until(() => this.client.closed || this.client.frames().length >= this.seen + 3, CLOSE_BOUND);
    } catch {
      return `canary: no echo within ${CLOSE_BOUND} ms`;
    }
    const got = this.client
      .frames()
      .slice(this.seen, this.seen + 3)
      .map(show);
    this.seen += 3;
    try {
      assert.deepEqual(got, want);
    } catch {
      return `canary: got ${got.join(' | ')}, expected ${want.join(' | ')}`;
    }
    return undefined;
  }
}

test(
  `live server fuzz: ${ONLY_CASE !== undefined ? `case ${ONLY_CASE}` : `${CASES} connections`} with random and broken frames (FUZZ_SEED=${SEED})`,
  { timeout: 90_000 },
  async () => {
    const handlesBefore = countTcpHandles();
    const server = await startServer({ maxPayload: MAX_PAYLOAD, closeTimeout: CLOSE_TIMEOUT });
    const counts = { accepted: 0, closed: 0 };
    server.wss.on('connection', (ws: WebSocket) => {
      counts.accepted++;
      ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
      ws.on('close', () => counts.closed++);
    });
    const sockets: RawClient[] = [];
    try {
      await fuzz(server.port, sockets);
      // Every accepted connection ended on the server side too, and nothing is left over.
      await waitFor(() => counts.closed === counts.accepted && server.wss.clients.size === 0, 3_000);
      const expectedConnections = (ONLY_CASE !== undefined ? 1 : CASES) + 1;
      assert.equal(counts.accepted, expectedConnections, 'every connection (and the canary) was accepted');
      assert.equal(counts.closed, counts.accepted, 'server-side close emitted for every accepted connection');
      assert.equal(server.wss.clients.size, 0, 'server.clients is empty');
      await waitFor(() => countTcpHandles() === handlesBefore + 1, 3_000);
      assert.equal(countTcpHandles(), handlesBefore + 1, 'no TCP socket left open (only the listener)');
    } finally {
      // On failure too: a listening server or an open socket would keep the test process alive.
      for (const client of sockets) client.destroy();
      await server.close();
    }
    await waitFor(() => countTcpHandles() === handlesBefore, 3_000);
    assert.equal(countTcpHandles(), handlesBefore, 'no TCP handle left after the server closed');
  },
);

/** Run every case (CONCURRENCY at a time) and the canary checks; throws with all failures. */
async function fuzz(port: number, sockets: RawClient[]): Promise<void> {
  const master = seededRandom(SEED);
  const canaryRng = seededRandom(Math.floor(master() * 2 ** 32));
  const caseSeeds = Array.from({ length: ONLY_CASE !== undefined ? ONLY_CASE + 1 : CASES }, () =>
    Math.floor(master() * 2 ** 32),
  );
  const indices = ONLY_CASE !== undefined ? [ONLY_CASE] : caseSeeds.map((_, i) => i);

  const failures: string[] = [];
  const canaryClient = await RawClient.connect(port);
  sockets.push(canaryClient);
  assert.equal(canaryClient.status, 101);
  const canary = new Canary(canaryClient, canaryRng);
  const first = await canary.check();
  if (first) failures.push(first);

  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < indices.length && failures.length < 10) {
      const index = indices[next++];
      const result = await runCase(port, index, caseSeeds[index]);
      if (result.failure) failures.push(result.failure);
      if (++done % CANARY_EVERY === 0) {
        const problem = await canary.check();
        if (problem) failures.push(`after ${done} cases: ${problem}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  const last = await canary.check();
  if (last) failures.push(`at the end: ${last}`);
  canaryClient.write(encodeFrameSpec(canaryRng, { opcode: 8, payload: closeBody(1000) }, true));
  const canaryClose = await canaryClient.closeCode(CLOSE_BOUND).catch(() => 0);
  if (canaryClose !== 1000) failures.push(`canary: Close 1000 not echoed (got ${canaryClose})`);

  assert.equal(
    failures.length,
    0,
    `${failures.length} fuzz failure(s) in ${done} cases; replay with FUZZ_SEED=${SEED}\n\n${failures.join('\n\n')}`,
  );
}
