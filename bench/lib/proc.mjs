/**
 * Process plumbing shared by the benchmarks: command-line options, pinned child processes
 * with a typed IPC inbox, /proc readings (CPU, RSS, machine load), medians.
 */
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/**
 * Start the built `duet serve` (dist/cli/duet.js) with `args`; resolves with the child and
 * the port from its LISTENING line, or rejects if it exits first.
 */
export async function startDuetServe(duetJs, args, nodeArgs = []) {
  const server = spawn(process.execPath, [...nodeArgs, duetJs, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = /LISTENING ws:\/\/[^:]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    server.once('exit', (code) => reject(new Error(`duet serve exited (${code})`)));
  });
  return { server, port };
}

/** `--name=value` from argv (or `fallback`); `--name` alone reads as 'true'. */
export function arg(name, fallback, argv = process.argv) {
  const hit = argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (hit === undefined) return fallback;
  return hit.length === name.length + 2 ? 'true' : hit.slice(name.length + 3);
}

/** Whether `taskset` works and there are at least two cores to pin to. */
export function hasTaskset() {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return os.availableParallelism() >= 2;
  } catch {
    return false;
  }
}

/** Pin the calling process (the orchestrator) to `core`; false where that fails. */
export function pinSelf(core) {
  try {
    execFileSync('taskset', ['-cp', String(core), String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The soft and hard open-file limits children get (null where the shell cannot tell). */
export function fileLimits() {
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n');
    const parse = (s) => (s === 'unlimited' ? Infinity : Number(s));
    return { soft: parse(out[0]), hard: parse(out[1]) };
  } catch {
    return null;
  }
}

/**
 * Start `node [nodeArgs] script [args]` with an IPC channel. Options: `core` (pin with taskset
 * when `pin`), `nofile` (raise the open-file limit with `ulimit -n` first), `nodeArgs`, `env`,
 * `name` (for messages). The returned ChildProcess has:
 *   next(type, timeoutMs)  the next IPC message of that type (queued ones first)
 *   stop()                 SIGTERM, SIGKILL after 2 s; resolves once it exited
 */
export function child(script, args = [], opts = {}) {
  const name = opts.name ?? args[0] ?? script;
  let argv = [...(opts.nodeArgs ?? []), script, ...args];
  let cmd = process.execPath;
  if (opts.pin && opts.core !== undefined) {
    argv = ['-c', String(opts.core), cmd, ...argv];
    cmd = 'taskset';
  }
  if (opts.nofile) {
    argv = ['-c', `ulimit -n ${opts.nofile} && exec "$@"`, 'sh', cmd, ...argv];
    cmd = 'sh';
  }
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: opts.env ?? process.env });
  const waiters = [];
  const inbox = [];
  proc.on('message', (m) => {
    const w = waiters.findIndex((x) => x.type === m.type);
    if (w >= 0) waiters.splice(w, 1)[0].resolve(m);
    else inbox.push(m);
  });
  proc.on('exit', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`${name} exited (${code ?? signal})`));
  });
  proc.on('error', (err) => {
    for (const w of waiters.splice(0)) w.reject(err);
  });
  proc.next = (type, timeoutMs) => {
    const i = inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
    if (proc.exitCode !== null || proc.signalCode !== null)
      return Promise.reject(new Error(`${name} exited (${proc.exitCode ?? proc.signalCode})`));
    return new Promise((resolve, reject) => {
      const w = { type, resolve, reject };
      waiters.push(w);
      setTimeout(() => {
        const k = waiters.indexOf(w);
        if (k >= 0) {
          waiters.splice(k, 1);
          reject(new Error(`timed out waiting for ${type} from ${name}`));
        }
      }, timeoutMs).unref();
    });
  };
  proc.post = (m) => {
    if (proc.connected) proc.send(m);
  };
  proc.stop = () =>
    new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
      setTimeout(() => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      }, 2000).unref();
    });
  return proc;
}

const TICK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const PAGE = (() => {
  try {
    return Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096;
  } catch {
    return 4096;
  }
})();

/**
 * CPU time (user and system ms, all threads) and RSS (bytes) of a process from /proc/PID/stat,
 * or null where /proc is unavailable or the process is gone. A child started through `sh` or
 * `taskset` is the same PID: both exec node.
 */
export function procStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may hold spaces; fields after its closing ')' are fixed.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): utime is field 14, stime 15, rss (pages) 24.
    return {
      userMs: (Number(f[11]) * 1000) / TICK,
      systemMs: (Number(f[12]) * 1000) / TICK,
      rss: Number(f[21]) * PAGE,
    };
  } catch {
    return null;
  }
}

/** Fraction of all CPUs busy over `ms` (from /proc/stat), or null where unavailable. */
export async function machineBusy(ms) {
  const sample = () => {
    try {
      const f = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      return { idle: f[3] + f[4], total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
    } catch {
      return null;
    }
  };
  const a = sample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  if (a === null || b === null || b.total === a.total) return null;
  return 1 - (b.idle - a.idle) / (b.total - a.total);
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The machine, for reports. */
export function machineInfo() {
  let kernel = os.release();
  try {
    kernel = execFileSync('uname', ['-sr'], { encoding: 'utf8' }).trim();
  } catch {
    /* os.release() */
  }
  return {
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown cpu',
    // os.cpus(), not availableParallelism(): the harness may already be pinned to one core.
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel,
    platform: `${process.platform} ${process.arch}`,
  };
}

/** Jiffies of one CPU from /proc/stat: { busy, steal, total }, or null. */
export function cpuTimes(core) {
  try {
    const line = readFileSync('/proc/stat', 'latin1')
      .split('\n')
      .find((l) => l.startsWith(`cpu${core} `));
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - f[4], steal: f[7] ?? 0, total };
  } catch {
    return null;
  }
}
