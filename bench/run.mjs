#!/usr/bin/env node
/**
 * `npm run bench`: duet against ws 8 (+ bufferutil, utf-8-validate), side by side, one command,
 * with the cost floor (bench/servers/floor.mjs, a minimal hand-written server on node:net that
 * skips everything RFC 6455 asks of a real server) as a reference column: floor/ws shows how far
 * below ws this machine and harness let any server go, so whether a target is reachable at all.
 *
 *   npm run bench                      build, then 3 rounds of every scenario (about 7 minutes), then
 *                                      the scale-out scenario (bench/scaleout.mjs: about 10 minutes)
 *   npm run bench -- --quick           1 round, short windows (about 2.5 minutes); docs untouched
 *   node bench/run.mjs --scenarios=scaleout   the scale-out scenario alone (--scenarios without it: not run)
 *   node bench/run.mjs [--rounds=N] [--warmup=ms] [--duration=ms] [--scenarios=id,id]
 *                      [--servers=duet,ws,floor] [--json=path] [--docs | --no-docs] [--idle-conns=N]
 *   node bench/run.mjs --servers=duet,ws   without the floor (no floor columns)
 *   BENCH_FAULT=corrupt|drop|dup node bench/run.mjs ...   breaks one received message on
 *                      purpose: the run must print INVALID (checks the harness itself)
 *   BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" node bench/run.mjs --servers=duet
 *                      (BENCH_LOADER_NODE_ARGS: the same for the load generators)
 *   node bench/run.mjs --render=docs/benchmarks.json   regenerate docs/benchmarks.{md,svg} from
 *                      saved results (after editing the report code), without running anything
 *
 * Each server (bench/servers/duet.mjs, bench/servers/ws.mjs: plain applications serving /echo
 * and /chat; bench/servers/floor.mjs, the reference, serves the same) runs in its own child
 * process, a fresh one for every measurement, pinned to core 0 with taskset where available;
 * load generators (bench/lib/loader.mjs: raw TCP clients with a hand-written handshake and frame
 * codec, masked client frames) run in separate processes on core 1, with this orchestrator.
 * Server CPU (user + system, all threads) and RSS come from /proc/PID/stat at the start and end
 * of the measured window, after a warm-up. idle-memory also asks the server (over IPC, started
 * with --expose-gc) for its JS heap after a forced GC, with the connections open and after they closed.
 * Every scenario verifies what it receives; a run that fails prints INVALID, never a number.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  arg,
  child,
  cpuTimes,
  fileLimits,
  hasTaskset,
  machineBusy,
  machineInfo,
  median,
  pinSelf,
  procStat,
  sleep,
} from './lib/proc.mjs';
import { Histogram } from './lib/hist.mjs';
import { METRICS, metricLabel, renderMarkdown, renderSvg, targetText } from './lib/report.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const LOADER = join(HERE, 'lib', 'loader.mjs');
const SERVERS = {
  duet: join(HERE, 'servers', 'duet.mjs'),
  ws: join(HERE, 'servers', 'ws.mjs'),
  floor: join(HERE, 'servers', 'floor.mjs'),
};

const quick = arg('quick', 'false') === 'true';
const opts = {
  quick,
  rounds: Number(arg('rounds', quick ? '1' : '3')),
  warmupMs: Number(arg('warmup', quick ? '500' : '1000')),
  durationMs: Number(arg('duration', quick ? '1500' : '4000')),
  idleConns: Number(arg('idle-conns', '10000')),
  servers: arg('servers', 'duet,ws,floor').split(','),
};
const only = arg('scenarios', null)?.split(',') ?? null;
const jsonPath = arg('json', join(HERE, 'results', 'latest.json'));
const docsFlag = arg('docs', null);
const noDocs = arg('no-docs', 'false') === 'true';

/**
 * The scenarios of issue 6. `target`: the ratio duet/ws the headline metric must reach.
 * `loaders`: load-generator processes (all on the load core). `skip`: servers that cannot run
 * the scenario, with the reason (reported, never measured).
 */
