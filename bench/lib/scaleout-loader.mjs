#!/usr/bin/env node
/**
 * Load-generator process for bench/scaleout.mjs (started by it, pinned away from the servers):
 * raw TCP WebSocket clients (lib/wire.mjs) spread over one or more server processes, all in
 * one topic (duet) or room (Socket.IO); the first connections send on a fixed grid, every
 * connection checks every message it receives.
 *
 *   node bench/lib/scaleout-loader.mjs --protocol=duet|socketio --targets=PORT:N[,PORT:N...]
 *        --senders=S --total-senders=T --period=ms [--id-base=N]
 *
 * The senders are this process's first S connections, so the first target's (the harness puts
 * them all in the first loader, on the first server process). Steady: one send per tick, round
 * robin, on a grid of period / total senders (no drift; a late tick is counted, then caught up).
 *
 * Both protocols carry the same payload, text without quotes or backslashes (so that a JSON
 * string holds it byte for byte), with fixed-width fields the receivers read in place:
 *   from=FF seq=QQQQQQQQQQ t=TTTTTTTTTTTTTTT text=...
 * (t: the send time in us on a clock all processes share, for the latency).
 * - duet: the payload is the text frame, sent to /chat, delivered as it was sent.
 * - socketio: Socket.IO 4 spoken by hand over the websocket transport,
 *   /socket.io/?EIO=4&transport=websocket: the server's open packet `0{...}`, `40` to connect
 *   to the main namespace, `40{"sid":...}` back, then `420["join","chat"]` and its ack
 *   `430[true]` (the connection is ready once joined); engine.io pings `2` are answered `3`.
 *   A send is `42["pub","<payload>"]`, a delivery must be exactly `42["msg","<payload>"]`.
 *
 * IPC (as bench/lib/loader.mjs): -> ready {n}; <- go; <- mark -> mark {count, bytes, hist,
 * late}; <- stop -> stopped {sent}; <- verify {expect} -> report {ok, errors}.
 * BENCH_FAULT=corrupt|drop|dup breaks one received message on purpose (the run must be INVALID).
 */
import { arg } from './proc.mjs';
import { Histogram, monoUs } from './hist.mjs';
import { connect, maskedFrame, readDigits, writeDigits } from './wire.mjs';

const protocol = arg('protocol', 'duet');
if (protocol !== 'duet' && protocol !== 'socketio') throw new Error(`--protocol=duet|socketio, not ${protocol}`);
const SIO = protocol === 'socketio';
const targets = arg('targets', '')
  .split(',')
  .filter(Boolean)
  .map((t) => t.split(':').map(Number));
const senders = Number(arg('senders', '0'));
const totalSenders = Number(arg('total-senders', String(senders)));
const periodMs = Number(arg('period', '20'));
const idBase = Number(arg('id-base', '0'));
const fault = process.env.BENCH_FAULT ?? '';
const FAULT_AT = 100;

const readBuffer = Buffer.allocUnsafe(256 * 1024);
const errors = [];
const fail = (msg) => {
  if (errors.length < 8) errors.push(msg);
};
const hist = new Histogram();
let count = 0;
let bytes = 0;
let running = false;
let late = 0;
const open = [];

// ---- the payload and its envelopes ---------------------------------------------------------

const TEXT = 'the quick brown fox jumps over the lazy dog, again';
const TEMPLATE = Buffer.from(`from=00 seq=0000000000 t=000000000000000 text=${TEXT}`, 'latin1');
const LEN = TEMPLATE.length;
const FROM_AT = TEMPLATE.indexOf('from=') + 5;
const SEQ_AT = TEMPLATE.indexOf('seq=') + 4;
const T_AT = TEMPLATE.indexOf(' t=') + 3;
const TAIL_AT = T_AT + 15;
// Socket.IO: what is around the payload in a delivery (`42["msg","...`) and in a send.
const MSG_HEAD = Buffer.from('42["msg","', 'latin1');
const PUB_HEAD = Buffer.from('42["pub","', 'latin1');
const FOOT = Buffer.from('"]', 'latin1');
const HEAD_LEN = SIO ? MSG_HEAD.length : 0;
const DELIVERY_LEN = SIO ? MSG_HEAD.length + LEN + FOOT.length : LEN;
const OUT_HEAD = SIO ? PUB_HEAD : Buffer.alloc(0);
const OUT_FOOT = SIO ? FOOT : Buffer.alloc(0);
const OUT_AT = OUT_HEAD.length;
const outgoing = Buffer.concat([OUT_HEAD, TEMPLATE, OUT_FOOT]);

const SIO_CONNECT = maskedFrame(1, Buffer.from('40'));
const SIO_JOIN = maskedFrame(1, Buffer.from('420["join","chat"]'));
const SIO_JOINED = Buffer.from('430[true]');
const SIO_PONG = maskedFrame(1, Buffer.from('3'));

