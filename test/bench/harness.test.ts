/**
 * Smoke test of the benchmark harness (bench/run.mjs), not a benchmark: one tiny echo run and
 * a 200-connection idle-memory run against the built duet server and the floor
 * (bench/servers/floor.mjs, the reference) must come out valid with numbers (RSS and JS heap
 * per connection), and the echo run against duet with one received message deliberately
 * corrupted (BENCH_FAULT=corrupt) must come out INVALID. The report code must print n/a, not
 * crash, for a heap figure a server did not answer; the scale-out section (bench/scaleout.mjs,
 * run by bench/run.mjs) renders its ladder and verdicts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../../bench/run.mjs', import.meta.url));
const REPORT = new URL('../../bench/lib/report.mjs', import.meta.url).href;

interface Outcome {
  code: number;
  stdout: string;
  json: {
    scenarios: Array<{
      id: string;
      runs: Record<string, Array<Record<string, number | null> & { invalid?: string }>>;
      medians: Record<string, Record<string, number | null> | null>;
    }>;
  };
}

function bench(
  dir: string,
  name: string,
  servers: string,
  env: Record<string, string> = {},
  scenarios = 'echo-32B',
): Promise<Outcome> {
  const json = join(dir, `${name}.json`);
  const args = [
    RUN,
    `--scenarios=${scenarios}`,
    `--servers=${servers}`,
    '--rounds=1',
    '--warmup=200',
    '--duration=700',
    '--idle-conns=200',
    `--json=${json}`,
    '--no-docs',
  ];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      if (code !== 0 && code !== 2) {
        reject(new Error(`bench exited ${code}: ${stderr}\n${stdout}`));
        return;
      }
      resolve({ code, stdout, json: JSON.parse(readFileSync(json, 'utf8')) as Outcome['json'] });
    });
  });
}

test('bench harness: a valid run reports numbers, a corrupted one INVALID', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-'));
  try {
    const [good, bad] = await Promise.all([
      bench(dir, 'good', 'duet,floor', {}, 'echo-32B,idle-memory'),
      bench(dir, 'bad', 'duet', { BENCH_FAULT: 'corrupt' }),
    ]);

    assert.equal(good.code, 0, good.stdout);
    assert.doesNotMatch(good.stdout, /INVALID/);
    const g = good.json.scenarios[0];
    assert.equal(g.id, 'echo-32B');
    const run = g.runs.duet[0];
    assert.equal(run.invalid, undefined);
    assert.ok(run.count! > 0 && run.rate! > 0, 'echoes counted');
    assert.ok(run.cpu! > 0 && run.rss! > 0, 'server CPU and RSS read from /proc');
    assert.ok(run.p50! > 0 && run.p99! >= run.p50!, 'latency percentiles');
    assert.ok(g.medians.duet !== null && g.medians.duet.cpu === run.cpu, 'medians of one run');
    const floor = g.runs.floor[0];
    assert.equal(floor.invalid, undefined, 'the floor server passes the same checks');
    assert.ok(floor.count! > 0 && floor.cpu! > 0, 'floor numbers');
    assert.match(good.stdout, /floor\/ws/, 'floor columns in the table');

    const idle = good.json.scenarios[1];
    assert.equal(idle.id, 'idle-memory');
    for (const kind of ['duet', 'floor']) {
      const r = idle.runs[kind][0];
      assert.equal(r.invalid, undefined, `${kind} idle run valid`);
      assert.ok(typeof r.rssPerConn === 'number', `${kind} RSS per connection`);
      // With this few connections the figure is within the heap's own noise (code compiled
      // meanwhile counts too), so only its presence is checked, not its sign.
      assert.ok(
        typeof r.heapPerConn === 'number' && Number.isFinite(r.heapPerConn),
        `${kind} answered the heap request (heap per connection ${r.heapPerConn})`,
      );
    }
    assert.match(good.stdout, /server JS heap KiB\/connection/, 'heap row in the table');

    assert.equal(bad.code, 2, bad.stdout);
    assert.match(bad.stdout, /duet +INVALID \(conn \d+: echo \d+ differs from what was sent/);
    const b = bad.json.scenarios[0];
    assert.equal(b.medians.duet, null, 'no number for an invalid run');
    assert.match(b.runs.duet[0].invalid!, /differs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bench report: a heap figure a server did not answer prints n/a', async () => {
  const { renderMarkdown, renderSvg } = (await import(REPORT)) as {
    renderMarkdown: (out: unknown) => string;
    renderSvg: (out: unknown) => string;
  };
  const run = (heapPerConn: number | null) => ({ conns: 100, rss: 5e7, rssPerConn: 9000, heapPerConn });
  const out = {
    generated: '2024-01-01T00:00:00.000Z',
    command: 'test',
    elapsedSeconds: 1,
    notes: [],
    pinning: 'none',
    versions: { duet: '0', ws: '8' },
    machine: { cpu: 'cpu', cores: 2, memoryGiB: 1, node: 'v20', kernel: 'k', platform: 'p' },
    options: { rounds: 1, warmupMs: 1, durationMs: 1 },
    scenarios: [
      {
        id: 'idle-memory',
        title: 'idle',
        target: { metric: 'rssPerConn', max: 0.75 },
        params: { kind: 'idle' },
        metrics: ['rssPerConn', 'heapPerConn', 'rss'],
        runs: { duet: [run(1700)], ws: [run(null)], floor: [run(600)] },
        medians: { duet: run(1700), ws: run(null), floor: run(600) },
        ratios: { rssPerConn: 1, heapPerConn: null, rss: 1 },
        roundRatios: { rssPerConn: [1], heapPerConn: [null], rss: [1] },
        floorRatios: { rssPerConn: 1, heapPerConn: null, rss: 1 },
        floorRoundRatios: { rssPerConn: [1], heapPerConn: [null], rss: [1] },
        floorReached: false,
        verdict: 'NOT met',
      },
    ],
  };
  const md: string = renderMarkdown(out);
  assert.match(
    md,
    /\| server JS heap KiB\/connection \(lower is better\) \| 1\.66 \| n\/a \| n\/a \| 0\.59 \| n\/a \|/,
  );
  assert.doesNotMatch(md, /\*\*INVALID\*\*/, 'no INVALID cell for a missing heap figure');
  assert.match(renderSvg(out), /<svg/);
});