const SCENARIOS = [
  {
    id: 'echo-32B',
    title: '32 B text echo, 50 connections, 1 in flight',
    kind: 'echo',
    conns: 50,
    inflight: 1,
    size: 32,
    text: true,
    metrics: ['rate', 'p50', 'p99', 'cpu', 'rss'],
    target: { metric: 'cpu', max: 0.85 },
  },
  {
    id: 'echo-32B-x16',
    title: '32 B text echo, 50 connections, 16 in flight',
    kind: 'echo',
    conns: 50,
    inflight: 16,
    size: 32,
    text: true,
    metrics: ['rate', 'p50', 'p99', 'cpu', 'rss'],
    target: { metric: 'cpu', max: 0.75 },
  },
  {
    id: 'echo-16KiB',
    title: '16 KiB binary echo, 50 connections, 1 in flight',
    kind: 'echo',
    conns: 50,
    inflight: 1,
    size: 16384,
    text: false,
    metrics: ['mbps', 'rate', 'p50', 'p99', 'cpu', 'rss'],
    target: { metric: 'mbps', min: 1.2 },
  },
  {
    id: 'echo-1MiB',
    title: '1 MiB binary echo, 8 connections, 1 in flight',
    kind: 'echo',
    conns: 8,
    inflight: 1,
    size: 1 << 20,
    text: false,
    metrics: ['mbps', 'rate', 'p50', 'p99', 'cpu', 'rss'],
    target: { metric: 'mbps', min: 1.0 },
  },
  {
    id: 'chat-steady',
    title: 'chat broadcast, steady: 500 connections, 5 senders every 20 ms (staggered)',
    kind: 'chat',
    conns: 500,
    senders: 5,
    period: 20,
    mode: 'steady',
    metrics: ['rate', 'p50', 'p99', 'cpu', 'util', 'rss'],
    target: { metric: 'cpu', max: 0.9 },
  },
  {
    id: 'chat-bursty',
    title: 'chat broadcast, bursty: 100 connections, 20 senders ticking together every 10 ms',
    kind: 'chat',
    conns: 100,
    senders: 20,
    period: 10,
    mode: 'bursty',
    metrics: ['rate', 'p50', 'p99', 'cpu', 'util', 'rss'],
    target: { metric: 'cpu', max: 0.55 },
  },
  {
    id: 'handshakes',
    title: 'connect + upgrade + close handshake + TCP close, 32 in flight',
    kind: 'handshake',
    inflight: 32,
    metrics: ['rate', 'p50', 'p99', 'cpu', 'rss'],
    target: { metric: 'rate', min: 1.5 },
  },
  {
    id: 'idle-memory',
    title: 'server RSS and JS heap (after a forced GC) per open connection, 10,000 idle connections',
    kind: 'idle',
    conns: 10000,
    loaders: 2,
    metrics: ['rssPerConn', 'heapPerConn', 'rss'],
    target: { metric: 'rssPerConn', max: 0.75 },
  },
  {
    id: 'echo-deflate',
    title:
      '16 KiB JSON text echo with permessage-deflate, 50 connections, 1 in flight (both servers `perMessageDeflate: true`, so each its default level: duet 1, ws 6 (BENCH_DUET_DEFLATE_LEVEL=6 evens it); clients ask for no context takeover)',
    kind: 'echo-deflate',
    conns: 50,
    size: 16384,
    deflate: true,
    metrics: ['mbps', 'rate', 'p50', 'p99', 'cpu', 'rss'],
    target: { metric: 'mbps', min: 1.0 },
    skip: { floor: 'the floor server has no permessage-deflate' },
  },
];

let PIN = false;
/** Cpus_allowed_list of this process before it pinned itself, or null. */
let ALLOWED_CPUS = null;
const notes = [];

function serverProc(kind, nofile, sc) {
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS
    ? process.env.BENCH_SERVER_NODE_ARGS.split(/\s+/).filter(Boolean)
    : [];
  // idle-memory forces a GC in the server before reading its heap (see serverHeap).
  if (sc.kind === 'idle' && !nodeArgs.includes('--expose-gc')) nodeArgs.push('--expose-gc');
  return child(SERVERS[kind], sc.deflate ? ['--deflate'] : [], {
    core: 0,
    pin: PIN,
    nofile,
    nodeArgs,
    name: `${kind} server`,
  });
}

