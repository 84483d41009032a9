#!/usr/bin/env node
/**
 * `npm run bench:scaleout`: fan-out across processes through Redis (issue 15, point 4). The
 * same chat load against duet in one process with its in-memory broker, duet with the Redis
 * broker (duet/redis) in one and in two processes, and Socket.IO 4 with
 * @socket.io/redis-adapter in one and in two processes, side by side in one run, at three
 * loads; beside them a floor: a hand-written relay on node:net (bench/servers/floor.mjs) that
 * hands each delivery to its socket with one `socket.write` and does nothing else, so the run
 * shows what the operating system alone charges per delivery.
 *
 *   npm run bench:scaleout                  build, then 3 rounds of every variant at each of
 *                                           125, 250 and 500 messages/s (about 10 minutes)
 *   npm run bench:scaleout -- --quick       1 round at 250 messages/s, short windows (about 1 minute)
 *   node bench/scaleout.mjs [--rounds=N] [--warmup=ms] [--duration=ms] [--conns=500]
 *        [--senders=5] [--periods=40,20,10 | --period=20] [--loaders=1] [--json=path]
 *        [--variants=floor-1,duet-memory-1,duet-redis-1,duet-redis-2,socketio-redis-1,socketio-redis-2]
 *        (also known: socketio-memory-1, Socket.IO with its default in-memory adapter;
 *        duet-redis-1-wd5 and duet-redis-2-wd5, duet with the server option writeDelay: 5)
 *   REDIS_URL=redis://host:port ...         another Redis (default redis://127.0.0.1:6379)
 *   SCALEOUT_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" node bench/scaleout.mjs \
 *        --variants=duet-redis-1 --quick    profile the server processes
 *   BENCH_FAULT=corrupt|drop|dup ...        breaks one received message on purpose: the run
 *                                           must print INVALID (checks the harness itself)
 *
 * Load (bench/lib/scaleout-loader.mjs, raw TCP clients as in `npm run bench`, in processes
 * pinned to core 1): `--conns` connections spread evenly over the variant's server processes,
 * all in one topic (duet: `ws.subscribe`) or room (Socket.IO: a `join` event, `socket.join`);
 * the first `--senders` connections, all on the first process, send one message each every
 * period ms, staggered (at 20 ms, chat-steady of `npm run bench`: 5 senders, 250 messages/s,
 * each delivered to all 500 connections, the sender included). Each load of `--periods` is
 * measured in turn; a server that cannot keep up falls behind (the "of offered" column), and
 * after the window the harness waits while it drains its backlog, as long as deliveries keep
 * coming, before checking them. duet publishes with
 * `wss.publish(topic, data)`, Socket.IO with `io.to(room).emit('msg', data)`; the load side
 * speaks Socket.IO's protocol over its websocket transport by hand, so it costs the same for
 * every server. Each message carries its send time (latency: send to delivery, at every
 * receiver) and a sequence number: every connection must get every message exactly once, in
 * order, intact, else the run prints INVALID, never a number.
 *
 * Measured over a window after a warm-up, per variant: deliveries/s, latency p50/p99, server
 * CPU per delivery (user + system from /proc/PID/stat, summed over the variant's processes),
 * Redis CPU per delivery (/proc/<redis-server pid>/stat, the pid from INFO server) and Redis
 * commands per message (INFO stats). Server processes are pinned to core 0 (both of them in the
 * two-process variants: this is a 2-core machine), load generators and this harness to core 1;
 * redis-server is not started by the harness and runs where the system puts it. A fresh set of
 * server processes and a fresh key prefix per measurement; variants alternate which goes first.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Histogram } from './lib/hist.mjs';
import { arg, child, hasTaskset, machineBusy, machineInfo, median, pinSelf, procStat, sleep } from './lib/proc.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const LOADER = join(HERE, 'lib', 'scaleout-loader.mjs');
const SERVERS = {
  duet: join(HERE, 'servers', 'duet-redis.mjs'),
  socketio: join(HERE, 'servers', 'socketio-redis.mjs'),
  floor: join(HERE, 'servers', 'floor.mjs'),
};
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const VARIANTS = {
  'floor-1': {
    server: 'floor',
    broker: 'memory',
    procs: 1,
    title: 'floor: a hand-written relay on node:net, one socket.write per delivery (not a library)',
  },
  'duet-memory-1': { server: 'duet', broker: 'memory', procs: 1, title: 'duet, in-memory broker, 1 process' },
  'duet-redis-1': { server: 'duet', broker: 'redis', procs: 1, title: 'duet, RedisBroker, 1 process' },
  'duet-redis-2': { server: 'duet', broker: 'redis', procs: 2, title: 'duet, RedisBroker, 2 processes' },
  'duet-redis-1-wd5': {
    server: 'duet',
    broker: 'redis',
    procs: 1,
    writeDelay: 5,
    title: 'duet, RedisBroker, 1 process, writeDelay 5 ms',
  },
  'duet-redis-2-wd5': {
    server: 'duet',
    broker: 'redis',
    procs: 2,
    writeDelay: 5,
    title: 'duet, RedisBroker, 2 processes, writeDelay 5 ms',
  },
  'socketio-redis-1': {
    server: 'socketio',
    broker: 'redis',
    procs: 1,
    title: 'Socket.IO, @socket.io/redis-adapter, 1 process',
  },
  'socketio-redis-2': {
    server: 'socketio',
    broker: 'redis',
    procs: 2,
    title: 'Socket.IO, @socket.io/redis-adapter, 2 processes',
  },
  'socketio-memory-1': {
    server: 'socketio',
    broker: 'memory',
    procs: 1,
    title: 'Socket.IO, in-memory adapter, 1 process',
  },
};
const DEFAULT_VARIANTS = [
  'floor-1',
  'duet-memory-1',
  'duet-redis-1',
  'duet-redis-2',
  'socketio-redis-1',
  'socketio-redis-2',
];

/**
 * The targets of issue 15 on server CPU per delivery: duet over Redis at most 1.3x duet in
 * memory, and at most 0.5x Socket.IO with its Redis adapter (same number of processes).
 */
