/**
 * permessage-deflate bombs against `duet serve --deflate` (issue 13, point 7): `--bombers`
 * connections each pipeline their share of `--bombs` compressed messages of zeros that
 * inflate to `--inflate` bytes (about 1/1030 of that on the wire), `--rounds` times (fresh
 * bombers each round), while `--victims` connections, also using deflate, send a 2 KiB JSON
 * message, wait for it to come back, pause `--interval` ms, and again.
 *
 * Reports the server's RSS (before, peak, and 3 s after the attack), the server's CPU time
 * during the attack (all threads, and the event loop's thread alone), how the bombs ended
 * (echoed, or the bomber closed with 1009), and the victims' round trips during the attack
 * (p50, p99, max) beside the same victims' round trips over `--baseline` ms before it: what
 * this machine gives without any attack (on a shared machine that is not nothing).
 *
 *   npm run build && node bench/deflate-bomb.mjs [--path=/echo|/chat] [--bombs=16]
 *     [--bombers=4] [--inflate=104857600] [--rounds=1] [--victims=4] [--interval=20]
 *     [--baseline=2000] [--worst]
 *     [--dist=DIR] [--serve='--max-payload 104857600 ...'] [--node='--cpu-prof']
 *
 * `--dist` runs another build (for before/after comparisons: a `git archive` of an older
 * commit, built with tsc). `--serve` adds options to `duet serve`, `--node` options to the
 * node process running it. Not part of `npm test`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import zlib from 'node:zlib';
import { arg, procStat, sleep, startDuetServe } from './lib/proc.mjs';
import { closeFrame, connect, maskedFrame } from './lib/wire.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(arg('dist', path.join(here, '..', 'dist')));
const wsPath = arg('path', '/echo');
const bombs = Number(arg('bombs', '16'));
const bombers = Number(arg('bombers', '4'));
const inflateTo = Number(arg('inflate', String(100 * 1024 * 1024)));
const victims = Number(arg('victims', '4'));
const interval = Number(arg('interval', '20'));
const rounds = Number(arg('rounds', '1'));
const baselineMs = Number(arg('baseline', '2000'));
const serveArgs = arg('serve', '')
  .split(' ')
  .filter((s) => s !== '');
const nodeArgs = arg('node', '')
  .split(' ')
  .filter((s) => s !== '');
const TIMEOUT_MS = 180_000;
const TRAILER = Buffer.from([0, 0, 0xff, 0xff]);
const OFFER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

function status(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'latin1');
    const kib = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) * 1024;
    return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}
/** CPU ms (user + system) of the server's main thread (the event loop): its task id is its pid. */
function mainThreadMs(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'latin1');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}
const mib = (n) => (n / 2 ** 20).toFixed(0);
const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

// ---- the server -------------------------------------------------------------------------------
const { server, port } = await startDuetServe(
  path.join(dist, 'cli', 'duet.js'),
  ['--deflate', '--port', '0', ...serveArgs],
  nodeArgs,
);
const pid = server.pid;
await sleep(300);
const base = status(pid);

let peak = base.rss;
const sampler = setInterval(() => {
  const s = status(pid);
  if (s.rss > peak) peak = s.rss;
}, 10);

// ---- the clients ------------------------------------------------------------------------------
const readBuffer = Buffer.allocUnsafe(256 * 1024);
const opened = (c) => c.resolveOpen();