function loaderProcs(sc, port, nofile) {
  const n = sc.loaders ?? 1;
  const procs = [];
  const per = Math.ceil((sc.conns ?? 0) / n);
  for (let i = 0; i < n; i++) {
    const args = [`--port=${port}`, `--kind=${sc.kind}`, `--id-base=${i * 1_000_000}`];
    if (sc.conns !== undefined) args.push(`--conns=${Math.min(per, sc.conns - i * per)}`);
    if (sc.inflight !== undefined) args.push(`--inflight=${sc.inflight}`);
    if (sc.size !== undefined) args.push(`--size=${sc.size}`, `--text=${sc.text}`);
    if (sc.kind === 'chat') {
      // Every sender lives in the first loader (senders tick together in one callback).
      args.push(
        `--senders=${i === 0 ? sc.senders : 0}`,
        `--total-senders=${sc.senders}`,
        '--first-sender=0',
        `--period=${sc.period}`,
        `--mode=${sc.mode}`,
      );
    }
    const nodeArgs = process.env.BENCH_LOADER_NODE_ARGS
      ? process.env.BENCH_LOADER_NODE_ARGS.split(/\s+/).filter(Boolean)
      : [];
    procs.push(child(LOADER, args, { core: 1, pin: PIN, nofile, nodeArgs, name: `loader ${i}` }));
  }
  return procs;
}

const cpuMs = (a, b) => b.userMs + b.systemMs - a.userMs - a.systemMs;

/**
 * The server's JS heap in bytes (heapUsed after two forced GCs, answered over IPC by every
 * bench/servers/*.mjs), or null if it does not answer within 5 s.
 */
async function serverHeap(server) {
  server.post({ type: 'heap' });
  try {
    return (await server.next('heap', 5000)).heapUsed;
  } catch {
    return null;
  }
}

/** One measurement of one scenario against one server: metrics, or { invalid }. */
async function measure(sc, kind) {
  const nofile = sc.nofile;
  const server = serverProc(kind, nofile, sc);
  let loaders = [];
  try {
    const { port } = await server.next('listening', 15000);
    let base = null;
    let heapBase = null;
    if (sc.kind === 'idle') {
      await sleep(500);
      base = procStat(server.pid);
    }
    loaders = loaderProcs(sc, port, nofile);
    const ready = await Promise.all(loaders.map((l) => l.next('ready', 120000)));
    const refused = ready.find((r) => !r.ok);
    if (refused) return { invalid: `could not connect: ${refused.error}` };

    if (sc.kind === 'idle') {
      await sleep(quick ? 1500 : 3000);
      const end = procStat(server.pid);
      if (base === null || end === null) return { invalid: 'no /proc/PID/stat for the server' };
      // The heap is read after the RSS, with the connections open, and again once the load
      // generators closed them all (the baseline). Not before they open: a forced GC then
      // changes how the heap grows during the burst, and so the RSS measured here (ws's by
      // about 0.5 KiB per connection, measured).
      const heapEnd = await serverHeap(server);
      for (const l of loaders) l.post({ type: 'verify' });
      const reports = await Promise.all(loaders.map((l) => l.next('report', 60000)));
      const errors = reports.flatMap((r) => r.errors);
      if (errors.length > 0) return { invalid: errors.slice(0, 3).join('; ') };
      // No second reading without a first: a late answer to the first would be taken for it.
      if (heapEnd !== null) {
        await sleep(1000);
        heapBase = await serverHeap(server);
      }
      return {
        conns: sc.conns,
        rss: end.rss,
        rssBase: base.rss,
        rssPerConn: (end.rss - base.rss) / sc.conns,
        heap: heapEnd,
        heapBase,
        heapPerConn: heapBase === null || heapEnd === null ? null : (heapEnd - heapBase) / sc.conns,
      };
    }

    for (const l of loaders) l.post({ type: 'go' });
    await sleep(opts.warmupMs);
    const mark = async () => {
      for (const l of loaders) l.post({ type: 'mark' });
      const stat = procStat(server.pid);
      const load = loaders.map((l) => procStat(l.pid));
      const core0 = cpuTimes(0);
      const t = performance.now();
      const marks = await Promise.all(loaders.map((l) => l.next('mark', 15000)));
      return { stat, load, core0, t, marks };
    };
    const m0 = await mark();
    await sleep(opts.durationMs);
    const m1 = await mark();
    for (const l of loaders) l.post({ type: 'stop' });
    const stopped = await Promise.all(loaders.map((l) => l.next('stopped', 30000)));
    let expect;
    if (sc.kind === 'chat') expect = stopped[0].sent;
    for (const l of loaders) l.post({ type: 'verify', expect });
    const reports = await Promise.all(loaders.map((l) => l.next('report', 30000)));
    const errors = reports.flatMap((r) => r.errors);
    if (errors.length > 0) return { invalid: errors.slice(0, 3).join('; ') };
    if (m0.stat === null || m1.stat === null) return { invalid: 'no /proc/PID/stat for the server' };

    const count = m1.marks.reduce((s, m) => s + m.count, 0) - m0.marks.reduce((s, m) => s + m.count, 0);
    const bytes = m1.marks.reduce((s, m) => s + m.bytes, 0) - m0.marks.reduce((s, m) => s + m.bytes, 0);
    if (count <= 0) return { invalid: 'nothing completed in the measured window' };
    const hist = new Histogram();
    for (const m of m1.marks) hist.merge(m.hist);
    const secs = (m1.t - m0.t) / 1000;
    const cpu = cpuMs(m0.stat, m1.stat);
    const res = {
      count,
      seconds: secs,
      rate: count / secs,
      mbps: bytes / secs / 1e6,
      p50: hist.quantile(0.5),
      p99: hist.quantile(0.99),
      cpu: (cpu * 1000) / count,
      util: cpu / (secs * 1000),
      cpuMs: cpu,
      rss: m1.stat.rss,
      // The load generators' share of their core: near 100% means they, not the server, set the pace.
      loadUtil:
        m0.load.every(Boolean) && m1.load.every(Boolean)
          ? m1.load.reduce((s, x, i) => s + cpuMs(m0.load[i], x), 0) / (secs * 1000)
          : null,
      // Time the hypervisor took from the server's core (a virtual machine's noisy neighbours).
      steal:
        m0.core0 && m1.core0 && m1.core0.total > m0.core0.total
          ? (m1.core0.steal - m0.core0.steal) / (m1.core0.total - m0.core0.total)
          : null,
    };
    if (sc.kind === 'chat') {
      res.sent = expect.reduce((a, b) => a + b, 0);
      res.lateTicks = stopped[0].late;
    }
    return res;
  } catch (err) {
    return { invalid: String(err?.message ?? err) };
  } finally {
    await Promise.all(loaders.map((l) => l.stop()));
    await server.stop();
  }
}

