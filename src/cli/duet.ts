#!/usr/bin/env node
/**
 * The `duet` command: `duet serve`, `duet connect`, `duet exec`, `duet help [COMMAND]`,
 * `duet --version`.
 */
import { readFileSync } from 'node:fs';
import { CONNECT_HELP, runConnect } from './connect.js';
import { EXEC_HELP, runExec } from './exec.js';
import { SERVE_HELP, runServe } from './serve.js';

const USAGE = `Usage: duet <command> [options]

Commands:
  serve     Run a WebSocket server (/echo, /chat, /ticker, /channel) with the demo page at /
  connect   Connect to a WebSocket server: stdin lines out, received messages printed
  exec      Serve a program over WebSocket, one process per connection (like websocketd)
  help      Show this help, or a command's: duet help serve

Options:
  -v, --version   print duet's version
  -h, --help      show this help

Run "duet help <command>" (or "duet <command> --help") for the options of a command.`;

const HELPS: Readonly<Record<string, string>> = { serve: SERVE_HELP, connect: CONNECT_HELP, exec: EXEC_HELP };

/** The version in duet's package.json (two folders up from both src/cli and dist/cli). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return runServe(rest);
    case 'connect':
      return runConnect(rest);
    case 'exec':
      return runExec(rest);
    case '-v':
    case '--version':
      console.log(version());
      return 0;
    case 'help': {
      if (rest.length === 0) {
        console.log(USAGE);
        return 0;
      }
      const help = Object.hasOwn(HELPS, rest[0]) ? HELPS[rest[0]] : undefined;
      if (help === undefined || rest.length > 1) {
        console.error(`duet help: no command "${rest.join(' ')}"; the commands are ${Object.keys(HELPS).join(', ')}`);
        return 1;
      }
      console.log(help);
      return 0;
    }
    case undefined:
    case '-h':
    case '--help':
      console.log(USAGE);
      return command === undefined ? 1 : 0;
    default:
      console.error(`duet: unknown command "${command}"\n\n${USAGE}`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`duet: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
