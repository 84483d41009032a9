#!/usr/bin/env node
/**
 * Load-generator process for bench/run.mjs (started by it, pinned away from the server):
 * raw TCP WebSocket clients (lib/wire.mjs) that drive one scenario and verify everything
 * they receive.
 *
 *   node bench/lib/loader.mjs --port=P --kind=echo|chat|handshake|idle [options]
 *
 * Talks to the harness over IPC:
 *   -> ready {n}                 all connections are open (handshakes checked)
 *   <- go                        start the traffic
 *   <- mark   -> mark {...}      counters and latency histogram since the previous mark
 *   <- stop   -> stopped {...}   no new traffic; in-flight messages drained (or not)
 *   <- verify {expect} -> report {ok, errors}   final check, then every connection is closed
 *
 * BENCH_FAULT=corrupt|drop|dup breaks one received message on purpose (the harness must
 * then report the run INVALID): corrupt flips a payload byte, drop ignores a message, dup
 * counts one twice.
 */
import { randomBytes } from 'node:crypto';
import { arg } from './proc.mjs';
import { Histogram, monoUs } from './hist.mjs';
import { connect, maskedFrame, closeFrame, handshakeKey, readDigits, writeDigits } from './wire.mjs';

const port = Number(arg('port'));
const kind = arg('kind');
const conns = Number(arg('conns', '1'));
const idBase = Number(arg('id-base', '0'));
const fault = process.env.BENCH_FAULT ?? '';
const FAULT_AT = 100;

const readBuffer = Buffer.allocUnsafe(256 * 1024);
const errors = [];
const fail = (msg) => {
  if (errors.length < 8) errors.push(msg);
};
const hist = new Histogram();
let count = 0; // messages (or handshakes) completed
let bytes = 0; // payload bytes completed
let running = false;
let late = 0;
const open = [];

const noop = () => {};
const baseHandlers = {
  open: noop,
  start: (c, op) => fail(`conn ${c.id}: unexpected data frame (opcode ${op})`),
  data: noop,
  end: noop,
  close: (c, code) => {
    if (!c.closing) fail(`conn ${c.id}: server closed with ${code}`);
  },
  fail: (c, msg) => fail(`conn ${c.id}: ${msg}`),
  gone: (c) => {
    if (!c.closing) fail(`conn ${c.id}: connection lost`);
  },
};

/** Open `n` connections, at most `parallel` handshakes at a time; resolves with them. */
async function openAll(path, n, handlers, parallel = 64, extensions = '') {
  let next = 0;
  const out = new Array(n);
  const one = () =>
    new Promise((resolve, reject) => {
      const id = idBase + next;
      const slot = next++;
      const h = {
        ...handlers,
        open: (c) => {
          out[slot] = c;
          handlers.open(c);
          resolve();
        },
        fail: (c, msg) => {
          if (!c.upgraded) reject(new Error(`handshake ${c.id}: ${msg}`));
          else handlers.fail(c, msg);
        },
        gone: (c) => {
          if (!c.upgraded) reject(new Error(`handshake ${c.id}: connection closed`));
          else handlers.gone(c);
        },
      };
      connect(port, path, readBuffer, h, id, undefined, extensions);
    });
  await Promise.all(
    Array.from({ length: Math.min(parallel, n) }, async () => {
      while (next < n) await one();
    }),
  );
  return out;
}