function fmtRun(sc, r) {
  if (r.invalid) return `INVALID (${r.invalid})`;
  return (
    sc.metrics.map((k) => `${METRICS[k].short} ${METRICS[k].fmt(r[k])}`).join(', ') +
    (r.loadUtil != null ? `; load gen cpu ${(r.loadUtil * 100).toFixed(0)}%` : '') +
    (r.steal > 0.02 ? `; steal ${(r.steal * 100).toFixed(0)}% on core 0` : '') +
    (r.lateTicks > 0 ? ` (${r.lateTicks} sender ticks late)` : '')
  );
}

/** File descriptors: raise the limit for the idle scenario, or shrink it to what is possible. */
function planFiles(sc) {
  if (sc.kind !== 'idle') return;
  sc.conns = opts.idleConns;
  sc.title = sc.title.replace('10,000', sc.conns.toLocaleString('en-US'));
  const need = sc.conns + 256;
  const lim = fileLimits();
  if (lim === null) {
    notes.push('open-file limit unknown: idle-memory runs with the default limit');
    return;
  }
  if (lim.soft >= need) return;
  if (lim.hard >= need) {
    sc.nofile = need;
    notes.push(
      `open-file limit ${lim.soft} raised to ${need} (ulimit -n) in the server and load processes for idle-memory`,
    );
    return;
  }
  const n = Math.max(100, Math.floor((lim.hard - 256) / 100) * 100);
  notes.push(`open-file hard limit ${lim.hard}: idle-memory measured with ${n} connections instead of ${sc.conns}`);
  sc.conns = n;
  sc.nofile = lim.hard;
  sc.title = sc.title.replace('10,000', n.toLocaleString('en-US'));
}

