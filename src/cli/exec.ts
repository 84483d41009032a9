/**
 * `duet exec -- COMMAND [ARGS...]`: turn any program that reads stdin and writes stdout into
 * a WebSocket endpoint, as websocketd does. Each connection starts its own copy of the
 * program (no shell): every line it prints is sent as a text message, every text message
 * received is written to its stdin as a line. The program's exit closes the connection; the
 * connection's end stops the program.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type * as http from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocket } from '../node/connection.js';
import { WebSocketServer } from '../node/server.js';
import { listeningLine, portNumber, wholeNumber } from './options.js';

const HELP = `Usage: duet exec [options] -- COMMAND [ARGS...]

Runs COMMAND once per WebSocket connection (no shell). Each line it writes to stdout is
sent as a text message; each text message received is written to its stdin as a line.
When the program exits the connection closes (1000 after exit code 0, otherwise 1011 with
the exit code or signal as the reason). When the client goes away the program's stdin is
closed and it gets SIGTERM, then SIGKILL after --kill-timeout. stderr goes to duet's stderr.

Options:
  --port N            port to listen on (default 8080; 0 picks a free one)
  --host H            address to bind (default 127.0.0.1)
  --path P            accept WebSockets on this path only (default: any path)
  --origin O          accept only browsers from this origin (repeatable; default: any)
  --max-processes N   programs running at once; more connections get 503 (default 64)
  --max-payload N     largest incoming message, and longest line sent, in bytes (default 1048576)
  --binary            raw bytes both ways as binary messages, instead of lines
  --kill-timeout MS   from SIGTERM to SIGKILL after the client left (default 2000)
  -h, --help          show this help

The program's environment is duet's plus, as CGI and websocketd set them: REMOTE_ADDR,
REMOTE_PORT, SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, SERVER_SOFTWARE, GATEWAY_INTERFACE,
REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME, PATH_INFO, QUERY_STRING and HTTP_<NAME> for each
request header (except Proxy, so no HTTP_PROXY).

Prints "LISTENING ws://HOST:PORT" once ready. Ctrl-C or SIGTERM closes every connection
with 1001 (Going Away), stops every program and exits 0.`;

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

const OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  path: { type: 'string' },
  origin: { type: 'string', multiple: true },
  'max-processes': { type: 'string' },
  'max-payload': { type: 'string' },
  binary: { type: 'boolean' },
  'kill-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The options that take a value (the next argument, unless written --name=value). */
const VALUED = new Set(
  Object.entries(OPTIONS)
    .filter(([, o]) => o.type === 'string')
    .map(([name]) => `--${name}`),
);

export async function runExec(argv: string[]): Promise<number> {
  // The first argument that is not an option starts the program and its own arguments, even
  // without "--": `duet exec --port 80 prog --host 0.0.0.0` passes --host on to prog.
  let at = 0;
  while (at < argv.length && argv[at] !== '--' && argv[at].startsWith('-')) at += VALUED.has(argv[at]) ? 2 : 1;
  if (at < argv.length && argv[at] !== '--') argv = [...argv.slice(0, at), '--', ...argv.slice(at)];
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length === 0) throw new Error('no program given: duet exec [options] -- COMMAND [ARGS...]');
  const port = portNumber(values.port, 8080);
  const host = values.host ?? '127.0.0.1';
  if (values.path !== undefined && !values.path.startsWith('/'))
    throw new Error(`--path must start with "/", got "${values.path}"`);
  const maxProcesses = wholeNumber('max-processes', values['max-processes'], 64);
  if (maxProcesses < 1) throw new Error('--max-processes must be at least 1');
  const maxPayload = wholeNumber('max-payload', values['max-payload'], 1024 * 1024);
  if (maxPayload < 1) throw new Error('--max-payload must be at least 1');
  const options: ExecOptions = {
    command: positionals[0],
    args: positionals.slice(1),
    binary: values.binary === true,
    maxLine: maxPayload,
    killTimeout: wholeNumber('kill-timeout', values['kill-timeout'], 2000),
  };
  // setTimeout takes at most 2^31 - 1 ms (longer ones fire after 1 ms).
  if (options.killTimeout > 2 ** 31 - 1)
    throw new Error(`--kill-timeout must be at most ${2 ** 31 - 1}, got ${options.killTimeout}`);

  const programs = new Set<Promise<void>>();
  let serverPort = port;
  const wss = new WebSocketServer({
    port,
    host,
    path: values.path,
    maxPayload,
    allowOrigins: values.origin,
    // A client that does not answer our Close (at shutdown, or after its program exited).
    closeTimeout: 2000,
    shutdownTimeout: 2000,
    // Each program is paused while more than HIGH_WATER waits for its client, so the backlog
    // stays within HIGH_WATER and a few messages; the slow-consumer limit (16 MiB) would only
    // cut off (1013) a client reading a line longer than it.
    maxBufferedAmount: Infinity,
    // A program that is still stopping counts too: at most maxProcesses exist at once.
    verifyClient: (_info, done) => {
      if (programs.size >= maxProcesses) done(false, 503, 'Too many programs running', { 'Retry-After': '5' });
      else done(true);
    },
  });
  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const done = runProgram(ws, programEnvironment(req, serverPort), options).finally(() => programs.delete(done));
    programs.add(done);
  });

  await new Promise<void>((resolve, reject) => {
    wss.once('listening', () => {
      wss.removeListener('error', reject);
      resolve();
    });
    wss.once('error', reject);
  });
  // After start-up a server error is reported, not fatal: the running programs go on.
  wss.on('error', (err: Error) => console.error(`duet exec: ${err.message}`));
  const address = wss.address();
  if (typeof address === 'object' && address !== null) serverPort = address.port;
  console.log(listeningLine('ws', host, address, port));

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      // 1001 to every client (terminated after shutdownTimeout); each connection's end stops
      // its program (SIGTERM, then SIGKILL), and we exit once every program is gone.
      wss.close(() => {
        void Promise.all(programs).then(() => resolve(0));
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