/** Wait until `done()` or the deadline; true when done. */
async function until(done, ms) {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

function closeAll() {
  for (const c of open) {
    if (c === undefined) continue;
    c.closing = true;
    c.socket.destroy();
  }
}

// ---- echo: closed loop, `inflight` messages outstanding per connection ---------------------

async function echo() {
  const size = Number(arg('size', '32'));
  const inflight = Number(arg('inflight', '1'));
  const text = arg('text', 'false') === 'true';
  const op = text ? 1 : 2;
  // A pool of distinct payloads: message i of connection c is payload (7c + i) mod K, so a
  // lost, duplicated or reordered echo compares against the wrong bytes. K > inflight.
  const K = Math.max(17, inflight + 1);
  const payloads = [];
  for (let k = 0; k < K; k++) {
    if (text) {
      // ASCII JSON-ish text of exactly `size` bytes.
      const s = `{"n":${k},"m":"${'hello, world! '.repeat(Math.ceil(size / 14))}`.slice(0, size - 2) + '"}';
      payloads.push(Buffer.from(s, 'utf8'));
    } else payloads.push(randomBytes(size));
  }
  const frames = payloads.map((p) => maskedFrame(op, p));

  const send = (c) => {
    const v = (c.id * 7 + c.sent) % K;
    c.times[c.sent % inflight] = monoUs();
    c.sent++;
    c.socket.write(frames[v]);
  };
  let received = 0;
  const handlers = {
    ...baseHandlers,
    open: (c) => {
      c.sent = 0;
      c.recv = 0;
      c.pos = 0;
      c.v = 0;
      c.times = new Float64Array(inflight);
    },
    start: (c, fop, fin, len) => {
      c.v = (c.id * 7 + c.recv) % K;
      c.pos = 0;
      if (fop !== op || !fin || len !== size)
        fail(`conn ${c.id}: echo frame opcode ${fop} fin ${fin} length ${len}, expected ${op} 1 ${size}`);
      if (c.recv >= c.sent) fail(`conn ${c.id}: an echo nobody asked for`);
    },
    data: (c, buf, s, e) => {
      if (fault === 'corrupt' && received === FAULT_AT && c.pos === 0) buf[s] ^= 0x20;
      const p = payloads[c.v];
      if (c.pos + (e - s) > p.length || buf.compare(p, c.pos, c.pos + (e - s), s, e) !== 0) {
        fail(`conn ${c.id}: echo ${c.recv} differs from what was sent`);
      }
      c.pos += e - s;
    },
    end: (c) => {
      received++;
      if (fault === 'drop' && received === FAULT_AT) return;
      hist.add(monoUs() - c.times[c.recv % inflight]);
      c.recv++;
      if (fault === 'dup' && received === FAULT_AT) c.recv++;
      count++;
      bytes += size;
      if (running) send(c);
    },
  };
  open.push(...(await openAll('/echo', conns, handlers)));
  return {
    go() {
      running = true;
      for (const c of open) {
        c.socket.cork();
        for (let i = 0; i < inflight; i++) send(c);
        process.nextTick(() => c.socket.uncork());
      }
    },
    async stop() {
      running = false;
      const drained = await until(() => open.every((c) => c.recv >= c.sent), 15000);
      if (!drained)
        fail(
          `echoes missing at the end: ${open.reduce((s, c) => s + c.sent - c.recv, 0)} of ${open.reduce((s, c) => s + c.sent, 0)}`,
        );
      return { sent: open.reduce((s, c) => s + c.sent, 0) };
    },
    async verify() {
      // A straggler (a duplicate) would arrive right after the drain: give it a moment.
      await new Promise((r) => setTimeout(r, 50));
      for (const c of open) if (c.recv !== c.sent) fail(`conn ${c.id}: sent ${c.sent}, got ${c.recv} echoes`);
    },
  };
}

// ---- chat: some connections send at a fixed rate, every connection checks every message ----

const TEXT = 'the quick brown fox jumps over the lazy dog, again';
// {"from":FF,"seq":QQQQQQQQQQ,"t":TTTTTTTTTTTTTTT,"text":"..."} with fixed-width fields.
const TEMPLATE = Buffer.from(`{"from":00,"seq":0000000000,"t":000000000000000,"text":"${TEXT}"}`);
const FROM_AT = TEMPLATE.indexOf('"from":') + 7;
const SEQ_AT = TEMPLATE.indexOf('"seq":') + 6;
const T_AT = TEMPLATE.indexOf('"t":') + 4;
const TAIL_AT = T_AT + 15;

async function chat() {
  const senders = Number(arg('senders', '0')); // senders in this process (its first connections)
  const totalSenders = Number(arg('total-senders', String(senders)));
  const firstSender = Number(arg('first-sender', '0'));
  const periodMs = Number(arg('period', '20'));
  const mode = arg('mode', 'steady');
  const len = TEMPLATE.length;
  const msg = Buffer.from(TEMPLATE);
  const mask = Buffer.allocUnsafe(4);
  let delivered = 0;
  let corrupted = false;

  const check = (c, buf, at) => {
    if (fault === 'corrupt' && delivered + 1 === FAULT_AT && !corrupted) {
      corrupted = true;
      buf[at + TAIL_AT + 5] ^= 0x20;
    }
    const from = readDigits(buf, at + FROM_AT, 2);
    const seq = readDigits(buf, at + SEQ_AT, 10);
    const t = readDigits(buf, at + T_AT, 15);
    if (
      from >= totalSenders ||
      buf.compare(TEMPLATE, TAIL_AT, len, at + TAIL_AT, at + len) !== 0 ||
      buf.compare(TEMPLATE, 0, FROM_AT, at, at + FROM_AT) !== 0
    ) {
      fail(`conn ${c.id}: a message that no sender sent`);
      return;
    }
    delivered++;
    if (fault === 'drop' && delivered === FAULT_AT) return;
    const expect = c.next[from];
    if (seq !== expect) fail(`conn ${c.id}: from ${from} got seq ${seq}, expected ${expect}`);
    c.next[from] = seq + 1;
    c.count++;
    count++;
    bytes += len;
    hist.add(monoUs() - t);
    if (fault === 'dup' && delivered === FAULT_AT) check(c, buf, at);
  };
  const handlers = {
    ...baseHandlers,
    open: (c) => {
      c.next = new Float64Array(totalSenders).fill(1);
      c.count = 0;
      c.scratch = null;
      c.pos = 0;
    },
    start: (c, op, fin, n) => {
      c.pos = 0;
      if (op !== 1 || !fin || n !== len)
        fail(`conn ${c.id}: frame opcode ${op} fin ${fin} length ${n}, expected 1 1 ${len}`);
    },
    data: (c, buf, s, e) => {
      if (c.pos === 0 && e - s === len) {
        c.pos = len;
        check(c, buf, s);
        return;
      }
      // Split across reads: collect the payload first.
      c.scratch ??= Buffer.allocUnsafe(len);
      if (c.pos + (e - s) <= len) buf.copy(c.scratch, c.pos, s, e);
      c.pos += e - s;
      c.split = true;
    },
    end: (c) => {
      if (c.split) {
        c.split = false;
        if (c.pos === len) check(c, c.scratch, 0);
      }
    },
  };
  open.push(...(await openAll('/chat', conns, handlers)));
  const sent = new Array(senders).fill(0);

  const sendFrom = (i) => {
    const c = open[i];
    const from = firstSender + i;
    writeDigits(msg, FROM_AT, 2, from);
    writeDigits(msg, SEQ_AT, 10, ++sent[i]);
    writeDigits(msg, T_AT, 15, Math.round(monoUs()));
    mask.writeUInt32LE((Math.random() * 0x100000000) >>> 0, 0);
    c.socket.write(maskedFrame(1, msg, mask));
  };
  // Ticks on a fixed grid (no drift): steady sends one sender per tick, round robin, on a
  // grid of period / senders; bursty sends every sender in the same callback every period.
  const grid = mode === 'steady' ? periodMs / senders : periodMs;
  let timer = null;
  let t0 = 0;
  let i = 0;
  const tick = () => {
    timer = null;
    if (!running) return;
    const now = performance.now();
    if (now - (t0 + i * grid) > grid) late++;
    if (mode === 'steady') sendFrom(i % senders);
    else for (let k = 0; k < senders; k++) sendFrom(k);
    i++;
    const wait = t0 + i * grid - performance.now();
    // Behind schedule: catch up in the next turn (a timer cannot wait less than 1 ms).
    if (wait < 1) timer = setImmediate(tick);
    else timer = setTimeout(tick, wait);
  };
  return {
    go() {
      running = true;
      if (senders === 0) return;
      // Senders in different processes start at an offset within the period.
      t0 = performance.now() + grid;
      timer = setTimeout(tick, grid);
    },
    async stop() {
      running = false;
      return { sent };
    },
    async verify(expect) {
      const done = () => open.every((c) => expect.every((n, s) => c.next[s] >= n + 1));
      await until(done, 15000);
      await new Promise((r) => setTimeout(r, 50));
      let bad = 0;
      for (const c of open) {
        for (let s = 0; s < totalSenders; s++) {
          if (c.next[s] !== expect[s] + 1) {
            if (bad++ < 3) fail(`conn ${c.id}: from sender ${s} got up to seq ${c.next[s] - 1}, expected ${expect[s]}`);
          }
        }
        if (c.count !== expect.reduce((a, b) => a + b, 0)) {
          if (bad++ < 3) fail(`conn ${c.id}: ${c.count} messages, expected ${expect.reduce((a, b) => a + b, 0)}`);
        }
      }
      if (bad > 0) fail(`${bad} connection/sender pairs incomplete`);
    },
  };
}

// ---- handshakes: connect, upgrade, close handshake, TCP close; `inflight` at a time --------

async function handshakes() {
  const inflight = Number(arg('inflight', '32'));
  const closing = closeFrame(1000);
  // A few keys in rotation: the server still hashes every one; the load generator need not.
  const keys = Array.from({ length: 64 }, () => handshakeKey());
  let active = 0;
  let started = 0;
  const handlers = {
    ...baseHandlers,
    open: (c) => {
      hist.add(monoUs() - c.t0);
      c.closing = true;
      c.socket.write(closing);
    },
    close: (c, code) => {
      if (code !== 1000) fail(`conn ${c.id}: closed with ${code}, expected 1000`);
    },
    fail: (c, msg) => {
      c.failed = true;
      fail(`conn ${c.id}: ${msg}`);
    },
    gone: (c) => {
      active--;
      if (c.failed) {
        /* reported */
      } else if (!c.upgraded) fail(`conn ${c.id}: closed before the upgrade`);
      else if (c.closeCode !== 1000) fail(`conn ${c.id}: TCP closed without the server's close frame`);
      else count++;
      if (running) one();
    },
  };
  const one = () => {
    active++;
    const c = connect(port, '/echo', readBuffer, handlers, idBase + started, keys[started & 63]);
    started++;
    c.t0 = monoUs();
  };
  open.length = 0;
  return {
    go() {
      running = true;
      for (let i = 0; i < inflight; i++) one();
    },
    async stop() {
      running = false;
      if (!(await until(() => active === 0, 15000))) fail(`${active} connections never finished their close`);
      return {};
    },
    async verify() {},
  };
}

// ---- idle: many open connections; at the end each echoes one message to prove it lives ----

async function idle() {
  const probe = Buffer.from('still there?');
  const frame = maskedFrame(1, probe);
  const handlers = {
    ...baseHandlers,
    open: (c) => {
      c.got = 0;
      c.pos = 0;
    },
    start: (c, op, fin, n) => {
      c.pos = 0;
      if (op !== 1 || !fin || n !== probe.length) fail(`conn ${c.id}: unexpected frame`);
    },
    data: (c, buf, s, e) => {
      if (fault === 'corrupt' && c.id === idBase) buf[s] ^= 0x20;
      if (buf.compare(probe, c.pos, c.pos + (e - s), s, e) !== 0) fail(`conn ${c.id}: echo differs`);
      c.pos += e - s;
    },
    end: (c) => {
      c.got++;
      count++;
    },
  };
  open.push(...(await openAll('/echo', conns, handlers)));
  return {
    go() {},
    async stop() {
      return {};
    },
    async verify() {
      for (const c of open) c.socket.write(frame);
      await until(() => open.every((c) => c.got >= 1), 20000);
      const bad = open.filter((c) => c.got !== 1);
      if (bad.length > 0) fail(`${bad.length} of ${open.length} idle connections did not echo exactly once`);
    },
  };
}

// ---- main ----------------------------------------------------------------------------------

// ---- echo with permessage-deflate ------------------------------------------------------------
// The raw client offers server_no_context_takeover and client_no_context_takeover, so it can
// send pre-compressed frames and inflate each reply on its own (zlib's one-shot inflate):
// the load generator stays cheap next to the server's inflate + compress per message.

async function echoDeflate() {
  const zlib = await import('node:zlib');
  const size = Number(arg('size', '16384'));
  const K = 17;
  const row = (i) =>
    `{"id":${i},"name":"item ${i}","price":${(100 + (i % 37) / 7).toFixed(4)},"tags":["live","demo"]},`;
  let rows = '';
  for (let i = 0; rows.length < size; i++) rows += row(i);
  const payloads = [];
  for (let k = 0; k < K; k++)
    payloads.push(Buffer.from(`{"k":${String(k).padStart(2, '0')},"rows":[${rows}`.slice(0, size), 'latin1'));
  const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const frames = payloads.map((p) =>
    maskedFrame(1, zlib.deflateRawSync(p, SYNC).subarray(0, -4), randomBytes(4), true),
  );
  const TAIL = Buffer.from([0, 0, 0xff, 0xff]);

  const send = (c) => {
    c.v = (c.id * 7 + c.sent) % K;
    c.t = monoUs();
    c.sent++;
    c.socket.write(frames[c.v]);
  };
  let received = 0;
  const handlers = {
    ...baseHandlers,
    open: (c) => {
      c.sent = 0;
      c.recv = 0;
      c.v = 0;
      c.t = 0;
      if (!/server_no_context_takeover/.test(c.extensions))
        fail(`conn ${c.id}: permessage-deflate without server_no_context_takeover: "${c.extensions}"`);
    },
    start: (c, op, fin, len, rsv1) => {
      if (op !== 1 || !fin || !rsv1)
        fail(`conn ${c.id}: echo frame opcode ${op} fin ${fin} rsv1 ${rsv1}, expected a compressed text frame`);
      c.buf = Buffer.allocUnsafe(len + 4);
      c.pos = 0;
    },
    data: (c, buf, s, e) => {
      buf.copy(c.buf, c.pos, s, e);
      c.pos += e - s;
    },
    end: (c) => {
      TAIL.copy(c.buf, c.pos);
      let text;
      try {
        text = zlib.inflateRawSync(c.buf, SYNC);
      } catch (err) {
        fail(`conn ${c.id}: echo ${c.recv} does not inflate: ${err.message}`);
      }
      received++;
      if (fault === 'corrupt' && received === FAULT_AT && text) text[0] ^= 0x20;
      if (text === undefined || !text.equals(payloads[c.v]))
        fail(`conn ${c.id}: echo ${c.recv} differs from what was sent`);
      if (fault === 'drop' && received === FAULT_AT) return;
      hist.add(monoUs() - c.t);
      c.recv++;
      count++;
      bytes += size;
      if (running) send(c);
    },
  };
  open.push(
    ...(await openAll(
      '/echo',
      conns,
      handlers,
      64,
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    )),
  );
  return {
    go() {
      running = true;
      for (const c of open) send(c);
    },
    async stop() {
      running = false;
      const drained = await until(() => open.every((c) => c.recv >= c.sent), 15000);
      if (!drained) fail(`echoes missing at the end: ${open.reduce((s, c) => s + c.sent - c.recv, 0)}`);
      return { sent: open.reduce((s, c) => s + c.sent, 0) };
    },
    async verify() {
      await new Promise((r) => setTimeout(r, 50));
      for (const c of open) if (c.recv !== c.sent) fail(`conn ${c.id}: sent ${c.sent}, got ${c.recv} echoes`);
    },
  };
}

const scenarios = { echo, chat, handshake: handshakes, idle, 'echo-deflate': echoDeflate };
let scenario;
try {
  scenario = await scenarios[kind]();
} catch (err) {
  process.send({ type: 'ready', ok: false, error: String(err?.message ?? err) });
  await new Promise((r) => setTimeout(r, 100));
  process.exit(1);
}
process.send({ type: 'ready', ok: true, n: open.length, errors });
process.on('message', async (m) => {
  if (m.type === 'go') scenario.go();
  else if (m.type === 'mark') {
    process.send({ type: 'mark', count, bytes, hist: hist.toJSON(), late });
    hist.reset();
  } else if (m.type === 'stop') {
    const r = await scenario.stop();
    process.send({ type: 'stopped', ...r, count, late });
  } else if (m.type === 'verify') {
    await scenario.verify(m.expect);
    closeAll();
    process.send({ type: 'report', ok: errors.length === 0, errors, count });
  }
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