async function main() {
  const render = arg('render', null);
  if (render !== null) {
    const out = { ...JSON.parse(readFileSync(render, 'utf8')), profileNotes: profileNotes() };
    writeFileSync(join(ROOT, 'docs', 'benchmarks.svg'), renderSvg(out));
    writeFileSync(join(ROOT, 'docs', 'benchmarks.md'), renderMarkdown(out));
    console.log(`docs/benchmarks.md and docs/benchmarks.svg regenerated from ${render}`);
    return;
  }
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
    console.error('dist/ is missing: run `npm run build` first (npm run bench does)');
    process.exit(1);
  }
  const machine = machineInfo();
  PIN = hasTaskset();
  // The CPUs this process may use before it pins itself (the scale-out scenario's child gets them back).
  ALLOWED_CPUS = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'latin1'))?.[1] ?? null;
  if (PIN) PIN = pinSelf(1);
  const wsVersion = (await import('ws/package.json', { with: { type: 'json' } })).default.version;
  const duetVersion = (await import('../package.json', { with: { type: 'json' } })).default.version;
  const scenarios = SCENARIOS.filter((s) => only === null || only.includes(s.id));
  for (const sc of scenarios) planFiles(sc);
  for (const kind of opts.servers) {
    if (SERVERS[kind] === undefined) {
      console.error(`unknown server "${kind}" in --servers (known: ${Object.keys(SERVERS).join(', ')})`);
      process.exit(1);
    }
  }

  const pinning = PIN
    ? 'servers pinned to core 0, load generators and harness to core 1 (taskset)'
    : 'NOT pinned (taskset unavailable or fewer than 2 cores): servers and load generators share cores, numbers are noisier';
  console.log(
    `duet ${duetVersion} vs ws ${wsVersion} (+bufferutil, utf-8-validate)` +
      `${opts.servers.includes('floor') ? '; floor = bench/servers/floor.mjs, a reference, not a competitor' : ''}${quick ? ' -- QUICK mode' : ''}`,
  );
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, ${machine.kernel}`);
  console.log(`pinning: ${pinning}`);
  console.log(
    `method: ${opts.rounds} round(s), servers alternating, a fresh server process per measurement; ` +
      `${opts.warmupMs} ms warm-up then a ${opts.durationMs} ms window; server CPU and RSS from /proc/PID/stat; medians`,
  );
  for (const n of notes) console.log(`note: ${n}`);
  const busy = await machineBusy(500);
  if (busy !== null && busy > 0.15) {
    const warn = `the machine was ${(busy * 100).toFixed(0)}% busy before the run (other processes): numbers may be disturbed`;
    notes.push(warn);
    console.log(`warning: ${warn}`);
  }
  if (process.env.BENCH_FAULT)
    console.log(`BENCH_FAULT=${process.env.BENCH_FAULT}: one received message is broken on purpose`);
  console.log('');

  const started = Date.now();
  const runs = {};
  for (let r = 0; r < opts.rounds; r++) {
    for (const sc of scenarios) {
      if (sc.pending) continue;
      const order = opts.servers.map((_, i) => opts.servers[(i + r) % opts.servers.length]);
      for (const kind of order) {
        if (sc.skip?.[kind]) {
          if (r === 0)
            console.log(`round ${r + 1}  ${sc.id.padEnd(13)} ${kind.padEnd(5)} not measured: ${sc.skip[kind]}`);
          continue;
        }
        const res = await measure(sc, kind);
        res.round = r + 1;
        ((runs[sc.id] ??= {})[kind] ??= []).push(res);
        console.log(`round ${r + 1}  ${sc.id.padEnd(13)} ${kind.padEnd(5)} ${fmtRun(sc, res)}`);
      }
    }
  }

  const results = scenarios.map((sc) => summarize(sc, runs[sc.id] ?? {}));
  const scaleout = only === null || only.includes('scaleout') ? await runScaleout() : null;
  const out = {
    generated: new Date().toISOString(),
    command: quick ? 'npm run bench -- --quick' : 'npm run bench',
    versions: { duet: duetVersion, ws: wsVersion, bufferutil: true, 'utf-8-validate': true },
    machine,
    pinning,
    pinned: PIN,
    options: { ...opts },
    notes,
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
    scenarios: results,
    scaleout,
  };
  printTable(results);
  if (scaleout?.skipped !== undefined)
    console.log(`\nwarning: the scale-out scenario was not measured: ${scaleout.skipped}`);

  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nresults: ${jsonPath}`);
  const full =
    !quick && only === null && opts.servers.includes('duet') && opts.servers.includes('ws') && !process.env.BENCH_FAULT;
  const writeDocs = docsFlag === 'true' || (!noDocs && full);
  if (writeDocs) {
    const docs = join(ROOT, 'docs');
    writeFileSync(join(docs, 'benchmarks.json'), JSON.stringify(out, null, 2) + '\n');
    writeFileSync(join(docs, 'benchmarks.svg'), renderSvg(out));
    writeFileSync(join(docs, 'benchmarks.md'), renderMarkdown({ ...out, profileNotes: profileNotes() }));
    // The scale-out scenario's every window, beside its summary in benchmarks.json.
    const scaleoutJson = join(HERE, 'results', 'scaleout.json');
    if (scaleout !== null && scaleout.skipped === undefined && existsSync(scaleoutJson))
      writeFileSync(join(docs, 'scaleout.json'), readFileSync(scaleoutJson));
    console.log('docs: docs/benchmarks.md, docs/benchmarks.svg, docs/benchmarks.json, docs/scaleout.json');
  } else {
    console.log(
      `docs not regenerated (${quick ? '--quick' : only !== null ? 'a subset of scenarios' : process.env.BENCH_FAULT ? 'BENCH_FAULT' : '--no-docs'}; a full run writes docs/benchmarks.md)`,
    );
  }
  const invalid =
    results.some((s) => !s.pending && Object.values(s.medians).some((m) => m === null)) || scaleout?.invalid === true;
  process.exitCode = invalid ? 2 : 0;
}

