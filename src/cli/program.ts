/**
 * One `duet exec` connection's program: its environment (CGI-style variables), starting it,
 * and the two pipes between it and the connection (lines or raw bytes, with backpressure
 * both ways); and the check, at start-up, that the program can be run at all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import type * as http from 'node:http';
import { delimiter, isAbsolute, join } from 'node:path';
import { WebSocket } from '../node/connection.js';

/** What every connection's program is run with. */
export interface ExecOptions {
  command: string;
  args: string[];
  /** Lines (false) or raw bytes as binary messages (true). */
  binary: boolean;
  /** Longest line sent as one message; longer output is sent in pieces of this size. */
  maxLine: number;
  /** Milliseconds from SIGTERM to SIGKILL. */
  killTimeout: number;
}

/** Bytes waiting to be written to a client before the program's stdout is paused. */
const HIGH_WATER = 1024 * 1024;

/**
 * The CGI-style variables for a connection's program. Header names are kept only when they
 * are plain letters, digits and dashes (so every name is a valid variable name), and Proxy
 * is left out: HTTP_PROXY would set the program's HTTP proxy ("httpoxy").
 */
export function programEnvironment(
  req: http.IncomingMessage,
  serverPort: number,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const env: NodeJS.ProcessEnv = {
    ...base,
    REMOTE_ADDR: req.socket.remoteAddress ?? '',
    REMOTE_PORT: String(req.socket.remotePort ?? ''),
    SERVER_NAME: (req.headers.host ?? '').replace(/:\d+$/, ''),
    SERVER_PORT: String(serverPort),
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    SERVER_SOFTWARE: 'duet',
    GATEWAY_INTERFACE: 'websocketd-CGI/0.1',
    REQUEST_METHOD: req.method ?? 'GET',
    REQUEST_URI: url,
    SCRIPT_NAME: path,
    PATH_INFO: '',
    QUERY_STRING: q === -1 ? '' : url.slice(q + 1),
  };
  for (const [name, value] of Object.entries(req.headers)) {
    if (!/^[A-Za-z0-9-]+$/.test(name) || name.toLowerCase() === 'proxy' || value === undefined) continue;
    env[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = Array.isArray(value) ? value.join(', ') : value;
  }
  return env;
}

/**
 * Run the program for one open connection and connect the two. Resolves when both the
 * program and the connection have ended.
 */
export function runProgram(
  ws: WebSocket,
  env: NodeJS.ProcessEnv,
  options: ExecOptions,
  log: (line: string) => void = (l) => console.error(l),
): Promise<void> {
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, { stdio: ['pipe', 'pipe', 'inherit'], env });
  } catch (err) {
    log(`duet exec: cannot start ${options.command}: ${(err as Error).message}`);
    ws.close(1011, 'cannot start the program');
    return Promise.resolve();
  }
  if (!child.stdin || !child.stdout) {
    // Out of file descriptors (EMFILE, ENFILE): Node reports it on 'error' and makes no pipes.
    child.once('error', (err: NodeJS.ErrnoException) =>
      log(`duet exec: cannot start ${options.command}: ${err.code ?? err.message}`),
    );
    ws.close(1011, 'cannot start the program');
    return Promise.resolve();
  }
  let exited = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stdin = child.stdin;
  const stdout = child.stdout;
  stdin.on('error', () => {
    // The program closed its stdin (or exited): later messages have nowhere to go.
  });

  // stdout -> messages, pausing the program while the client is slow to read.
  let waiting = false;
  const sent = (): void => {
    waiting = false;
    stdout.resume();
  };
  const send = (data: Buffer | string): void => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const length = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    const crossing = !waiting && ws.bufferedAmount + length > HIGH_WATER;
    if (crossing) {
      waiting = true;
      stdout.pause();
      ws.send(data, { binary: options.binary }, sent);
    } else {
      ws.send(data, { binary: options.binary });
    }
  };
  /**
   * A line longer than a message may be goes in pieces of at most maxLine bytes, cut between
   * characters (a character longer than the limit goes whole): sends every piece but the
   * last, and returns the last.
   */
  const cut = (text: string): string => {
    // Fast path: no UTF-16 unit takes more than 3 bytes of UTF-8.
    if (text.length * 3 <= options.maxLine) return text;
    const bytes = Buffer.from(text);
    let at = 0;
    while (bytes.length - at > options.maxLine) {
      let end = at + options.maxLine;
      while (end > at && (bytes[end] & 0xc0) === 0x80) end--;
      if (end === at) for (end = at + 1; (bytes[end] & 0xc0) === 0x80;) end++;
      send(bytes.toString('utf8', at, end));
      at = end;
    }
    return at === 0 ? text : bytes.toString('utf8', at);
  };
  let partial = '';
  /**
   * UTF-8 bytes in `partial`, counted as it grows: measuring (or cutting) the whole of it on
   * every chunk made a line of N bytes cost O(N^2) (17 MiB took ~20 s).
   */
  let partialBytes = 0;
  if (options.binary) {
    stdout.on('data', (chunk: Buffer) => {
      for (let at = 0; at < chunk.length; at += options.maxLine) send(chunk.subarray(at, at + options.maxLine));
    });
  } else {
    stdout.setEncoding('utf8');
    stdout.on('data', (text: string) => {
      let start = 0;
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
        let line = partial + text.slice(start, nl);
        partial = '';
        partialBytes = 0;
        if (line.endsWith('\r')) line = line.slice(0, -1);
        send(cut(line));
        start = nl + 1;
      }
      const rest = text.slice(start);
      partial += rest;
      partialBytes += Buffer.byteLength(rest);
      // Only a line over the limit is cut: each cut sends at least one maxLine piece.
      if (partialBytes > options.maxLine) {
        partial = cut(partial);
        partialBytes = Buffer.byteLength(partial);
      }
    });
  }

  // messages -> stdin, pausing the connection while the program is slow to read.
  let stdinFull = false;
  const stdinDrained = (): void => {
    stdinFull = false;
    ws.resume();
  };
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[] | Blob, isBinary: boolean) => {
    if (exited || stdin.destroyed) return;
    if (!options.binary && isBinary) {
      ws.close(1003, 'this endpoint takes text messages');
      return;
    }
    const bytes = data as Buffer;
    const ok = options.binary ? stdin.write(bytes) : stdin.write(Buffer.concat([bytes, NEWLINE]));
    if (!ok && !stdinFull) {
      stdinFull = true;
      ws.pause();
      stdin.once('drain', stdinDrained);
    }
  });
  // A program that exits (or closes its stdin) without reading what waits: read the client
  // again, or its Close would go unread.
  stdin.once('close', stdinDrained);

  const programDone = new Promise<void>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      exited = true;
      log(`duet exec: cannot start ${options.command}: ${err.code ?? err.message}`);
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)
        ws.close(1011, 'cannot start the program');
      resolve();
    });
    // 'close': the program exited and its stdout is drained, so every line was sent.
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      exited = true;
      if (killTimer !== undefined) clearTimeout(killTimer);
      if (partial !== '') send(partial);
      partial = '';
      partialBytes = 0;
      if (ws.readyState === WebSocket.OPEN) {
        if (code === 0) ws.close(1000);
        else ws.close(1011, code !== null ? `exit ${code}` : `signal ${signal}`);
      }
      resolve();
    });
  });

  // After the client left, the program's output has nowhere to go: once the program itself
  // has exited, stop waiting for the end of its stdout, which a process it started in the
  // background may hold open for ever ('close' waits for it).
  let clientGone = false;
  child.once('exit', () => {
    if (clientGone) stdout.destroy();
  });

  const connectionDone = new Promise<void>((resolve) => {
    ws.once('close', () => {
      clientGone = true;
      if (!exited) {
        stdin.end();
        stdout.resume();
        if (child.exitCode !== null || child.signalCode !== null) {
          stdout.destroy();
        } else {
          child.kill('SIGTERM');
          killTimer = setTimeout(() => {
            if (!exited) child.kill('SIGKILL');
          }, options.killTimeout);
          killTimer.unref();
        }
      }
      resolve();
    });
  });
  return Promise.all([programDone, connectionDone]).then(() => undefined);
}