/** Victims: a JSON text message of about 2 KiB, compressed on its own, echoed or relayed back. */
const latencies = [];
/** [ms after the attack began, round trip ms, victim] of every round trip, for --worst. */
const worst = [];
let t0 = 0;
let timeouts = 0;
let attackOver = false;
const victimConns = [];
function victimMessage(id, seq) {
  const body = Buffer.from(
    JSON.stringify({ v: id, seq, rows: Array.from({ length: 40 }, (_, i) => ({ id: i, name: `row ${i}`, at: seq })) }),
  );
  const deflated = zlib.deflateRawSync(body, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
  return maskedFrame(0x1, deflated, undefined, true);
}
const victimHandler = {
  open: opened,
  start(c, op, fin, len, rsv1) {
    c.frame = len <= 1024 * 1024 ? { op, rsv1, chunks: [] } : null;
  },
  data(c, buf, start, end) {
    if (c.frame) c.frame.chunks.push(Buffer.from(buf.subarray(start, end)));
  },
  end(c) {
    const f = c.frame;
    c.frame = null;
    if (!f || f.op !== 0x1) return;
    let payload = Buffer.concat(f.chunks);
    if (f.rsv1)
      payload = zlib.inflateRawSync(Buffer.concat([payload, TRAILER]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    let msg;
    try {
      msg = JSON.parse(payload.toString());
    } catch {
      return;
    }
    if (msg.v !== c.id || msg.seq !== c.seq) return;
    latencies.push(performance.now() - c.sentAt);
    worst.push([Math.round(c.sentAt - t0), Math.round(performance.now() - c.sentAt), c.id]);
    clearTimeout(c.timer);
    c.seq++;
    if (!attackOver) setTimeout(() => sendVictim(c), interval);
    else c.idle = true;
  },
  close() {},
  fail(c, m) {
    console.error(`victim ${c.id}: ${m}`);
  },
  gone() {},
};
function sendVictim(c) {
  c.sentAt = performance.now();
  c.timer = setTimeout(() => {
    timeouts++;
    c.seq++;
    sendVictim(c);
  }, 30_000);
  c.socket.write(victimMessage(c.id, c.seq));
}

/** Bombers: count the binary messages that come back (their own echo, or every bomb on /chat). */
const perBomber = Math.ceil(bombs / bombers);
const expected = wsPath === '/chat' ? perBomber * bombers : perBomber;
let bomberConns = [];
let finished = () => {};
const checkDone = () => {
  if (bomberConns.every((c) => c.closeCode !== -1 || c.gotBinary >= expected || c.gone)) finished();
};
const bomberHandler = {
  open: opened,
  start(c, op) {
    c.lastOp = op;
  },
  data() {},
  end(c) {
    if (c.lastOp === 0x2) {
      c.gotBinary++;
      checkDone();
    }
  },
  close() {
    checkDone();
  },
  fail() {},
  gone(c) {
    c.gone = true;
    checkDone();
  },
};

function open(handler, id) {
  return new Promise((resolve) => {
    const c = connect(port, wsPath, readBuffer, handler, id, undefined, OFFER);
    Object.assign(c, { seq: 0, gotBinary: 0, gone: false, resolveOpen: () => resolve(c) });
  });
}

for (let i = 0; i < victims; i++) victimConns.push(await open(victimHandler, i));

// Warm up: victims run for a second (their first round trips start zlib), then for
// --baseline ms alone: the round trips the machine gives without any attack, for comparison.
for (const c of victimConns) sendVictim(c);
await sleep(1000);
latencies.length = 0;
await sleep(baselineMs);
const baseline = [...latencies];

const bombPayload = zlib
  .deflateRawSync(Buffer.alloc(inflateTo), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
  .subarray(0, -4);
const bombFrame = maskedFrame(0x2, bombPayload, undefined, true);
const victimLatencies = [];
const closes = [];
let echoed = 0;
let attackMs = 0;
let timedOut = false;
const cpuBefore = procStat(pid);
const mainBefore = mainThreadMs(pid);
t0 = performance.now();
worst.length = 0;
for (let round = 0; round < rounds; round++) {
  // Fresh bombers each round (a bomber closed with 1009 cannot bomb again).
  bomberConns = [];
  for (let i = 0; i < bombers; i++) bomberConns.push(await open(bomberHandler, 100 + i));
  const allDone = new Promise((resolve) => (finished = resolve));
  latencies.length = 0;
  const start = performance.now();
  for (const c of bomberConns) c.socket.write(Buffer.concat(Array.from({ length: perBomber }, () => bombFrame)));
  timedOut ||= await Promise.race([allDone.then(() => false), sleep(TIMEOUT_MS).then(() => true)]);
  attackMs += performance.now() - start;
  victimLatencies.push(...latencies);
  for (const c of bomberConns) {
    if (c.closeCode !== -1) closes.push(c.closeCode);
    else if (wsPath !== '/chat') echoed += c.gotBinary;
    c.closing = true;
    c.socket.end(closeFrame(1000));
  }
  await sleep(200);
}
const cpuAfter = procStat(pid);
const mainAfter = mainThreadMs(pid);
attackOver = true;
// Let the victims' last round trips finish.
await sleep(Math.max(200, interval * 2));

await sleep(3000);
clearInterval(sampler);
const after = status(pid);
for (const c of victimConns) {
  c.closing = true;
  c.socket.end(closeFrame(1000));
}
server.kill('SIGTERM');

const result = {
  path: wsPath,
  bombs: perBomber * bombers,
  bombers,
  rounds,
  bombWireBytes: bombPayload.length,
  inflateTo,
  serveArgs: serveArgs.join(' '),
  rssBaseMiB: Number(mib(base.rss)),
  rssPeakMiB: Number(mib(Math.max(peak, status(pid).hwm || 0, after.hwm))),
  rssAfterMiB: Number(mib(after.rss)),
  serverCpuMs:
    cpuBefore && cpuAfter
      ? Math.round(cpuAfter.userMs + cpuAfter.systemMs - cpuBefore.userMs - cpuBefore.systemMs)
      : null,
  serverMainThreadMs: Math.round(mainAfter - mainBefore),
  attackMs: Math.round(attackMs),
  timedOut,
  bombsEchoed: wsPath === '/chat' ? undefined : echoed,
  bomberCloseCodes: closes,
  victimRoundTrips: victimLatencies.length,
  victimTimeouts: timeouts,
  victimP50Ms: Number(pct(victimLatencies, 50).toFixed(1)),
  victimP99Ms: Number(pct(victimLatencies, 99).toFixed(1)),
  victimMaxMs: Number(Math.max(0, ...victimLatencies).toFixed(1)),
  baselineRoundTrips: baseline.length,
  baselineP50Ms: Number(pct(baseline, 50).toFixed(1)),
  baselineP99Ms: Number(pct(baseline, 99).toFixed(1)),
};
console.log(JSON.stringify(result));
console.error(
  `${wsPath}: ${rounds} x ${result.bombs} bombs of ${bombPayload.length} B -> ${mib(inflateTo)} MiB from ${bombers} connections | ` +
    `RSS ${result.rssBaseMiB} -> peak ${result.rssPeakMiB}, ${result.rssAfterMiB} MiB 3 s later | server CPU ${result.serverCpuMs} ms (event loop ${result.serverMainThreadMs}) over ${result.attackMs} ms | ` +
    `bombs echoed ${result.bombsEchoed ?? 'n/a'}, bombers closed ${JSON.stringify(Object.fromEntries([...new Set(closes)].map((code) => [code, closes.filter((x) => x === code).length])))} | victims: ${victimLatencies.length} round trips, p50 ${result.victimP50Ms} ms, p99 ${result.victimP99Ms} ms, max ${result.victimMaxMs} ms, ${timeouts} timeouts; ` +
    `without attack: p50 ${result.baselineP50Ms} ms, p99 ${result.baselineP99Ms} ms`,
);
if (arg('worst'))
  console.error(
    'slowest round trips [ms into the attack, ms, victim]:',
    JSON.stringify(worst.sort((a, b) => b[1] - a[1]).slice(0, 8)),
  );
process.exit(0);