/**
 * The scale-out scenario (issue 15): fan-out through Redis against Socket.IO with its Redis
 * adapter, at three loads, with the floor (bench/scaleout.mjs, run as a child process with its
 * own output). Returns what the report needs from its results: the ladder's medians, targets
 * and bounds; `{ skipped }` when it could not run (no Redis: the reason is printed above).
 */
async function runScaleout() {
  const json = join(HERE, 'results', 'scaleout.json');
  const args = [join(HERE, 'scaleout.mjs'), `--json=${json}`, `--rounds=${opts.rounds}`];
  if (quick) args.push('--quick');
  console.log('');
  console.log(`== scale-out through Redis: node bench/scaleout.mjs ${args.slice(1).join(' ')}`);
  // This process is pinned to core 1, and a child inherits that: give it back the CPUs this
  // process had, so that it pins its servers and load generators itself as it does alone.
  const [cmd, argv] =
    PIN && ALLOWED_CPUS !== null
      ? ['taskset', ['-c', ALLOWED_CPUS, process.execPath, ...args]]
      : [process.execPath, args];
  const code = await new Promise((resolve) => {
    const p = spawn(cmd, argv, { stdio: 'inherit' });
    p.on('exit', (c) => resolve(c ?? 1));
    p.on('error', () => resolve(1));
  });
  if (code !== 0 && code !== 2) return { skipped: `bench/scaleout.mjs exited with code ${code} (see its output)` };
  const r = JSON.parse(readFileSync(json, 'utf8'));
  return {
    command: 'node bench/scaleout.mjs',
    options: r.options,
    versions: r.versions,
    titles: r.titles,
    loads: r.loads.map((l) => ({
      messagesPerSecond: l.messagesPerSecond,
      deliveriesPerSecondOffered: l.deliveriesPerSecondOffered,
      medians: Object.fromEntries(Object.entries(l.variants).map(([id, v]) => [id, v.median])),
      targets: l.targets.map((t) => ({
        a: t.a,
        b: t.b,
        max: t.max,
        ratio: t.server.ratio,
        met: t.server.met,
        behind: t.behind,
      })),
      bounds: l.bounds,
    })),
    invalid: code === 2,
  };
}

/** Hand-written profile notes (bench/profile-notes.md) for the generated docs, or null. */
function profileNotes() {
  const file = join(HERE, 'profile-notes.md');
  return existsSync(file) ? readFileSync(file, 'utf8') : null;
}

const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
/** a / b, or null where either is not a number (a metric a run could not read). */
const div = (a, b) => (isNum(a) && isNum(b) ? a / b : null);

/**
 * Medians per server; `ratios` duet/ws (the verdict: duet/ws against the target), and when the
 * floor ran, `floorRatios` floor/ws and `floorReached` (floor/ws against the same target: false
 * means no server reaches the target on this machine with this harness). `roundRatios` and
 * `floorRoundRatios`: the same ratios round by round.
 */