// ---- receiving -----------------------------------------------------------------------------

let delivered = 0;
let corrupted = false;

/** A delivery's payload at buf[at .. at + LEN]: the right bytes, the next seq of its sender. */
function check(c, buf, at) {
  if (fault === 'corrupt' && delivered + 1 === FAULT_AT && !corrupted) {
    corrupted = true;
    buf[at + TAIL_AT + 7] ^= 0x20;
  }
  const from = readDigits(buf, at + FROM_AT, 2);
  const seq = readDigits(buf, at + SEQ_AT, 10);
  const t = readDigits(buf, at + T_AT, 15);
  if (
    from >= totalSenders ||
    buf.compare(TEMPLATE, TAIL_AT, LEN, at + TAIL_AT, at + LEN) !== 0 ||
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
  bytes += DELIVERY_LEN;
  hist.add(monoUs() - t);
  if (fault === 'dup' && delivered === FAULT_AT) check(c, buf, at);
}

const text = (buf, s, e) => buf.latin1Slice(s, Math.min(e, s + 80));

/** One whole text message at buf[s..e]. */
function onMessage(c, buf, s, e) {
  if (!SIO) {
    if (e - s !== LEN) fail(`conn ${c.id}: a message of ${e - s} bytes, expected ${LEN}`);
    else check(c, buf, s);
    return;
  }
  const n = e - s;
  if (c.phase === 'ready') {
    if (n === DELIVERY_LEN && buf.compare(MSG_HEAD, 0, HEAD_LEN, s, s + HEAD_LEN) === 0) {
      if (buf.compare(FOOT, 0, FOOT.length, e - FOOT.length, e) !== 0) fail(`conn ${c.id}: a malformed msg event`);
      else check(c, buf, s + HEAD_LEN);
      return;
    }
  }
  if (n === 1 && buf[s] === 0x32) {
    c.socket.write(SIO_PONG); // engine.io ping
    return;
  }
  if (c.phase === 'open' && buf[s] === 0x30 && buf[s + 1] === 0x7b) {
    c.phase = 'connect';
    c.socket.write(SIO_CONNECT);
  } else if (c.phase === 'connect' && buf[s] === 0x34 && buf[s + 1] === 0x30 && buf[s + 2] === 0x7b) {
    c.phase = 'join';
    c.socket.write(SIO_JOIN);
  } else if (c.phase === 'join' && n === SIO_JOINED.length && buf.compare(SIO_JOINED, 0, n, s, e) === 0) {
    c.phase = 'ready';
    c.onReady();
  } else {
    fail(`conn ${c.id}: unexpected Socket.IO packet in phase ${c.phase}: ${text(buf, s, e)}`);
  }
}

const handlers = {
  open: (c) => {
    c.next = new Float64Array(totalSenders).fill(1);
    c.count = 0;
    c.len = 0;
    c.pos = 0;
    c.scratch = null;
    c.whole = false;
    if (SIO) c.phase = 'open';
    else c.onReady();
  },
  start: (c, op, fin, n) => {
    if (op !== 1 || !fin) fail(`conn ${c.id}: frame opcode ${op} fin ${fin}, expected one text frame`);
    c.len = n;
    c.pos = 0;
    c.whole = false;
  },
  data: (c, buf, s, e) => {
    if (c.pos === 0 && e - s === c.len) {
      c.whole = true;
      c.pos = c.len;
      onMessage(c, buf, s, e);
      return;
    }
    // Split across reads: collect the message first.
    if (c.scratch === null || c.scratch.length < c.len) c.scratch = Buffer.allocUnsafe(Math.max(c.len, 256));
    if (c.pos + (e - s) <= c.len) buf.copy(c.scratch, c.pos, s, e);
    c.pos += e - s;
  },
  end: (c) => {
    if (!c.whole && c.pos === c.len) onMessage(c, c.scratch ?? Buffer.alloc(0), 0, c.len);
  },
  close: (c, code) => {
    if (!c.closing) fail(`conn ${c.id}: server closed with ${code}`);
  },
  fail: (c, msg) => fail(`conn ${c.id}: ${msg}`),
  gone: (c) => {
    if (!c.closing) fail(`conn ${c.id}: connection lost`);
  },
};

const PATH = SIO ? '/socket.io/?EIO=4&transport=websocket' : '/chat';

/** Open `n` connections to `port` (at most 32 handshakes at a time); resolves once each is ready. */
async function openAll(port, n, first) {
  let next = 0;
  const out = new Array(n);
  const one = () =>
    new Promise((resolve, reject) => {
      const slot = next++;
      let c = null;
      const timer = setTimeout(() => reject(new Error(`conn ${idBase + first + slot}: not ready within 20 s`)), 20000);
      const done = () => {
        clearTimeout(timer);
        out[slot] = c;
        resolve();
      };
      const h = {
        ...handlers,
        open: (conn) => {
          conn.onReady = done;
          handlers.open(conn);
        },
        fail: (conn, msg) => {
          if (!conn.upgraded) reject(new Error(`handshake ${conn.id}: ${msg}`));
          else handlers.fail(conn, msg);
        },
        gone: (conn) => {
          if (!conn.upgraded) reject(new Error(`handshake ${conn.id}: connection closed`));
          else handlers.gone(conn);
        },
      };
      c = connect(port, PATH, readBuffer, h, idBase + first + slot);
    });
  await Promise.all(
    Array.from({ length: Math.min(32, n) }, async () => {
      while (next < n) await one();
    }),
  );
  return out;
}

// ---- sending -------------------------------------------------------------------------------

const sent = new Array(senders).fill(0);
const mask = Buffer.allocUnsafe(4);
function sendFrom(i) {
  const from = i;
  writeDigits(outgoing, OUT_AT + FROM_AT, 2, from);
  writeDigits(outgoing, OUT_AT + SEQ_AT, 10, ++sent[i]);
  writeDigits(outgoing, OUT_AT + T_AT, 15, Math.round(monoUs()));
  mask.writeUInt32LE((Math.random() * 0x100000000) >>> 0, 0);
  open[i].socket.write(maskedFrame(1, outgoing, mask));
}

const grid = periodMs / Math.max(1, totalSenders);
let t0 = 0;
let tickNo = 0;
function tick() {
  if (!running) return;
  if (performance.now() - (t0 + tickNo * grid) > grid) late++;
  sendFrom(tickNo % senders);
  tickNo++;
  const wait = t0 + tickNo * grid - performance.now();
  // Behind schedule: catch up in the next turn (a timer cannot wait less than 1 ms).
  if (wait < 1) setImmediate(tick);
  else setTimeout(tick, wait);
}

/**
 * Wait for `done()`, as long as deliveries keep arriving: false once none came for `idleMs`,
 * or after `maxMs` in all. A server that fell behind (Socket.IO past its capacity) is still
 * draining its backlog when the senders stop; it gets the time it needs while it makes progress.
 */
async function until(done, idleMs, maxMs) {
  const deadline = Date.now() + maxMs;
  let seen = count;
  let lastProgress = Date.now();
  while (!done()) {
    const now = Date.now();
    if (count !== seen) {
      seen = count;
      lastProgress = now;
    }
    if (now > deadline || now - lastProgress > idleMs) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

async function verify(expect) {
  const total = expect.reduce((a, b) => a + b, 0);
  await until(() => open.every((c) => expect.every((n, s) => c.next[s] >= n + 1)), 10000, 170000);
  // A straggler (a duplicate) would arrive right after: give it a moment.
  await new Promise((r) => setTimeout(r, 100));
  let bad = 0;
  for (const c of open) {
    for (let s = 0; s < totalSenders; s++) {
      if (c.next[s] !== expect[s] + 1 && bad++ < 3)
        fail(`conn ${c.id}: from sender ${s} got up to seq ${c.next[s] - 1}, expected ${expect[s]}`);
    }
    if (c.count !== total && bad++ < 3) fail(`conn ${c.id}: ${c.count} messages, expected ${total}`);
  }
  if (bad > 0) fail(`${bad} connection/sender pairs incomplete`);
}

// ---- main ----------------------------------------------------------------------------------

try {
  let first = 0;
  for (const [port, n] of targets) {
    open.push(...(await openAll(port, n, first)));
    first += n;
  }
  if (senders > open.length) throw new Error(`${senders} senders but only ${open.length} connections`);
} catch (err) {
  process.send({ type: 'ready', ok: false, error: String(err?.message ?? err) });
  await new Promise((r) => setTimeout(r, 100));
  process.exit(1);
}
process.send({ type: 'ready', ok: true, n: open.length });
process.on('message', async (m) => {
  if (m.type === 'go') {
    running = true;
    if (senders > 0) {
      t0 = performance.now() + grid;
      setTimeout(tick, grid);
    }
  } else if (m.type === 'mark') {
    process.send({ type: 'mark', count, bytes, hist: hist.toJSON(), late });
    hist.reset();
  } else if (m.type === 'stop') {
    running = false;
    process.send({ type: 'stopped', sent, count, late });
  } else if (m.type === 'verify') {
    await verify(m.expect);
    for (const c of open) {
      c.closing = true;
      c.socket.destroy();
    }
    process.send({ type: 'report', ok: errors.length === 0, errors, count });
  }
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
