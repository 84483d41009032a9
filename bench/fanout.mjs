#!/usr/bin/env node
/**
 * Fan-out benchmark: server CPU time to deliver published messages to many clients.
 *
 *   npm run bench:fanout                 (builds, then 3 rounds of every case and server, medians)
 *   node bench/fanout.mjs [--rounds=N] [--duration=ms] [--warmup=ms]
 *                         [--case=1|2] [--servers=duet,ws,raw] [--receivers=N]
 *   FANOUT_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" node bench/fanout.mjs --servers=duet
 *   FANOUT_FAULT=drop|dup node bench/fanout.mjs --duration=500   (must print INVALID: harness check)
 *   --batch=ms: receivers stop reading a drained socket and resume all every ms (off by default)
 *
 * Servers (each in its own child process, pinned to core 0 with taskset when available):
 *   duet  the built package: clients `ws.subscribe(topic)`, the server `wss.publish(topic, msg)`
 *   ws    ws 8 (with bufferutil / utf-8-validate), the usual loop:
 *         `wss.clients.forEach((c) => { if (c.readyState === WebSocket.OPEN) c.send(msg); })`
 *   raw   reference floor: a minimal hand-written node:net server that frames each message
 *         once and corks every socket until one setImmediate per turn (no checks, no limits)
 *
 * Cases (the publishers are simulated inside the server process, identically for every server):
 *   1  bursty: 100 clients; every 50 ms one timer callback performs 20 publishes (20
 *      publishers ticking together: all land in the same event-loop turn)
 *   2  steady: 500 clients; 5 publishers every 20 ms each, staggered on a 4 ms grid so every
 *      publish is its own event-loop turn
 *
 * Measurement: the server reports process.cpuUsage() (user + system, all its threads) taken
 * at the start of the first and of the last+1 measured tick, after a warm-up; that window holds
 * exactly the measured ticks' publishes and their flushes. Receivers (separate processes,
 * pinned to core 1, raw TCP clients with a hand-written handshake and minimal frame decoding:
 * bench/lib/wire.mjs, shared with bench/run.mjs) check that every client got every message
 * of the run exactly once and in order (a sequence number in each payload); a run that fails
 * the check prints INVALID instead of numbers.
 * The server's CPU is what the kernel charges to its process: the loopback receive processing
 * its writes trigger runs as softirq on core 0 and is not included (on a real network it is
 * the clients' machines' work). Case 2 keeps core 0 busy (~55-65% process + softirq): a tick
 * that starts more than a period late is counted and shown; late ticks catch up with
 * setImmediate, still one publish per turn.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { arg, child as spawnChild, hasTaskset, machineBusy, median, pinSelf } from './lib/proc.mjs';
import { GUID, connect } from './lib/wire.mjs';

const SELF = fileURLToPath(import.meta.url);
const TOPIC = 'chat';
const TEXT = 'the quick brown fox jumps over the lazy dog, again and again';

const CASES = {
  1: {
    name: 'bursty',
    clients: 100,
    periodMs: 50,
    perTick: 20,
    publishers: 20,
    desc: '100 clients, 20 publishes in one turn every 50 ms',
  },
  2: {
    name: 'steady',
    clients: 500,
    periodMs: 4,
    perTick: 1,
    publishers: 5,
    desc: '500 clients, 5 publishers every 20 ms, one publish per turn',
  },
};
const TARGETS = { 1: 0.55, 2: 0.9 };

/** Payload with a fixed-width sequence number at byte offset 7 (the receivers read it there). */
function payload(seq, publisher) {
  return `{"seq":${String(seq).padStart(10, '0')},"from":"user-${String(publisher).padStart(2, '0')}","text":"${TEXT}"}`;
}
const SEQ_OFFSET = 7;
const SEQ_DIGITS = 10;
/** Whether children are pinned with taskset (set by the orchestrator). */
let PIN = false;

const role = process.argv[2];
if (role === 'server') await serverMain(process.argv[3]);
else if (role === 'receiver') await receiverMain();
else await main();

// ---- server process ----------------------------------------------------------------------