function summarize(sc, byKind) {
  const base = { id: sc.id, title: sc.title, target: sc.target ?? null };
  if (sc.pending) return { ...base, pending: sc.pending, metrics: [], runs: {}, medians: {}, ratios: {} };
  const medians = {};
  for (const [kind, list] of Object.entries(byKind)) {
    const bad = list.find((x) => x.invalid);
    // A metric a run could not read (heapPerConn: null) is left out of its median; none at all: null.
    medians[kind] = bad
      ? null
      : Object.fromEntries(
          sc.metrics.map((k) => {
            const xs = list.map((x) => x[k]).filter(isNum);
            return [k, xs.length > 0 ? median(xs) : null];
          }),
        );
  }
  const versusWs = (kind) => {
    const ratios = {};
    const rounds = {};
    if (medians[kind] === undefined || medians.ws === undefined) return null;
    for (const k of sc.metrics) {
      ratios[k] = medians[kind] === null || medians.ws === null ? null : div(medians[kind][k], medians.ws[k]);
      if (medians[kind] !== null && medians.ws !== null)
        rounds[k] = byKind[kind].map((x, i) => div(x[k], byKind.ws[i][k]));
    }
    return { ratios, rounds };
  };
  const meets = (r) => (r === null ? null : sc.target.max !== undefined ? r <= sc.target.max : r >= sc.target.min);
  const duet = versusWs('duet');
  const ratios = duet?.ratios ?? {};
  const roundRatios = duet?.rounds ?? {};
  let verdict = null;
  if (sc.target && ratios[sc.target.metric] !== undefined) {
    const met = meets(ratios[sc.target.metric]);
    verdict = met === null ? 'INVALID' : met ? 'met' : 'NOT met';
  }
  const params = Object.fromEntries(
    Object.entries(sc).filter(([k]) => !['id', 'title', 'metrics', 'target', 'pending', 'nofile', 'skip'].includes(k)),
  );
  const out = { ...base, params, metrics: sc.metrics, runs: byKind, medians, ratios, roundRatios, verdict };
  const floor = versusWs('floor');
  if (floor !== null) {
    out.floorRatios = floor.ratios;
    out.floorRoundRatios = floor.rounds;
    out.floorReached = sc.target ? meets(floor.ratios[sc.target.metric]) : null;
  }
  const skipped = Object.entries(sc.skip ?? {}).filter(([kind]) => opts.servers.includes(kind));
  if (skipped.length > 0) out.notMeasured = Object.fromEntries(skipped);
  return out;
}

function printTable(results) {
  // The floor columns only when the floor was asked for (--servers=duet,ws: none).
  const withFloor = opts.servers.includes('floor');
  const header = [
    'scenario',
    'metric',
    'duet',
    'ws',
    'duet/ws',
    ...(withFloor ? ['floor', 'floor/ws'] : []),
    'target',
    '',
  ];
  // A null ratio: INVALID where a run was, n/a where only this metric has no number (e.g. no heap answer).
  const ratioText = (s, kind, r) =>
    r === undefined
      ? '-'
      : r !== null
        ? `${r.toFixed(2)}x`
        : s.medians[kind] === null || s.medians.ws === null
          ? 'INVALID'
          : 'n/a';
  const rows = [];
  for (const s of results) {
    if (s.pending) {
      rows.push([
        s.id,
        '-',
        '-',
        '-',
        '-',
        ...(withFloor ? ['-', '-'] : []),
        targetText(s.target),
        `pending: ${s.pending}`,
      ]);
      continue;
    }
    for (const k of s.metrics) {
      const m = METRICS[k];
      const cell = (kind) =>
        s.medians[kind] === undefined ? '-' : s.medians[kind] === null ? 'INVALID' : m.fmt(s.medians[kind][k]);
      const isTarget = s.target?.metric === k;
      // Whether the floor reaches the target too: if not, no server does on this machine.
      const floor =
        s.floorReached === true
          ? 'reached'
          : s.floorReached === false
            ? 'missed'
            : s.notMeasured?.floor
              ? 'not measured'
              : null;
      const verdict = !isTarget ? '' : [s.verdict, withFloor && floor && `(floor: ${floor})`].filter(Boolean).join(' ');
      rows.push([
        s.id,
        `${metricLabel(k, s.params.kind)} (${m.better})`,
        cell('duet'),
        cell('ws'),
        ratioText(s, 'duet', s.ratios[k]),
        ...(withFloor ? [cell('floor'), ratioText(s, 'floor', s.floorRatios?.[k])] : []),
        isTarget ? targetText(s.target) : '',
        verdict,
      ]);
    }
  }
  const last = header.length - 1;
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r) =>
    r
      .map((c, i) => (i < 2 || i === last ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  console.log('');
  console.log(`medians of ${opts.rounds} round(s):`);
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let prev = '';
  for (const r of rows) {
    console.log(fmt(r[0] === prev ? ['', ...r.slice(1)] : r));
    prev = r[0];
  }
}

await main();
