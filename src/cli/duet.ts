#!/usr/bin/env node
/**
 * The `duet` command: `duet serve`, `duet connect`, `duet exec`.
 */
import { runConnect } from './connect.js';
import { runExec } from './exec.js';
import { runServe } from './serve.js';

const USAGE = `Usage: duet <command> [options]

Commands:
  serve     Run a WebSocket server (/echo, /chat, /ticker, /channel) with the demo page at /
  connect   Connect to a WebSocket server: stdin lines out, received messages printed
  exec      Serve a program over WebSocket, one process per connection (like websocketd)

Run "duet <command> --help" for the options of a command.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return runServe(rest);
    case 'connect':
      return runConnect(rest);
    case 'exec':
      return runExec(rest);
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