const NEWLINE = Buffer.from('\n');

/**
 * Why `command` cannot be run, or undefined when it can: a path (with a slash) must be an
 * executable file; a bare name must be one in a directory of `PATH`, as spawn (execvp) looks
 * it up. Checked once at start-up, so a typo fails `duet exec` at once instead of every
 * connection with 1011. On Windows, where there is no executable bit, a name is found with
 * any extension of PATHEXT.
 */
export function checkProgram(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const windows = process.platform === 'win32';
  const runnable = (file: string): 'ok' | 'missing' | 'directory' | 'not executable' => {
    try {
      if (statSync(file).isDirectory()) return 'directory';
    } catch {
      return 'missing';
    }
    try {
      accessSync(file, windows ? constants.F_OK : constants.X_OK);
      return 'ok';
    } catch {
      return 'not executable';
    }
  };
  if (command === '') return 'the program name is empty';
  if (command.includes('/') || (windows && (command.includes('\\') || isAbsolute(command)))) {
    switch (runnable(command)) {
      case 'ok':
        return undefined;
      case 'missing':
        return `${command}: no such file`;
      case 'directory':
        return `${command}: is a directory, not a program`;
      default:
        return `${command}: not executable (chmod +x ${command}, or name its interpreter: -- sh ${command})`;
    }
  }
  const extensions = windows ? ['', ...(env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';')] : [''];
  let found: string | undefined;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    for (const ext of extensions) {
      const verdict = runnable(join(dir === '' ? '.' : dir, command + ext));
      if (verdict === 'ok') return undefined;
      if (verdict === 'not executable') found ??= join(dir, command + ext);
    }
  }
  if (found !== undefined) return `${command}: ${found} is not executable (chmod +x ${found})`;
  return `${command}: not found in PATH (give its path, e.g. ./${command}, or install it)`;
}