test('bench report: the scale-out section shows each load, the ratios with their verdicts, or why it was not run', async () => {
  const { renderScaleout } = (await import(REPORT)) as { renderScaleout: (so: unknown) => string[] };
  const median = (serverCpu: number, keptUp = 1) => ({ serverCpu, keptUp });
  const load = (rate: number, duet: number, sio: number, keptUp: number) => ({
    messagesPerSecond: rate,
    deliveriesPerSecondOffered: rate * 500,
    medians: { 'floor-1': median(10), 'duet-redis-1': median(duet), 'socketio-redis-1': median(sio, keptUp) },
    targets: [
      {
        a: 'duet-redis-1',
        b: 'socketio-redis-1',
        max: 0.5,
        ratio: duet / sio,
        met: keptUp < 0.98 ? null : duet / sio <= 0.5,
        behind: keptUp < 0.98 ? ['socketio-redis-1'] : [],
      },
      { a: 'duet-redis-2', b: 'socketio-redis-2', max: 0.5, ratio: null, met: null, behind: [] },
    ],
    bounds: [{ a: 'floor-1', b: 'socketio-redis-1', ratio: 10 / sio }],
  });
  const so = {
    options: { conns: 500, senders: 5, rounds: 3 },
    versions: { 'socket.io': '4', '@socket.io/redis-adapter': '8', redis: '7' },
    titles: { 'floor-1': 'floor', 'duet-redis-1': 'duet over Redis', 'socketio-redis-1': 'Socket.IO' },
    loads: [load(125, 12, 16, 1), load(250, 4, 14, 1), load(500, 4, 14, 0.28)],
  };
  const md = renderScaleout(so).join('\n');
  assert.match(md, /\| variant \| 125 msg\/s \| 250 msg\/s \| 500 msg\/s \|/);
  assert.match(
    md,
    /\| Socket\.IO \| 16\.00 us \| 14\.00 us \| 14\.00 us \(28 %\) \|/,
    'the share delivered when a server fell behind',
  );
  assert.match(
    md,
    /duet-redis-1 \/ socketio-redis-1\*\* \(target <= 0\.5x\) \| 0\.75x \(NOT met\) \| 0\.29x \(met\) \| 0\.29x \(no verdict\) \|/,
    'no verdict where Socket.IO fell behind',
  );
  assert.match(md, /No verdict: one of the two delivered less than 98 %/);
  assert.match(md, /duet-redis-2 \/ socketio-redis-2\*\* \(target <= 0\.5x\) \| INVALID \| INVALID \| INVALID \|/);
  assert.match(md, /floor-1 \/ socketio-redis-1\*\* \(the floor[^|]*\| 0\.63x \| 0\.71x \| 0\.71x \|/);
  assert.match(renderScaleout({ skipped: 'no Redis' }).join('\n'), /Not measured: no Redis\./);
});
