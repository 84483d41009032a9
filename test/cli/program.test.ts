/**
 * cli/program.ts in process: the start-up check of `duet exec`'s program (checkProgram) and
 * the CGI-style environment. The pipes between a program and its connection (runProgram)
 * run end to end in exec.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type * as http from 'node:http';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { checkProgram, programEnvironment } from '../../src/cli/program.js';

describe('checkProgram', { skip: process.platform === 'win32' ? 'POSIX permissions' : false }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'duet-program-'));
    writeFileSync(join(dir, 'runs.sh'), '#!/bin/sh\necho hi\n');
    chmodSync(join(dir, 'runs.sh'), 0o755);
    writeFileSync(join(dir, 'plain.sh'), '#!/bin/sh\necho hi\n');
    chmodSync(join(dir, 'plain.sh'), 0o644);
    mkdirSync(join(dir, 'folder'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a path to an executable file, or a name found in PATH: runnable (undefined)', () => {
    assert.equal(checkProgram(join(dir, 'runs.sh')), undefined);
    assert.equal(checkProgram(process.execPath), undefined);
    assert.equal(checkProgram(basename(process.execPath), { PATH: dirname(process.execPath) }), undefined);
    // The first PATH entry that has it wins, as execvp looks.
    assert.equal(checkProgram('runs.sh', { PATH: ['/nonexistent-dir', dir].join(delimiter) }), undefined);
  });

  it('a path that does not exist, a folder, a file without the executable bit: each says so', () => {
    assert.equal(checkProgram(join(dir, 'nope')), `${join(dir, 'nope')}: no such file`);
    assert.equal(checkProgram(join(dir, 'folder')), `${join(dir, 'folder')}: is a directory, not a program`);
    const plain = join(dir, 'plain.sh');
    assert.equal(
      checkProgram(plain),
      `${plain}: not executable (chmod +x ${plain}, or name its interpreter: -- sh ${plain})`,
    );
  });

  it('a name not in PATH says so; one in PATH without the executable bit names the file', () => {
    assert.equal(
      checkProgram('duet-no-such-program', { PATH: dir }),
      'duet-no-such-program: not found in PATH (give its path, e.g. ./duet-no-such-program, or install it)',
    );
    assert.equal(checkProgram('x', {}), 'x: not found in PATH (give its path, e.g. ./x, or install it)');
    assert.equal(
      checkProgram('plain.sh', { PATH: dir }),
      `plain.sh: ${join(dir, 'plain.sh')} is not executable (chmod +x ${join(dir, 'plain.sh')})`,
    );
    // A folder of that name in PATH is skipped, not taken for the program.
    assert.match(checkProgram('folder', { PATH: dir })!, /not found in PATH/);
  });

  it('an empty name', () => {
    assert.equal(checkProgram(''), 'the program name is empty');
  });
});

describe('programEnvironment', () => {
  it('CGI variables from the request, headers as HTTP_*, never HTTP_PROXY; the base environment kept', () => {
    const req = {
      url: '/path/x?a=1&b=2',
      method: 'GET',
      httpVersion: '1.1',
      headers: { host: 'example.test:8080', 'x-custom': 'v', proxy: 'http://evil', 'bad name': 'x' },
      socket: { remoteAddress: '127.0.0.1', remotePort: 5555 },
    } as unknown as http.IncomingMessage;
    const env = programEnvironment(req, 8080, { KEEP: 'yes' });
    assert.equal(env.KEEP, 'yes');
    assert.equal(env.REMOTE_ADDR, '127.0.0.1');
    assert.equal(env.REMOTE_PORT, '5555');
    assert.equal(env.SERVER_NAME, 'example.test');
    assert.equal(env.SERVER_PORT, '8080');
    assert.equal(env.SCRIPT_NAME, '/path/x');
    assert.equal(env.QUERY_STRING, 'a=1&b=2');
    assert.equal(env.HTTP_X_CUSTOM, 'v');
    assert.equal(env.HTTP_PROXY, undefined);
    assert.equal(Object.keys(env).filter((k) => k.startsWith('HTTP_')).length, 2);
  });
});