async function serverMain(kind) {
  const server = await makeServer(kind);
  process.send({ type: 'listening', port: server.port });
  process.on('message', (m) => {
    if (m.type === 'count') process.send({ type: 'count', n: server.count() });
    else if (m.type === 'start') run(server, m);
  });
  process.on('disconnect', () => process.exit(0));
}

async function makeServer(kind) {
  if (kind === 'duet') {
    const { WebSocketServer } = await import('../dist/index.js');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => wss.once('listening', resolve));
    wss.on('connection', (ws) => ws.subscribe(TOPIC));
    return {
      port: wss.address().port,
      count: () => wss.subscriberCount(TOPIC),
      publish: (msg) => wss.publish(TOPIC, msg),
    };
  }
  if (kind === 'ws') {
    const { WebSocketServer, WebSocket } = await import('ws');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => wss.once('listening', resolve));
    return {
      port: wss.address().port,
      count: () => wss.clients.size,
      publish: (msg) => {
        wss.clients.forEach((c) => {
          if (c.readyState === WebSocket.OPEN) c.send(msg);
        });
        return wss.clients.size;
      },
    };
  }
  if (kind === 'raw') return rawServer();
  throw new Error(`unknown server ${kind}`);
}

/** The cost floor: frame once, cork each socket on its first write of a turn, uncork all in one setImmediate. */
async function rawServer() {
  const sockets = new Set();
  let pending = [];
  let scheduled = false;
  const flush = () => {
    const batch = pending;
    pending = [];
    scheduled = false;
    for (let i = 0; i < batch.length; i++) {
      batch[i].corked = false;
      batch[i].uncork();
    }
  };
  const srv = net.createServer((socket) => {
    socket.setNoDelay(true);
    let head = '';
    const onHead = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHead);
      const key = /\r\nsec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? '';
      const accept = createHash('sha1')
        .update(key + GUID)
        .digest('base64');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      socket.corked = false;
      sockets.add(socket);
      socket.on('data', () => {});
    };
    socket.on('data', onHead);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: srv.address().port,
    count: () => sockets.size,
    publish: (msg) => {
      const body = Buffer.from(msg, 'utf8');
      const n = body.length;
      const h = n < 126 ? 2 : n < 65536 ? 4 : 10;
      const frame = Buffer.allocUnsafe(h + n);
      frame[0] = 0x81;
      if (h === 2) frame[1] = n;
      else if (h === 4) {
        frame[1] = 126;
        frame.writeUInt16BE(n, 2);
      } else {
        frame[1] = 127;
        frame.writeBigUInt64BE(BigInt(n), 2);
      }
      body.copy(frame, h);
      for (const s of sockets) {
        if (!s.corked) {
          s.corked = true;
          s.cork();
          pending.push(s);
          if (!scheduled) {
            scheduled = true;
            setImmediate(flush);
          }
        }
        s.write(frame);
      }
      return sockets.size;
    },
  };
}

/** Publish on a fixed grid (no drift); measure CPU over exactly `measureTicks` ticks. */
function run(server, m) {
  const c = CASES[m.case];
  const clients = server.count();
  const warmTicks = Math.ceil(m.warmupMs / c.periodMs);
  const measureTicks = Math.round(m.durationMs / c.periodMs);
  const tailTicks = Math.ceil(100 / c.periodMs);
  const total = warmTicks + measureTicks + tailTicks;
  let seq = 0;
  let short = 0;
  let start;
  let end;
  // FANOUT_FAULT=drop|dup breaks one message on purpose, to check that the receivers notice.
  const fault = process.env.FANOUT_FAULT;
  const publishOne = (publisher) => {
    const msg = payload(++seq, publisher);
    if (seq === 50 && fault === 'drop') return;
    const n = server.publish(msg);
    if (n !== clients) short++;
    if (seq === 50 && fault === 'dup') server.publish(msg);
  };
  const tick = (i) => {
    if (i === warmTicks) start = { cpu: process.cpuUsage(), t: performance.now(), seq };
    if (i === warmTicks + measureTicks) end = { cpu: process.cpuUsage(start.cpu), t: performance.now(), seq };
    if (c.perTick === 1) publishOne(i % c.publishers);
    else for (let p = 0; p < c.perTick; p++) publishOne(p);
  };
  const t0 = performance.now() + c.periodMs;
  let i = 0;
  let late = 0;
  const step = () => {
    const lag = performance.now() - (t0 + i * c.periodMs);
    if (lag > c.periodMs) late++;
    tick(i);
    i++;
    if (i < total) {
      // Behind schedule: catch up in the next turn (setTimeout cannot wait less than 1 ms).
      const wait = t0 + i * c.periodMs - performance.now();
      if (wait < 1) setImmediate(step);
      else setTimeout(step, wait);
    } else
      setTimeout(() => {
        process.send({
          type: 'done',
          clients,
          published: seq,
          measuredPublishes: end.seq - start.seq,
          cpuUserMs: end.cpu.user / 1000,
          cpuSystemMs: end.cpu.system / 1000,
          wallMs: end.t - start.t,
          short,
          late,
        });
      }, 50);
  };
  setTimeout(step, c.periodMs);
}

