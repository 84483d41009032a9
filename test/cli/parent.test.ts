/**
 * `duet serve --exit-with-parent` (cli/parent.ts) and `npm start`, which uses it: npm runs the
 * script through `sh -c`, and SIGTERM to npm reaches only that shell; Debian's sh (dash) dies
 * without passing it on, so without the option duet serve went on holding the port. Here npm
 * itself (and a bare `sh -c`, as npm runs it, with --workers) is started on a free port and
 * killed by its PID; the test waits until every process it started is gone and the port
 * refuses connections. Linux only (it follows the process tree through /proc).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { CLI, listening } from './cli-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const linux = process.platform === 'linux' && existsSync('/proc/self/task');
const T = { timeout: 60_000, skip: linux ? false : 'needs /proc (Linux)' };

/** Every process below `pid`, children first read from /proc. */
function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number): void => {
    let tasks: string[];
    try {
      tasks = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return;
    }
    for (const child of tasks.map(Number)) {
      found.push(child);
      visit(child);
    }
  };
  visit(pid);
  return found;
}

/** Running, not exited (a zombie whose parent has not reaped it yet counts as exited). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/**
 * Kill `launcher` (npm, or sh) with SIGTERM and wait, within 20 s, until it and every process
 * it had started have exited and `port` refuses connections. SIGKILLs whatever is left.
 */
async function killAndCheck(launcher: ChildProcess, started: number[], port: number): Promise<void> {
  try {
    const exited = once(launcher, 'exit');
    launcher.kill('SIGTERM');
    await exited;
    const deadline = Date.now() + 20_000;
    while (started.some(running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(started.filter(running), [], 'every process started is gone');
    assert.equal(await refuses(port), true, 'nothing holds the port');
  } finally {
    for (const pid of started.filter(running)) process.kill(pid, 'SIGKILL');
  }
}

test('npm start killed by its PID (SIGTERM) stops duet serve: no orphan keeps the port', T, async () => {
  // Under `npm test`, npm says where it is; run on its own, the npm on PATH.
  const npm = process.env.npm_execpath;
  const [command, args] = npm?.endsWith('.js')
    ? [process.execPath, [npm, 'start', '--', '--port', '0']]
    : ['npm', ['start', '--', '--port', '0']];
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const served = await listening(child, 30_000);
  const port = Number(served.url.split(':').pop());
  const started = descendants(child.pid!);
  assert.ok(started.length >= 1, 'npm started duet serve');
  // Beside the LISTENING line, the page to open.
  for (let i = 0; i < 500 && !served.stdout().includes('open '); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(
    served.stdout(),
    new RegExp(`^LISTENING ws://127\\.0\\.0\\.1:${port}\\nopen http://127\\.0\\.0\\.1:${port}/ for `, 'm'),
  );
  await killAndCheck(child, started, port);
  assert.match(served.stderr(), /duet: the parent process \(\d+\) ended; stopping/);
});

test(
  '--workers 2 --exit-with-parent under sh -c: SIGTERM to the shell stops the primary and its workers',
  T,
  async () => {
    const child = spawn(
      '/bin/sh',
      ['-c', `"${process.execPath}" "${CLI}" serve --port 0 --workers 2 --exit-with-parent`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const served = await listening(child, 30_000);
    const port = Number(served.url.split(':').pop());
    const started = descendants(child.pid!);
    assert.ok(started.length >= 3, `the primary and two workers: ${started.join(', ')}`);
    await killAndCheck(child, started, port);
  },
);