const TARGETS = [
  { a: 'duet-redis-1', b: 'duet-memory-1', max: 1.3 },
  { a: 'duet-redis-2', b: 'duet-memory-1', max: 1.3 },
  { a: 'duet-redis-1', b: 'socketio-redis-1', max: 0.5 },
  { a: 'duet-redis-2', b: 'socketio-redis-2', max: 0.5 },
];
/**
 * Printed beside the targets: the floor (one socket.write per delivery, nothing else) against
 * Socket.IO. A server that writes each message when it arrives cannot go below this ratio:
 * under it only by sending several messages in one write (duet does when messages queue up,
 * or with `writeDelay`).
 */
const BOUNDS = [{ a: 'floor-1', b: 'socketio-redis-1' }];

const quick = arg('quick', 'false') === 'true';
const opts = {
  quick,
  rounds: Number(arg('rounds', quick ? '1' : '3')),
  warmupMs: Number(arg('warmup', quick ? '1000' : '1500')),
  durationMs: Number(arg('duration', quick ? '2000' : '5000')),
  conns: Number(arg('conns', '500')),
  senders: Number(arg('senders', '5')),
  // Each load of the ladder: the period of every sender, ms (--period=N: that load alone).
  periods: arg('periods', arg('period', quick ? '20' : '40,20,10'))
    .split(',')
    .map(Number),
  loaders: Number(arg('loaders', '1')),
  variants: arg('variants', DEFAULT_VARIANTS.join(',')).split(','),
};
const jsonPath = arg('json', join(HERE, 'results', 'scaleout.json'));
const RUN_ID = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let PIN = false;

const cpuMs = (a, b) => b.userMs + b.systemMs - a.userMs - a.systemMs;

/** Jiffies of one CPU from /proc/stat: busy (not idle or iowait), irq + softirq, steal, total; or null. */
function coreTimes(core) {
  try {
    const line = readFileSync('/proc/stat', 'latin1')
      .split('\n')
      .find((l) => l.startsWith(`cpu${core} `));
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - f[4], irq: f[5] + f[6], steal: f[7] ?? 0, total };
  } catch {
    return null;
  }
}
const loadavg = () => {
  try {
    return readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).map(Number);
  } catch {
    return null;
  }
};

// ---- Redis: its process, its counters, clean-up ------------------------------------------

/** A connection of the harness's own to Redis: INFO before and after each window, clean-up. */
let admin = null;
let redisPid = null;