// ---- receiver process --------------------------------------------------------------------

async function receiverMain() {
  const port = Number(arg('port'));
  const n = Number(arg('clients'));
  const conns = [];
  const errors = [];
  const fail = (msg) => {
    if (errors.length < 5) errors.push(msg);
  };

  // One read buffer for the whole process (lib/wire.mjs copies only what spans two reads),
  // so receiving allocates nothing per read.
  const readBuffer = Buffer.allocUnsafe(256 * 1024);
  // --batch=ms: stop reading a socket once drained and resume them all every `ms` (clients
  // that are not waiting in epoll, so a server write wakes nobody up).
  const batchMs = Number(arg('batch', '0'));
  if (batchMs > 0)
    setInterval(() => {
      for (const c of conns) if (!c.closing) c.socket.resume();
    }, batchMs);

  const seqEnd = SEQ_OFFSET + SEQ_DIGITS;
  const handlers = {
    open: (c) => {
      c.next = 1;
      c.count = 0;
      c.pos = 0;
      c.seq = 0;
      conns.push(c);
    },
    start: (c, op, fin) => {
      if (op !== 1 || !fin) fail(`client ${c.id}: unexpected frame opcode ${op} fin ${fin}`);
      c.pos = 0;
      c.seq = 0;
    },
    data: (c, buf, s, e) => {
      // The sequence number's digits may straddle two reads: take those in this chunk.
      const from = Math.max(s, s + SEQ_OFFSET - c.pos);
      const to = Math.min(e, s + seqEnd - c.pos);
      for (let k = from; k < to; k++) c.seq = c.seq * 10 + (buf[k] - 48);
      c.pos += e - s;
    },
    end: (c) => {
      if (c.seq !== c.next) fail(`client ${c.id}: got seq ${c.seq}, expected ${c.next}`);
      c.next = c.seq + 1;
      c.count++;
    },
    close: (c, code) => {
      if (!c.closing) fail(`client ${c.id}: server closed with ${code}`);
    },
    fail: (c, msg) => fail(`client ${c.id}: ${msg}`),
    gone: (c) => {
      if (!c.closing) fail(`client ${c.id}: connection closed by server`);
      c.closing = true;
    },
    afterRead:
      batchMs > 0
        ? (c, nread) => {
            if (c.upgraded && nread < readBuffer.length) c.socket.pause();
          }
        : undefined,
  };

  const open = (id) =>
    new Promise((resolve, reject) => {
      connect(
        port,
        '/',
        readBuffer,
        {
          ...handlers,
          open: (c) => {
            handlers.open(c);
            resolve();
          },
          fail: (c, msg) => (c.upgraded ? handlers.fail(c, msg) : reject(new Error(msg))),
          gone: (c) => (c.upgraded ? handlers.gone(c) : reject(new Error('connection closed before the upgrade'))),
        },
        id,
      );
    });

  const concurrency = 32;
  let nextId = 0;
  try {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, n) }, async () => {
        while (nextId < n) await open(nextId++);
      }),
    );
  } catch (err) {
    process.send({ type: 'connected', ok: false, error: String(err) });
    return;
  }
  process.send({ type: 'connected', ok: true, n: conns.length });

  process.on('message', (m) => {
    if (m.type !== 'expect') return;
    const deadline = Date.now() + 5000;
    const check = () => {
      const behind = conns.filter((c) => c.count < m.total).length;
      if (behind > 0 && Date.now() < deadline) {
        setTimeout(check, 20);
        return;
      }
      const bad = conns.filter((c) => c.count !== m.total || c.next !== m.total + 1);
      for (const c of bad.slice(0, 3))
        fail(`client ${c.id}: ${c.count} messages, last seq ${c.next - 1}, expected ${m.total}`);
      const delivered = conns.reduce((s, c) => s + c.count, 0);
      for (const c of conns) {
        c.closing = true;
        c.socket.destroy();
      }
      process.send({ type: 'report', ok: errors.length === 0 && bad.length === 0, delivered, errors });
    };
    check();
  });
  process.on('disconnect', () => process.exit(0));
}

