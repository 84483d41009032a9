/**
 * `duet connect URL`: a WebSocket client on the command line. Each stdin line is sent as a
 * message; each received message is printed as one line. On a terminal it is interactive (a
 * `> ` prompt, received messages shown as `< ...`), in a pipe it prints bare lines.
 */
import * as readline from 'node:readline';
import { WebSocket } from '../node/connection.js';
import type { ClientOptions } from '../node/client.js';
import { closeCodeMeaning, displayUrl, explainFailure } from './explain.js';
import { parseCommandLine, wholeNumber } from './options.js';

export const CONNECT_HELP = `Usage: duet connect URL [options]

Send each line of stdin as a message; print each message received as one line.

Options:
  -H, --header 'Name: value'  add a request header (repeatable)
  --subprotocol P             offer subprotocol P (repeatable)
  --origin O                  send Origin: O
  --insecure                  accept any TLS certificate (wss:// to self-signed servers)
  --binary                    send stdin lines as binary messages instead of text
  -w, --wait SECONDS          after stdin ends, keep printing what arrives for SECONDS
                              (decimals allowed) before closing (default 0)
  --handshake-timeout MS      give up when the opening handshake, connect included, takes
                              longer than MS milliseconds (default 30000)
  -h, --help                  show this help

Binary messages received are printed as "[binary N bytes] <hex>".
When stdin ends (and --wait has passed), the connection is closed with 1000 after the
close handshake, and the exit code is 0. A connection that cannot be opened prints one line
saying why and exits 1. A close by the server prints its code, what the code means and the
reason on stderr ("closed: 1009 message too big (reason: ...)"); the exit code is 0 for
1000, 1001 or no code, 1 otherwise.`;

/** setTimeout waits at most 2^31 - 1 ms (longer ones fire after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** `--wait SECONDS` in milliseconds: a number of seconds >= 0, decimals allowed. */
export function waitMilliseconds(value: string | undefined): number {
  if (value === undefined) return 0;
  const ms = /^\d+(\.\d+)?$/.test(value) ? Math.round(Number(value) * 1000) : NaN;
  if (!(ms <= MAX_TIMER_MS)) {
    throw new Error(`--wait takes a number of seconds, 0 to ${Math.floor(MAX_TIMER_MS / 1000)}, got "${value}"`);
  }
  return ms;
}

/** One line per message: text as is (line breaks escaped), binary labelled, in hex. */
export function formatMessage(data: Buffer, isBinary: boolean): string {
  if (isBinary) return `[binary ${data.length} bytes] ${data.toString('hex')}`;
  return data.toString('utf8').replace(/\r?\n/g, '\\n');
}

export async function runConnect(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    'connect',
    argv,
    {
      header: { type: 'string', short: 'H', multiple: true },
      subprotocol: { type: 'string', multiple: true },
      origin: { type: 'string' },
      insecure: { type: 'boolean' },
      binary: { type: 'boolean' },
      wait: { type: 'string', short: 'w' },
      'handshake-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) {
    console.log(CONNECT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new Error('connect takes one URL, e.g. duet connect ws://127.0.0.1:8080/echo');
  const waitMs = waitMilliseconds(values.wait);
  const handshakeTimeout = wholeNumber('handshake-timeout', values['handshake-timeout'], 30_000);
  if (handshakeTimeout < 1 || handshakeTimeout > MAX_TIMER_MS)
    throw new Error(`--handshake-timeout must be 1-${MAX_TIMER_MS} milliseconds, got ${handshakeTimeout}`);

  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new Error(`-H wants 'Name: value', got "${h}"`);
    headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
  }
  const options: ClientOptions = { headers, handshakeTimeout };
  if (values.origin !== undefined) options.origin = values.origin;
  if (values.insecure) options.rejectUnauthorized = false;

  let ws: WebSocket;
  try {
    ws = new WebSocket(positionals[0], values.subprotocol ?? [], options);
  } catch (err) {
    throw new Error(`invalid URL, subprotocol or header: ${(err as Error).message}`, { cause: err });
  }
  ws.binaryType = 'nodebuffer';

  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const rl = readline.createInterface({
    input: process.stdin,
    output: interactive ? process.stdout : undefined,
    terminal: interactive,
  });
  const pending: string[] = [];
  let stdinEnded = false;
  let waitTimer: NodeJS.Timeout | undefined;
  /** stdin ended and the connection is open: close now, or after --wait. */
  const finish = (): void => {
    if (waitMs === 0) ws.close(1000);
    else waitTimer ??= setTimeout(() => ws.close(1000), waitMs);
  };
  const sendLine = (line: string): void => {
    if (values.binary) ws.send(Buffer.from(line, 'utf8'));
    else ws.send(line);
  };

  const print = (line: string): void => {
    if (!interactive) {
      process.stdout.write(line + '\n');
      return;
    }
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    process.stdout.write(`< ${line}\n`);
    rl.prompt(true);
  };

  rl.on('line', (line) => {
    if (ws.readyState === WebSocket.OPEN) sendLine(line);
    else if (ws.readyState === WebSocket.CONNECTING) pending.push(line);
    if (interactive) rl.prompt();
  });
  rl.on('close', () => {
    stdinEnded = true;
    if (ws.readyState === WebSocket.OPEN) finish();
  });

  return new Promise<number>((resolve) => {
    let opened = false;
    let failure: Error | undefined;
    ws.on('open', () => {
      opened = true;
      if (interactive) {
        process.stdout.write(
          `connected to ${displayUrl(ws.url)}${ws.protocol ? ` (subprotocol ${ws.protocol})` : ''}; Ctrl-D closes\n`,
        );
        rl.setPrompt('> ');
        rl.prompt();
      }
      for (const line of pending.splice(0)) sendLine(line);
      if (stdinEnded) finish();
    });
    ws.on('message', (data, isBinary) => print(formatMessage(data as Buffer, isBinary)));
    ws.on('error', (err) => {
      failure = err;
    });
    ws.on('close', (code, reason) => {
      clearTimeout(waitTimer);
      rl.close();
      process.stdin.unref?.();
      if (!opened) {
        void explainFailure(failure, positionals[0]).then((line) => {
          process.stderr.write(`duet connect: ${line}\n`);
          resolve(1);
        });
        return;
      }
      const text = reason.toString('utf8');
      const normal = code === 1000 || code === 1001 || code === 1005;
      if (!(stdinEnded && code === 1000 && ws.wasClean)) {
        const why = failure && !normal ? ` - ${failure.message}` : '';
        process.stderr.write(`closed: ${code} ${closeCodeMeaning(code)}${text ? ` (reason: ${text})` : ''}${why}\n`);
      }
      resolve(normal ? 0 : 1);
    });
  });
}
