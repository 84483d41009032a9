#!/usr/bin/env node
/**
 * Coverage floors per source folder, checked after `npm test` has run the suite under c8
 * (which writes coverage/coverage-summary.json). A folder below its floor fails the run, so
 * coverage can only go up: raise a floor when a folder's coverage rises, never lower one
 * without a reason in the commit message.
 *
 * protocol/ is the sans-I/O core: every line and branch of it is reachable from a unit test
 * with hand-made bytes, so it is held at 100 %. The others start at what the suite reached
 * when the floors were introduced (rounded down), so that a change that drops tests shows.
 */
import { readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/**
 * Floors in percent: lines and branches, per folder of src/ ('.' is src/index.ts). Measured
 * by two full runs of `npm test` when the floors came in (the same numbers both times):
 * node 98.69 / 94.77, push 99.49 / 96.98, browser 93.65 / 91.99, cli 92.88 / 78.54 (lines /
 * branches). cli/ runs only in child processes, counted through dist/'s source maps; a child
 * killed with SIGKILL writes no coverage.
 */
const FLOORS = {
  '.': { lines: 100, branches: 100 },
  protocol: { lines: 100, branches: 100 },
  node: { lines: 98, branches: 94 },
  push: { lines: 99, branches: 96 },
  // Raised from 93 / 91 when every browser/ module got its own test file (94.67 / 95.62), and
  // to 96 / 96 with issue 16's sender, pacer, ids and limits and their tests (96.38 / 96.73 in
  // two full runs).
  browser: { lines: 96, branches: 96 },
  // cli/ is covered through child processes (duet serve/connect/exec): 78.5 % of branches when
  // the floors were set, a margin of one branch, so the floor is a point lower to keep CI from
  // failing on a branch that only some timings reach. Raise it with tests, not by luck.
  // Raised from 77 to 80 when cli/options.ts and cli/endpoints.ts got in-process tests (81.16
  // in two runs; the same point of margin). Raised to 95 / 89 with the in-process tests of
  // explain.ts, tls-files.ts and program.ts and the CLI's newcomer tests (95.92 / 90.1 and
  // 95.92 / 90.07 in two full runs; the same point of margin on branches).
  cli: { lines: 95, branches: 89 },
  // redis/ (duet/redis) is covered by test/redis/ against a real Redis on 127.0.0.1:6379:
  // measured with the Redis tests running, 96.41 / 87.87 and 97.39 / 88.16 in two full runs
  // when the floor was set (the lower one rounded down, as for the others). Without a
  // Redis they skip and this floor fails (CI runs with REQUIRE_REDIS=1). Branches a point
  // lower, as for cli/: some are reached or not by the Redis's state and by timing (the EVAL
  // fallback only on a Redis that has not cached the scripts yet; which of the two connections
  // is ready first after a reconnection).
  redis: { lines: 96, branches: 86 },
};

const root = new URL('..', import.meta.url).pathname;
const summaryPath = join(root, 'coverage', 'coverage-summary.json');
let summary;
try {
  summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
} catch (err) {
  console.error(`check-coverage: cannot read ${summaryPath} (run the tests under c8 first): ${err.message}`);
  process.exit(1);
}

const totals = {};
for (const [file, data] of Object.entries(summary)) {
  if (file === 'total') continue;
  const rel = relative(join(root, 'src'), file);
  if (rel.startsWith('..')) continue;
  const folder = rel.includes(sep) ? rel.split(sep)[0] : '.';
  const t = (totals[folder] ??= { lines: [0, 0], branches: [0, 0], files: [] });
  t.lines[0] += data.lines.covered;
  t.lines[1] += data.lines.total;
  t.branches[0] += data.branches.covered;
  t.branches[1] += data.branches.total;
  if (data.lines.pct < 100 || data.branches.pct < 100)
    t.files.push(`${rel} (lines ${data.lines.pct} %, branches ${data.branches.pct} %)`);
}

const pct = ([covered, total]) => (total === 0 ? 100 : Math.floor((covered / total) * 10000) / 100);
let failed = false;
console.log('coverage by folder (lines / branches), floor in brackets:');
for (const [folder, t] of Object.entries(totals).sort()) {
  const floor = FLOORS[folder] ?? { lines: 0, branches: 0 };
  const lines = pct(t.lines);
  const branches = pct(t.branches);
  const bad = lines < floor.lines || branches < floor.branches;
  const where = folder === '.' ? 'src/ (top level)' : `src/${folder}/`;
  console.log(`  ${bad ? 'FAIL' : 'ok  '} ${where}: ${lines} % [${floor.lines}] / ${branches} % [${floor.branches}]`);
  if (bad) {
    failed = true;
    for (const f of t.files) console.log(`         ${f}`);
  }
}
for (const folder of Object.keys(FLOORS)) {
  if (totals[folder] === undefined) {
    console.log(`  FAIL src/${folder}/: no coverage data (did the suite run under c8?)`);
    failed = true;
  }
}
if (failed) {
  console.error(
    'check-coverage: a folder is below its floor (see above); add tests for what the change left uncovered.',
  );
  process.exit(1);
}