// ---- orchestrator ------------------------------------------------------------------------

function child(core, args, extraNodeArgs = []) {
  return spawnChild(SELF, args, { core, pin: PIN, nodeArgs: extraNodeArgs, name: args[0] });
}

async function measure(caseId, kind, opts) {
  const c = CASES[caseId];
  const extra = process.env.FANOUT_SERVER_NODE_ARGS
    ? process.env.FANOUT_SERVER_NODE_ARGS.split(/\s+/).filter(Boolean)
    : [];
  const server = child(0, ['server', kind], extra);
  const receivers = [];
  try {
    const { port } = await server.next('listening', 10000);
    const per = Math.ceil(c.clients / opts.receivers);
    for (let r = 0, left = c.clients; left > 0; r++, left -= per) {
      receivers.push(
        child(1, ['receiver', `--port=${port}`, `--clients=${Math.min(per, left)}`, `--batch=${opts.batchMs}`]),
      );
    }
    for (const rc of receivers) {
      const m = await rc.next('connected', 30000);
      if (!m.ok) return { invalid: `receiver could not connect: ${m.error}` };
    }
    const deadline = Date.now() + 5000;
    for (;;) {
      server.send({ type: 'count' });
      const { n } = await server.next('count', 5000);
      if (n === c.clients) break;
      if (Date.now() > deadline) return { invalid: `server sees ${n} of ${c.clients} clients` };
      await new Promise((r) => setTimeout(r, 20));
    }
    server.send({ type: 'start', case: caseId, warmupMs: opts.warmupMs, durationMs: opts.durationMs });
    const done = await server.next('done', opts.warmupMs + opts.durationMs + 20000);
    for (const rc of receivers) rc.send({ type: 'expect', total: done.published });
    const reports = await Promise.all(receivers.map((rc) => rc.next('report', 15000)));
    const errors = reports.flatMap((r) => r.errors);
    const delivered = reports.reduce((s, r) => s + r.delivered, 0);
    if (done.clients !== c.clients) errors.push(`server had ${done.clients} of ${c.clients} clients`);
    if (done.short > 0) errors.push(`${done.short} publishes reached fewer than ${done.clients} clients`);
    if (!reports.every((r) => r.ok) || errors.length > 0 || delivered !== done.published * c.clients) {
      return { invalid: errors.slice(0, 4).join('; ') || `delivered ${delivered} of ${done.published * c.clients}` };
    }
    const cpuMs = done.cpuUserMs + done.cpuSystemMs;
    const deliveries = done.measuredPublishes * c.clients;
    return {
      cpuMs,
      userMs: done.cpuUserMs,
      systemMs: done.cpuSystemMs,
      deliveries,
      perK: (cpuMs / deliveries) * 1000,
      util: cpuMs / done.wallMs,
      late: done.late,
    };
  } catch (err) {
    return { invalid: String(err?.message ?? err) };
  } finally {
    await Promise.all(receivers.map((rc) => rc.stop()));
    await server.stop();
  }
}

