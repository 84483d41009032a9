/**
 * The `duet` command itself (cli/duet.ts), built, in a child process: `--version`, `help`,
 * `help COMMAND`, and what an unknown command or no command gets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { CLI } from './cli-process.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

async function duet(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, out, err };
}

test('duet --version and -v print the version of the package, alone on its line', async () => {
  for (const flag of ['--version', '-v']) {
    assert.deepEqual(await duet([flag]), { code: 0, out: `${VERSION}\n`, err: '' }, flag);
  }
});

test('duet help (and --help, -h) lists the commands and exits 0; bare duet does too, exiting 1', async () => {
  const help = await duet(['help']);
  assert.equal(help.code, 0);
  for (const command of ['serve', 'connect', 'exec', 'help']) assert.match(help.out, new RegExp(`^  ${command} `, 'm'));
  assert.match(help.out, /--version/);
  for (const flag of ['--help', '-h']) assert.deepEqual(await duet([flag]), help, flag);
  const bare = await duet([]);
  assert.equal(bare.code, 1);
  assert.equal(bare.out, help.out);
});

test('duet help COMMAND prints what COMMAND --help prints', async () => {
  for (const command of ['serve', 'connect', 'exec']) {
    const viaHelp = await duet(['help', command]);
    assert.equal(viaHelp.code, 0, command);
    assert.match(viaHelp.out, new RegExp(`^Usage: duet ${command} `), command);
    assert.deepEqual(await duet([command, '--help']), viaHelp, command);
  }
  // Each lists its new options.
  assert.match((await duet(['help', 'connect'])).out, /--wait SECONDS[\s\S]*--handshake-timeout MS/);
  assert.match((await duet(['help', 'exec'])).out, /--tls-cert FILE[\s\S]*--tls-key FILE/);
  assert.match((await duet(['help', 'serve'])).out, /--exit-with-parent/);
});

test('duet help with an unknown command, or more than one, and an unknown command: exit 1 saying what exists', async () => {
  for (const args of [
    ['help', 'nope'],
    ['help', 'toString'],
    ['help', 'serve', 'connect'],
  ]) {
    const run = await duet(args);
    assert.equal(run.code, 1, args.join(' '));
    assert.equal(run.out, '');
    assert.match(run.err, /^duet help: no command ".+"; the commands are serve, connect, exec\n$/, args.join(' '));
  }
  const unknown = await duet(['srve']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /^duet: unknown command "srve"\n\nUsage: duet <command>/);
});
