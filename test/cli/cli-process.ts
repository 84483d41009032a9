/**
 * The built `duet` command in a child process, for the CLI tests: start it, wait for its
 * `LISTENING ws://HOST:PORT` line, read what it printed, stop it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/duet.js', import.meta.url));

export interface Listening {
  child: ChildProcess;
  /** The URL from the LISTENING line. */
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** SIGKILL, unless it already exited; resolves once it has. */
  stop(): Promise<void>;
}

/**
 * Wait for `child` (spawned with piped stdout and stderr) to print its LISTENING line. Rejects
 * with its stderr when it exits first or prints nothing for `ms`.
 */
export function listening(child: ChildProcess, ms = 10_000): Promise<Listening> {
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(child, 'exit');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no LISTENING line; stderr: ${err}`)), ms);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /LISTENING (wss?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1],
          stdout: () => out,
          stderr: () => err,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
            await exited;
          },
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}; stderr: ${err}`));
    });
  });
}

/** `duet ARGS...` (e.g. ['serve', '--port', '0']) until its LISTENING line. */
export function startDuet(args: string[]): Promise<Listening> {
  return listening(spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
}