async function main() {
  const cores = os.availableParallelism();
  PIN = hasTaskset();
  if (PIN) pinSelf(1);
  const opts = {
    rounds: Number(arg('rounds', '3')),
    warmupMs: Number(arg('warmup', '1000')),
    durationMs: Number(arg('duration', '4000')),
    receivers: Number(arg('receivers', '2')),
    batchMs: Number(arg('batch', '0')),
  };
  const caseIds = arg('case', '1,2').split(',').map(Number);
  const kinds = arg('servers', 'duet,ws,raw').split(',');
  const wsVersion = (await import('ws/package.json', { with: { type: 'json' } })).default.version;

  console.log(
    `fan-out benchmark: node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${cores}, ws ${wsVersion} (+bufferutil, utf-8-validate)`,
  );
  console.log(
    PIN
      ? 'pinning: server on core 0, receivers and harness on core 1 (taskset)'
      : 'pinning: NOT pinned (taskset unavailable or fewer than 2 cores); numbers are noisier',
  );
  console.log(
    `method: server CPU (process.cpuUsage user+system) over ${opts.durationMs} ms after ${opts.warmupMs} ms warm-up; ` +
      `${opts.receivers} receiver processes verify every message reached every client once, in order; ${opts.rounds} round(s), servers alternating`,
  );
  if (opts.batchMs > 0) console.log(`receivers read in batches every ${opts.batchMs} ms (--batch)`);
  for (const id of caseIds) console.log(`  case ${id} (${CASES[id].name}): ${CASES[id].desc}`);
  const busy = await machineBusy(500);
  if (busy !== null && busy > 0.15)
    console.log(
      `warning: the machine was ${(busy * 100).toFixed(0)}% busy before the run (other processes): numbers may be disturbed`,
    );
  console.log('');

  const results = {};
  for (let r = 0; r < opts.rounds; r++) {
    for (const id of caseIds) {
      const order = kinds.map((_, i) => kinds[(i + r) % kinds.length]);
      for (const kind of order) {
        const res = await measure(id, kind, opts);
        ((results[id] ??= {})[kind] ??= []).push(res);
        const line = res.invalid
          ? `INVALID (${res.invalid})`
          : `${res.cpuMs.toFixed(0)} ms CPU (user ${res.userMs.toFixed(0)}, sys ${res.systemMs.toFixed(0)}), ${res.perK.toFixed(3)} ms/1k deliveries, ${(res.util * 100).toFixed(0)}% of a core` +
            (res.late > 0 ? `, ${res.late} ticks more than a period late` : '');
        console.log(`  round ${r + 1} case ${id} ${kind.padEnd(4)} ${line}`);
      }
    }
  }

  console.log('');
  const header = ['case', 'server', 'server CPU ms', 'deliveries', 'CPU ms / 1k deliv', 'vs ws (medians)'];
  const rows = [];
  const summary = [];
  for (const id of caseIds) {
    const agg = {};
    for (const kind of kinds) {
      const runs = results[id][kind];
      if (runs.some((x) => x.invalid)) {
        agg[kind] = null;
        continue;
      }
      agg[kind] = {
        cpuMs: median(runs.map((x) => x.cpuMs)),
        deliveries: median(runs.map((x) => x.deliveries)),
        perK: median(runs.map((x) => x.perK)),
      };
    }
    for (const kind of kinds) {
      const a = agg[kind];
      const label = `${id} ${CASES[id].name}`;
      if (a === null) {
        rows.push([label, kind, 'INVALID', 'INVALID', 'INVALID', '-']);
        continue;
      }
      const ratio = agg.ws ? (a.perK / agg.ws.perK).toFixed(2) + 'x' : '-';
      rows.push([label, kind, a.cpuMs.toFixed(0), String(a.deliveries), a.perK.toFixed(3), ratio]);
    }
    if (agg.duet !== undefined && agg.ws !== undefined) {
      if (agg.duet === null || agg.ws === null) summary.push(`case ${id}: duet/ws INVALID`);
      else {
        // Servers of one round run back to back, so per-round ratios cancel drift between rounds.
        const paired = (kind) => results[id][kind].map((x, r) => x.perK / results[id].ws[r].perK);
        const rounds = paired('duet');
        const ratio = median(rounds);
        summary.push(
          `case ${id} (${CASES[id].name}): duet/ws = ${ratio.toFixed(3)}x (median of rounds: ${rounds.map((x) => x.toFixed(3)).join(', ')}); ` +
            `target <= ${TARGETS[id]}x: ${ratio <= TARGETS[id] ? 'met' : 'NOT met'}` +
            (agg.raw ? `; raw floor/ws = ${median(paired('raw')).toFixed(3)}x` : ''),
        );
      }
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
  console.log('');
  for (const s of summary) console.log(s);
}
