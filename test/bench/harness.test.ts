/**
 * Smoke test of the benchmark harness (bench/run.mjs), not a benchmark: one tiny echo run
 * against the built duet server and the floor (bench/servers/floor.mjs, the reference) must
 * come out valid with numbers, and the same run against duet with one received message
 * deliberately corrupted (BENCH_FAULT=corrupt) must come out INVALID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../../bench/run.mjs', import.meta.url));

interface Outcome {
  code: number;
  stdout: string;
  json: {
    scenarios: Array<{
      id: string;
      runs: Record<string, Array<Record<string, number> & { invalid?: string }>>;
      medians: Record<string, Record<string, number> | null>;
    }>;
  };
}

function bench(dir: string, name: string, servers: string, env: Record<string, string> = {}): Promise<Outcome> {
  const json = join(dir, `${name}.json`);
  const args = [RUN, '--scenarios=echo-32B', `--servers=${servers}`, '--rounds=1', '--warmup=200', '--duration=700', `--json=${json}`, '--no-docs'];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      if (code !== 0 && code !== 2) { reject(new Error(`bench exited ${code}: ${stderr}\n${stdout}`)); return; }
      resolve({ code, stdout, json: JSON.parse(readFileSync(json, 'utf8')) });
    });
  });
}

test('bench harness: a valid run reports numbers, a corrupted one INVALID', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-'));
  try {
    const [good, bad] = await Promise.all([bench(dir, 'good', 'duet,floor'), bench(dir, 'bad', 'duet', { BENCH_FAULT: 'corrupt' })]);

    assert.equal(good.code, 0, good.stdout);
    assert.doesNotMatch(good.stdout, /INVALID/);
    const g = good.json.scenarios[0]!;
    assert.equal(g.id, 'echo-32B');
    const run = g.runs.duet![0]!;
    assert.equal(run.invalid, undefined);
    assert.ok(run.count! > 0 && run.rate! > 0, 'echoes counted');
    assert.ok(run.cpu! > 0 && run.rss! > 0, 'server CPU and RSS read from /proc');
    assert.ok(run.p50! > 0 && run.p99! >= run.p50!, 'latency percentiles');
    assert.ok(g.medians.duet !== null && g.medians.duet!.cpu === run.cpu, 'medians of one run');
    const floor = g.runs.floor![0]!;
    assert.equal(floor.invalid, undefined, 'the floor server passes the same checks');
    assert.ok(floor.count! > 0 && floor.cpu! > 0, 'floor numbers');
    assert.match(good.stdout, /floor\/ws/, 'floor columns in the table');

    assert.equal(bad.code, 2, bad.stdout);
    assert.match(bad.stdout, /duet +INVALID \(conn \d+: echo \d+ differs from what was sent/);
    const b = bad.json.scenarios[0]!;
    assert.equal(b.medians.duet, null, 'no number for an invalid run');
    assert.match(b.runs.duet![0]!.invalid!, /differs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