async function redisInfo(section) {
  const text = await admin.info(section);
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

/** total_commands_processed and connected_clients, or null. */
async function redisCounters() {
  try {
    const stats = await redisInfo('stats');
    const clients = await redisInfo('clients');
    return { commands: Number(stats.total_commands_processed), clients: Number(clients.connected_clients) };
  } catch {
    return null;
  }
}

/** Delete what a measurement left under its prefix (duet's topic log; Socket.IO stores nothing). */
async function cleanRedis(prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await admin.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

// ---- one measurement -------------------------------------------------------------------------

function serverProcs(v, prefix) {
  const nodeArgs = process.env.SCALEOUT_SERVER_NODE_ARGS
    ? process.env.SCALEOUT_SERVER_NODE_ARGS.split(/\s+/).filter(Boolean)
    : [];
  const args =
    v.server === 'duet'
      ? [`--broker=${v.broker}`, `--prefix=${prefix}`, `--write-delay=${v.writeDelay ?? 0}`]
      : v.server === 'socketio'
        ? [`--adapter=${v.broker}`, `--key=${prefix}`]
        : [];
  return Array.from({ length: v.procs }, (_, i) =>
    child(SERVERS[v.server], args, { core: 0, pin: PIN, nodeArgs, name: `${v.server} server ${i}` }),
  );
}

/** Split `conns` evenly over the ports, then over the loaders: `[[port, n], ...]` per loader. */
function plan(ports) {
  const perPort = ports.map((_, i) => Math.floor(opts.conns / ports.length) + (i < opts.conns % ports.length ? 1 : 0));
  const out = Array.from({ length: opts.loaders }, () => []);
  ports.forEach((port, p) => {
    for (let l = 0; l < opts.loaders; l++) {
      const n = Math.floor(perPort[p] / opts.loaders) + (l < perPort[p] % opts.loaders ? 1 : 0);
      if (n > 0) out[l].push([port, n]);
    }
  });
  return out;
}

function loaderProcs(v, ports, periodMs) {
  const nodeArgs = process.env.SCALEOUT_LOADER_NODE_ARGS
    ? process.env.SCALEOUT_LOADER_NODE_ARGS.split(/\s+/).filter(Boolean)
    : [];
  return plan(ports).map((targets, i) =>
    child(
      LOADER,
      [
        // The floor speaks plain WebSocket on /chat, as duet's server does.
        `--protocol=${v.server === 'socketio' ? 'socketio' : 'duet'}`,
        `--targets=${targets.map((t) => t.join(':')).join(',')}`,
        // Every sender in the first loader, on the first server process (its first connections).
        `--senders=${i === 0 ? opts.senders : 0}`,
        `--total-senders=${opts.senders}`,
        `--period=${periodMs}`,
        `--id-base=${i * 1_000_000}`,
      ],
      { core: 1, pin: PIN, nodeArgs, name: `loader ${i}` },
    ),
  );
}

/** Ask every server for its subscriber count until each has its share and is ready. */
async function waitSubscribed(servers, shares) {
  const deadline = Date.now() + 15000;
  for (;;) {
    const counts = await Promise.all(
      servers.map((s) => {
        s.post({ type: 'count' });
        return s.next('count', 5000);
      }),
    );
    if (counts.every((c, i) => c.n === shares[i] && c.ready)) return null;
    if (Date.now() > deadline)
      return `servers see ${counts.map((c) => `${c.n}${c.ready ? '' : ' (not ready)'}`).join(' + ')} of ${shares.join(' + ')} subscribers`;
    await sleep(50);
  }
}

async function measure(id, v, n, periodMs) {
  const prefix = `duet-bench-scaleout:${RUN_ID}:${n}:`;
  const servers = serverProcs(v, prefix);
  let loaders = [];
  try {
    const ports = (await Promise.all(servers.map((s) => s.next('listening', 20000)))).map((m) => m.port);
    loaders = loaderProcs(v, ports, periodMs);
    const ready = await Promise.all(loaders.map((l) => l.next('ready', 120000)));
    const refused = ready.find((r) => !r.ok);
    if (refused) return { invalid: `could not connect: ${refused.error}` };
    const shares = ports.map((p) =>
      plan(ports)
        .flat()
        .filter(([port]) => port === p)
        .reduce((s, [, k]) => s + k, 0),
    );
    const notReady = await waitSubscribed(servers, shares);
    if (notReady !== null) return { invalid: notReady };

    for (const l of loaders) l.post({ type: 'go' });
    await sleep(opts.warmupMs);
    const mark = async () => {
      for (const l of loaders) l.post({ type: 'mark' });
      const stats = servers.map((s) => procStat(s.pid));
      const redis = redisPid === null ? null : procStat(redisPid);
      const load = loaders.map((l) => procStat(l.pid));
      const cores = [coreTimes(0), coreTimes(1)];
      const t = performance.now();
      const marks = await Promise.all(loaders.map((l) => l.next('mark', 15000)));
      const counters = await redisCounters();
      return { stats, redis, load, cores, t, marks, counters };
    };
    const m0 = await mark();
    await sleep(opts.durationMs);
    const m1 = await mark();
    for (const l of loaders) l.post({ type: 'stop' });
    const stopped = await Promise.all(loaders.map((l) => l.next('stopped', 30000)));
    const expect = stopped[0].sent;
    for (const l of loaders) l.post({ type: 'verify', expect });
    // The loaders wait while a server that fell behind drains its backlog (up to 170 s).
    const reports = await Promise.all(loaders.map((l) => l.next('report', 180000)));
    const errors = reports.flatMap((r) => r.errors);
    const final = await Promise.all(
      servers.map((s) => {
        s.post({ type: 'count' });
        return s.next('count', 5000);
      }),
    );
    const serverErrors = final.reduce((s, c) => s + c.errors, 0);
    if (serverErrors > 0) errors.push(`the servers reported ${serverErrors} errors (see above)`);
    if (errors.length > 0) return { invalid: errors.slice(0, 3).join('; ') };
    if ([...m0.stats, ...m1.stats].some((s) => s === null)) return { invalid: 'no /proc/PID/stat for a server' };

    const count = m1.marks.reduce((s, m) => s + m.count, 0) - m0.marks.reduce((s, m) => s + m.count, 0);
    if (count <= 0) return { invalid: 'nothing delivered in the measured window' };
    const hist = new Histogram();
    for (const m of m1.marks) hist.merge(m.hist);
    const secs = (m1.t - m0.t) / 1000;
    const perProc = m1.stats.map((s, i) => cpuMs(m0.stats[i], s));
    const serverMs = perProc.reduce((a, b) => a + b, 0);
    const redisMs = m0.redis && m1.redis ? cpuMs(m0.redis, m1.redis) : null;
    // Messages published in the window: deliveries / receivers (every connection gets each one).
    const messages = count / opts.conns;
    const share = (i, key) =>
      m0.cores[i] && m1.cores[i] && m1.cores[i].total > m0.cores[i].total
        ? (m1.cores[i][key] - m0.cores[i][key]) / (m1.cores[i].total - m0.cores[i].total)
        : null;
    const serverUtil = serverMs / (secs * 1000);
    const offered = ((opts.senders * 1000) / periodMs) * opts.conns;
    const res = {
      deliveries: count,
      offered,
      keptUp: count / secs / offered,
      seconds: secs,
      rate: count / secs,
      p50: hist.quantile(0.5),
      p99: hist.quantile(0.99),
      serverCpu: (serverMs * 1000) / count,
      serverUtil,
      procUtil: perProc.map((ms) => ms / (secs * 1000)),
      redisCpu: redisMs === null ? null : (redisMs * 1000) / count,
      redisUtil: redisMs === null ? null : redisMs / (secs * 1000),
      totalCpu: redisMs === null ? null : ((serverMs + redisMs) * 1000) / count,
      redisCmdsPerMsg:
        m0.counters && m1.counters
          ? // less the harness's own INFO commands (two per mark)
            (m1.counters.commands - m0.counters.commands - 2) / messages
          : null,
      // Redis clients beyond this run's own (2 per server process with Redis, and the
      // harness's): others using this Redis meanwhile, whose work is in its CPU too.
      redisOtherClients: m1.counters ? m1.counters.clients - (v.broker === 'redis' ? 2 * v.procs : 0) - 1 : null,
      rss: m1.stats.reduce((s, x) => s + x.rss, 0),
      loadUtil:
        m0.load.every(Boolean) && m1.load.every(Boolean)
          ? m1.load.reduce((s, x, i) => s + cpuMs(m0.load[i], x), 0) / (secs * 1000)
          : null,
      steal: share(0, 'steal'),
      // How busy each core was: everything on it, this run's processes, interrupts and
      // softirq (loopback receive work), and other people's processes.
      coreBusy: [share(0, 'busy'), share(1, 'busy')],
      // What else ran on core 0 besides the servers and interrupt work: other processes (Redis
      // too, when it runs there: about 2% of a core). Far above that, the window is disturbed.
      othersCore0: isNum(share(0, 'busy')) ? Math.max(0, share(0, 'busy') - share(0, 'irq') - serverUtil) : null,
      sent: expect.reduce((a, b) => a + b, 0),
      // Sender ticks of the window that went out late (the first loader holds the senders).
      lateTicks: m1.marks[0].late - m0.marks[0].late,
      ticks: Math.round((secs * 1000 * opts.senders) / periodMs),
    };
    return res;
  } catch (err) {
    return { invalid: String(err?.message ?? err) };
  } finally {
    await Promise.all(loaders.map((l) => l.stop()));
    await Promise.all(servers.map((s) => s.stop()));
    if (v.broker === 'redis') await cleanRedis(prefix).catch(() => undefined);
  }
}

// ---- output ----------------------------------------------------------------------------------

/**
 * Other processes took this much of core 0 during a window: the window is disturbed. A server
 * that gets less of its core falls behind, each socket then gets several messages per write,
 * and its CPU per delivery drops (by up to half, measured): the window says more about the
 * machine than about the server. Disturbed windows are left out of the medians while a variant
 * has undisturbed ones; they are all printed and kept in the JSON.
 */
const DISTURBED = 0.1;
const disturbed = (r) => !r.invalid && isNum(r.othersCore0) && r.othersCore0 > DISTURBED;
/** The load generator could not keep up in this window (its core full, or 5 % of its sender ticks late). */
const loaderBound = (r) => !r.invalid && ((isNum(r.loadUtil) && r.loadUtil > 0.95) || r.lateTicks > 0.05 * r.ticks);
const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
/** Below this share of the offered load delivered, a server fell behind (its ratios are no verdict). */
const KEPT_UP = 0.98;
const fmt = {
  int: (x) => (isNum(x) ? Math.round(x).toLocaleString('en-US') : '-'),
  us: (x) => (isNum(x) ? x.toFixed(2) : '-'),
  pct: (x) => (isNum(x) ? `${(x * 100).toFixed(0)}%` : '-'),
  num: (x) => (isNum(x) ? x.toFixed(2) : '-'),
};

function fmtRun(r) {
  if (r.invalid) return `INVALID (${r.invalid})`;
  return (
    `${fmt.int(r.rate)} deliveries/s, p50 ${fmt.int(r.p50)} us, p99 ${fmt.int(r.p99)} us, ` +
    `server ${fmt.us(r.serverCpu)} us/delivery (${r.procUtil.map(fmt.pct).join(' + ')} of core 0), ` +
    `Redis ${fmt.us(r.redisCpu)} us/delivery (${fmt.pct(r.redisUtil)}), ${fmt.num(r.redisCmdsPerMsg)} Redis commands/msg; ` +
    `load gen cpu ${fmt.pct(r.loadUtil)}; cores busy ${r.coreBusy.map(fmt.pct).join(', ')}, others on core 0 ${fmt.pct(r.othersCore0)}` +
    (r.steal > 0.02 ? `; steal ${fmt.pct(r.steal)} on core 0` : '') +
    (disturbed(r) ? '; DISTURBED (other processes on core 0: left out of the median)' : '') +
    (r.lateTicks > 0 ? ` (${r.lateTicks} of ${r.ticks} sender ticks late)` : '')
  );
}

const METRICS = [
  ['rate', 'deliveries/s', fmt.int],
  ['keptUp', 'of offered', fmt.pct],
  ['p50', 'p50 us', fmt.int],
  ['p99', 'p99 us', fmt.int],
  ['serverCpu', 'server us/deliv', fmt.us],
  ['serverUtil', 'server % core', fmt.pct],
  ['redisCpu', 'Redis us/deliv', fmt.us],
  ['redisUtil', 'Redis % core', fmt.pct],
  ['totalCpu', 'server+Redis us/deliv', fmt.us],
  ['redisCmdsPerMsg', 'Redis cmds/msg', fmt.num],
];

/** The runs a variant's medians are taken over: the undisturbed ones, or all if none is. */
const counted = (list) => (list.some((x) => !disturbed(x)) ? list.filter((x) => !disturbed(x)) : list);

function summarize(runs) {
  const medians = {};
  const used = {};
  for (const [id, list] of Object.entries(runs)) {
    const kept = counted(list);
    used[id] = { runs: kept.length, of: list.length, disturbed: kept.some(disturbed) };
    medians[id] = list.some((x) => x.invalid)
      ? null
      : Object.fromEntries(
          METRICS.map(([k]) => {
            const xs = kept.map((x) => x[k]).filter(isNum);
            return [k, xs.length > 0 ? median(xs) : null];
          }),
        );
  }
  const verdicts = [];
  for (const t of TARGETS) {
    if (runs[t.a] === undefined || runs[t.b] === undefined) continue;
    const one = (metric) => {
      const a = medians[t.a]?.[metric];
      const b = medians[t.b]?.[metric];
      if (!isNum(a) || !isNum(b)) return { ratio: null, rounds: [], met: null };
      const ratio = a / b;
      // Per round (the two measured back to back): how much the ratio moves between rounds;
      // null where either window was disturbed.
      const rounds = runs[t.a].map((x, i) => {
        const y = runs[t.b][i];
        if (y === undefined || disturbed(x) || disturbed(y) || !isNum(x[metric]) || !isNum(y[metric])) return null;
        return x[metric] / y[metric];
      });
      return { ratio, rounds, met: ratio <= t.max };
    };
    // A median of disturbed windows only (no undisturbed one): the verdict is the machine's.
    const fromDisturbed = used[t.a]?.disturbed || used[t.b]?.disturbed || false;
    // A server that delivered less than the offered load did other work than one that kept
    // up (it fell behind): their ratio is printed, but it is no verdict on the target.
    const behind = [t.a, t.b].filter((id) => isNum(medians[id]?.keptUp) && medians[id].keptUp < KEPT_UP);
    const server = one('serverCpu');
    const total = one('totalCpu');
    if (behind.length > 0) server.met = total.met = null;
    verdicts.push({ ...t, server, total, fromDisturbed, behind });
  }
  const bounds = BOUNDS.filter((b) => runs[b.a] !== undefined && runs[b.b] !== undefined).map((b) => {
    const x = medians[b.a]?.serverCpu;
    const y = medians[b.b]?.serverCpu;
    return { ...b, ratio: isNum(x) && isNum(y) ? x / y : null };
  });
  return { medians, used, verdicts, bounds };
}

function printTable(ids, summary) {
  const header = ['variant', 'procs', 'windows', ...METRICS.map(([, label]) => label)];
  const rows = ids.map((id) => {
    const m = summary.medians[id];
    const u = summary.used[id];
    return [
      id,
      String(VARIANTS[id].procs),
      `${u.runs}/${u.of}${u.disturbed ? ' (all disturbed)' : ''}`,
      ...METRICS.map(([k, , f]) => (m === null ? 'INVALID' : f(m[k]))),
    ];
  });
  console.log('');
  console.log(
    `medians of ${opts.rounds} round(s), over the windows other processes did not disturb (windows: counted/measured):`,
  );
  printAligned(header, rows);
  if (summary.verdicts.length === 0) return;
  console.log('');
  console.log('targets (issue 15), on server CPU per delivery; server + Redis CPU alongside:');
  const ratio = (x) => (x.ratio === null ? 'INVALID' : `${x.ratio.toFixed(3)}x`);
  const verdict = (x, v) =>
    x.ratio === null ? 'INVALID' : v.behind.length > 0 ? 'no verdict' : x.ratio <= v.max ? 'met' : 'NOT met';
  const rr = (x) =>
    x.rounds.length > 1
      ? ` (rounds: ${x.rounds.map((r) => (r === null ? 'disturbed' : r.toFixed(2))).join(', ')})`
      : '';
  for (const v of summary.verdicts) {
    console.log(
      `  ${`${v.a} / ${v.b}`.padEnd(34)} server ${ratio(v.server)}${rr(v.server)}  target <= ${v.max}x: ${verdict(v.server, v)};` +
        `  server+Redis ${ratio(v.total)}: ${verdict(v.total, v)}` +
        (v.behind.length > 0 ? `  (${v.behind.join(' and ')} fell behind: not the same work)` : '') +
        (v.fromDisturbed ? '  (UNRELIABLE: from disturbed windows only)' : ''),
    );
  }
  for (const b of summary.bounds) {
    console.log(
      `  ${`${b.a} / ${b.b}`.padEnd(34)} server ${b.ratio === null ? 'INVALID' : `${b.ratio.toFixed(3)}x`}: the least a server with one write per delivery can reach here`,
    );
  }
}

/** Print `rows` under `header`, the first column left-aligned, the others right-aligned. */
function printAligned(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** The ladder in one table: server us per delivery (and the share of the offered load delivered) per load. */
function printLadder(loads) {
  if (loads.length < 2) return;
  const header = ['variant', ...loads.map((l) => `${fmt.int(l.rate)} msg/s`)];
  const cell = (m, list) =>
    m === null
      ? 'INVALID'
      : `${fmt.us(m.serverCpu)} us${m.keptUp < KEPT_UP ? ` (${fmt.pct(m.keptUp)})` : ''}${counted(list).some(loaderBound) ? ' *' : ''}`;
  const rows = opts.variants.map((id) => [id, ...loads.map((l) => cell(l.summary.medians[id], l.runs[id]))]);
  const pairs = (l) => [...l.summary.verdicts, ...l.summary.bounds];
  for (const [i, p] of pairs(loads[0]).entries()) {
    rows.push([
      `${p.a} / ${p.b}`,
      ...loads.map((l) => {
        const v = pairs(l)[i];
        const r = v.server?.ratio ?? v.ratio;
        if (r === null) return 'INVALID';
        if (v.max === undefined) return `${r.toFixed(2)}x`;
        return `${r.toFixed(2)}x ${v.behind.length > 0 ? 'no verdict' : r <= v.max ? 'met' : 'NOT met'}`;
      }),
    ]);
  }
  console.log('');
  console.log(
    'by load: server CPU per delivery (medians; in brackets the share of the offered load delivered, when below 98%), then the ratios' +
      ' (no verdict where a server fell behind):',
  );
  printAligned(header, rows);
  if (loads.some((l) => Object.values(l.runs).flat().some(loaderBound)))
    console.log(
      "* the load generator fell behind (its core saturated, or sender ticks late): the receiving side limited that window, its figure is not the server's alone",
    );
}

// ---- main ------------------------------------------------------------------------------------

async function main() {
  if (!existsSync(join(ROOT, 'dist', 'index.js')) || !existsSync(join(ROOT, 'dist', 'redis', 'index.js'))) {
    console.error('dist/ is missing (or dist/redis): run `npm run build` first (npm run bench:scaleout does)');
    process.exit(1);
  }
  for (const id of opts.variants) {
    if (VARIANTS[id] === undefined) {
      console.error(`unknown variant "${id}" in --variants (known: ${Object.keys(VARIANTS).join(', ')})`);
      process.exit(1);
    }
  }
  const needsRedis = opts.variants.some((id) => VARIANTS[id].broker === 'redis');
  admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectionName: 'duet-bench-scaleout' });
  admin.on('error', () => undefined);
  let redisVersion = null;
  let redisAffinity = null;
  try {
    await admin.connect();
    const server = await redisInfo('server');
    redisVersion = server.redis_version;
    const pid = Number(server.process_id);
    // The Redis process's CPU is read from /proc: only where it is this machine's process.
    const comm = (() => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
      } catch {
        return null;
      }
    })();
    if (comm !== null && comm.startsWith('redis')) {
      redisPid = pid;
      redisAffinity = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? null;
    }
  } catch (err) {
    if (needsRedis) {
      console.error(`Redis is not reachable at ${REDIS_URL} (${err.message}): start redis-server, or set REDIS_URL`);
      process.exit(1);
    }
  }

  const machine = machineInfo();
  PIN = hasTaskset();
  if (PIN) PIN = pinSelf(1);
  const version = (dir) => {
    try {
      return JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')).version;
    } catch {
      return '?';
    }
  };
  const versions = {
    duet: version('.'),
    'socket.io': version('node_modules/socket.io'),
    '@socket.io/redis-adapter': version('node_modules/@socket.io/redis-adapter'),
    ioredis: version('node_modules/ioredis'),
    redis: redisVersion,
  };
  const pinning = PIN
    ? 'server processes pinned to core 0 (both on core 0 in the 2-process variants: a 2-core machine), load generators and harness to core 1 (taskset)'
    : 'NOT pinned (taskset unavailable or fewer than 2 cores): servers and load generators share cores, numbers are noisier';
  const loadBefore = loadavg();
  const rateOf = (periodMs) => (opts.senders * 1000) / periodMs;
  console.log(
    `scale-out fan-out: duet ${versions.duet} (memory and Redis broker) vs socket.io ${versions['socket.io']} + @socket.io/redis-adapter ${versions['@socket.io/redis-adapter']} (ioredis ${versions.ioredis}), Redis ${redisVersion ?? '-'}${quick ? ' -- QUICK mode' : ''}`,
  );
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, ${machine.kernel}`);
  console.log(`pinning: ${pinning}`);
  console.log(
    `redis: ${REDIS_URL}, ${redisPid === null ? 'not a local process: no Redis CPU' : `pid ${redisPid}, not pinned by the harness (allowed CPUs ${redisAffinity ?? '?'})`}`,
  );
  console.log(
    `load: ${opts.conns} connections spread evenly over the server processes, one topic/room; ${opts.senders} senders on the first process, ` +
      `each every ${opts.periods.join(' / ')} ms, staggered (${opts.periods.map((p) => rateOf(p)).join(' / ')} messages/s, ` +
      `${opts.periods.map((p) => fmt.int(rateOf(p) * opts.conns)).join(' / ')} deliveries/s); ${opts.loaders} load process(es)`,
  );
  console.log(
    `method: per load, ${opts.rounds} round(s), variants alternating, fresh server processes per measurement; ${opts.warmupMs} ms warm-up then a ` +
      `${opts.durationMs} ms window; CPU from /proc/PID/stat (servers summed); medians`,
  );
  console.log(`load average (1, 5, 15 min) before: ${loadBefore?.join(', ') ?? '?'}`);
  const notes = [];
  const busy = await machineBusy(500);
  if (busy !== null && busy > 0.15) {
    const warn = `the machine was ${(busy * 100).toFixed(0)}% busy before the run (other processes): numbers may be disturbed`;
    notes.push(warn);
    console.log(`warning: ${warn}`);
  }
  if (process.env.BENCH_FAULT)
    console.log(`BENCH_FAULT=${process.env.BENCH_FAULT}: one received message is broken on purpose`);

  const started = Date.now();
  const loads = [];
  let n = 0;
  for (const periodMs of opts.periods) {
    const rate = rateOf(periodMs);
    console.log('');
    console.log(
      `== ${rate} messages/s (every sender every ${periodMs} ms), ${fmt.int(rate * opts.conns)} deliveries/s offered`,
    );
    const runs = {};
    for (let r = 0; r < opts.rounds; r++) {
      const order = opts.variants.map((_, i) => opts.variants[(i + r) % opts.variants.length]);
      for (const id of order) {
        const res = await measure(id, VARIANTS[id], n++, periodMs);
        res.round = r + 1;
        (runs[id] ??= []).push(res);
        console.log(`round ${r + 1}  ${id.padEnd(17)} ${fmtRun(res)}`);
      }
    }
    // Per-round ratios pair runs of the same round: keep each variant's runs in round order.
    for (const list of Object.values(runs)) list.sort((a, b) => a.round - b.round);
    const summary = summarize(runs);
    printTable(opts.variants, summary);
    loads.push({ periodMs, rate, runs, summary });
  }
  printLadder(loads);
  const loadAfter = loadavg();
  console.log('');
  console.log(`load average (1, 5, 15 min) after: ${loadAfter?.join(', ') ?? '?'}`);
  const all = loads.flatMap((l) => Object.values(l.runs).flat());
  if (all.some(disturbed)) {
    const warn = `other processes took more than ${DISTURBED * 100}% of core 0 in ${all.filter(disturbed).length} of ${all.length} windows: left out of the medians where the variant had undisturbed windows`;
    notes.push(warn);
    console.log(`warning: ${warn}`);
  }
  const others = all.map((x) => x.redisOtherClients).filter(isNum);
  if (others.some((x) => x > 0)) {
    const warn = `other clients were connected to this Redis during ${others.filter((x) => x > 0).length} of ${others.length} windows (up to ${Math.max(...others)}): its CPU includes their work`;
    notes.push(warn);
    console.log(`warning: ${warn}`);
  }

  const out = {
    generated: new Date().toISOString(),
    command: quick ? 'npm run bench:scaleout -- --quick' : 'npm run bench:scaleout',
    versions,
    machine,
    pinning,
    pinned: PIN,
    redis: { url: REDIS_URL, pid: redisPid, affinity: redisAffinity },
    options: opts,
    loadavg: { before: loadBefore, after: loadAfter },
    disturbedAbove: DISTURBED,
    notes,
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
    titles: Object.fromEntries(opts.variants.map((id) => [id, VARIANTS[id].title])),
    variantConfigs: Object.fromEntries(opts.variants.map((id) => [id, VARIANTS[id]])),
    loads: loads.map((l) => ({
      periodMs: l.periodMs,
      messagesPerSecond: l.rate,
      deliveriesPerSecondOffered: l.rate * opts.conns,
      variants: Object.fromEntries(
        opts.variants.map((id) => [
          id,
          { runs: l.runs[id], median: l.summary.medians[id], medianOver: l.summary.used[id] },
        ]),
      ),
      targets: l.summary.verdicts,
      bounds: l.summary.bounds,
    })),
  };
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nresults: ${jsonPath}`);
  await admin.quit().catch(() => admin.disconnect());
  const invalid = loads.some((l) => Object.values(l.summary.medians).some((m) => m === null));
  process.exitCode = invalid ? 2 : 0;
}

await main();
