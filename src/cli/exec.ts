/**
 * `duet exec -- COMMAND [ARGS...]`: turn any program that reads stdin and writes stdout into
 * a WebSocket endpoint, as websocketd does. Each connection starts its own copy of the
 * program (no shell): every line it prints is sent as a text message, every text message
 * received is written to its stdin as a line. The program's exit closes the connection; the
 * connection's end stops the program.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { WebSocket } from '../node/connection.js';
import { WebSocketServer } from '../node/server.js';
import { plainAnswer } from '../node/upgrade.js';
import { listeningLine, parseCommandLine, portNumber, wholeNumber } from './options.js';
import { checkProgram, programEnvironment, runProgram, type ExecOptions } from './program.js';
import { readTlsFiles } from './tls-files.js';

export const EXEC_HELP = `Usage: duet exec [options] -- COMMAND [ARGS...]

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
  --tls-cert FILE     serve wss:// with this PEM certificate (needs --tls-key)
  --tls-key FILE      the PEM private key for --tls-cert
  -h, --help          show this help

The program's environment is duet's plus, as CGI and websocketd set them: REMOTE_ADDR,
REMOTE_PORT, SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, SERVER_SOFTWARE, GATEWAY_INTERFACE,
REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME, PATH_INFO, QUERY_STRING and HTTP_<NAME> for each
request header (except Proxy, so no HTTP_PROXY).

COMMAND is checked at start-up: a program that does not exist or is not executable makes
duet exec exit 1 with the reason. Prints "LISTENING ws://HOST:PORT" (wss:// with TLS) once
ready. Ctrl-C or SIGTERM closes every connection
with 1001 (Going Away), stops every program and exits 0.`;

const OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  path: { type: 'string' },
  origin: { type: 'string', multiple: true },
  'max-processes': { type: 'string' },
  'max-payload': { type: 'string' },
  binary: { type: 'boolean' },
  'kill-timeout': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
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
  const { values, positionals } = parseCommandLine('exec', argv, OPTIONS, true);
  if (values.help) {
    console.log(EXEC_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new Error('no program given: duet exec [options] -- COMMAND [ARGS...]');
  const tlsFiles = readTlsFiles(values['tls-cert'], values['tls-key']);
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
  const cannotRun = checkProgram(options.command);
  if (cannotRun !== undefined) throw new Error(`cannot run ${cannotRun}`);

  const programs = new Set<Promise<void>>();
  let serverPort = port;
  // With TLS, node:https listens and duet attaches to it; without, duet's own server does.
  const tlsServer = tlsFiles
    ? https.createServer(
        { ...tlsFiles, headersTimeout: 10_000, requestTimeout: 15_000 },
        (req: http.IncomingMessage, res: http.ServerResponse) => {
          const [status, body, headers] = plainAnswer(req);
          res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
          res.end(body);
        },
      )
    : undefined;
  const wss = new WebSocketServer({
    ...(tlsServer ? { server: tlsServer } : { port, host }),
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
    tlsServer?.listen(port, host);
  });
  // After start-up a server error is reported, not fatal: the running programs go on.
  wss.on('error', (err: Error) => console.error(`duet exec: ${err.message}`));
  const address = wss.address();
  if (typeof address === 'object' && address !== null) serverPort = address.port;
  console.log(listeningLine(tlsServer ? 'wss' : 'ws', host, address, port));

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
      // duet closes only a server it made itself.
      tlsServer?.close();
      tlsServer?.closeIdleConnections();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
