/**
 * npm `overrides` switching a library that requires ws internally to duet: express-ws, whose
 * code does `require('ws')` and `new ws.Server({ server })`, installed in a project whose
 * package.json says `"overrides": { "ws": <duet> }`, as a user would switch it.
 *
 * The project is made in a temporary directory: an `npm pack` of this repository (dist/ as
 * `npm test` built it) is the duet it installs; package.json asks for express and express-ws
 * (the versions of this repository's devDependencies) with `"overrides": { "ws":
 * "file:<the tarball>" }`; its package-lock.json is cut from this repository's (express,
 * express-ws and their dependencies, less ws), so `npm install --offline` takes every package
 * from the npm cache that `npm ci` filled and resolves ws through the override, without the
 * network. Then an Express application runs there and an independent client (ws) talks to it.
 *
 * Why not an override in duet's own package.json: a root one (`"ws": ...`) would also replace
 * the ws that the benchmarks and interop tests compare against, and a nested one
 * (`"express-ws": { "ws": "file:." }`) is resolved by npm 11 from express-ws's folder, not the
 * project's (a relative `file:` path in an override links the wrong directory), so it would
 * not install duet. A tarball at an absolute path, as here, is what a user can use too.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import WsClient from 'ws';
import { HOST } from '../helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);
const T = { timeout: 120_000 };

interface LockEntry {
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [field: string]: unknown;
}
interface Lockfile {
  packages: Record<string, LockEntry>;
}

/**
 * The entries of `lock` that `names` need, at the same paths (a valid tree: each dependency is
 * found where Node would look for it), without the packages named in `leaveOut`.
 */
function lockSubset(lock: Lockfile, names: string[], leaveOut: string): Record<string, LockEntry> {
  const { packages } = lock;
  const find = (from: string, name: string): string | undefined => {
    for (let dir = from; ;) {
      const path = `${dir === '' ? '' : `${dir}/`}node_modules/${name}`;
      if (packages[path]) return path;
      if (dir === '') return undefined;
      const parent = dir.lastIndexOf('/node_modules/');
      dir = parent < 0 ? '' : dir.slice(0, parent);
    }
  };
  const kept: Record<string, LockEntry> = {};
  const queue = names.map((name) => find('', name));
  while (queue.length > 0) {
    const path = queue.pop();
    if (path === undefined || kept[path] || path.endsWith(`node_modules/${leaveOut}`)) continue;
    // Drop this repository's dev flags: in the fixture they are plain dependencies.
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = packages[path];
    kept[path] = entry;
    for (const dep of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) {
      queue.push(find(path, dep));
    }
  }
  return kept;
}

/**
 * npm, as `npm test` runs it (npm_execpath) or from PATH, with the environment of a user's
 * shell: no coverage of npm itself, none of the npm_* variables of the outer `npm test` but the
 * cache and config locations.
 */
async function npm(args: string[], cwd: string): Promise<string> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && !/^npm_config_(cache|userconfig|globalconfig)$/i.test(key)) continue;
    env[key] = value;
  }
  // Empty, not absent: Node copies its own NODE_V8_COVERAGE into a child's environment that lacks it.
  env.NODE_V8_COVERAGE = '';
  env.NODE_OPTIONS = '';
  const execPath = process.env.npm_execpath;
  const [file, argv] =
    execPath !== undefined && execPath.endsWith('.js') ? [process.execPath, [execPath, ...args]] : ['npm', args];
  const { stdout } = await run(file, argv, { cwd, env, timeout: 100_000, maxBuffer: 16 << 20 });
  return stdout;
}

/** The Express application, run in the fixture project as plain CommonJS. */
const APP = `
const express = require('express');
const app = express();
const expressWs = require('express-ws')(app);
app.use((req, res, next) => {
  req.user = req.headers['x-user'] || 'anonymous'; // Express middleware runs for WebSocket routes too
  next();
});
app.get('/', (req, res) => res.send('plain HTTP'));
app.ws('/echo', (ws, req) => {
  ws.send(JSON.stringify({ user: req.user, room: req.query.room }));
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
const server = app.listen(0, '127.0.0.1', () => {
  const WebSocket = require('ws');
  const wss = expressWs.getWss();
  console.log(JSON.stringify({
    port: server.address().port,
    ws: require('ws/package.json').name,
    duetServer: wss instanceof WebSocket.WebSocketServer && WebSocket.Server === WebSocket.WebSocketServer,
  }));
});
process.on('SIGTERM', () => {
  for (const client of expressWs.getWss().clients) client.terminate();
  server.close(() => process.exit(0));
});
`;

describe("npm overrides: express-ws's require('ws') gets duet", () => {
  let project: string;
  let app: ChildProcess | undefined;
  let info: { port: number; ws: string; duetServer: boolean };

  before(async () => {
    assert.ok(existsSync(join(root, 'dist', 'index.js')), 'dist/ is missing: run npm run build first');
    project = mkdtempSync(join(tmpdir(), 'duet-overrides-'));
    const packed = (await npm(['pack', '--ignore-scripts', '--pack-destination', project, root], root)).trim();
    const tarball = join(project, packed.split('\n').at(-1)!);
    assert.ok(existsSync(tarball), `npm pack wrote no ${tarball}`);

    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lockfile;
    const version = (name: string): string => lock.packages[`node_modules/${name}`].version;
    const dependencies = { express: version('express'), 'express-ws': version('express-ws') };
    const manifest = { name: 'express-app', private: true, dependencies, overrides: { ws: `file:${tarball}` } };
    writeFileSync(join(project, 'package.json'), JSON.stringify(manifest, null, 2));
    const packages = {
      '': { name: 'express-app', dependencies },
      ...lockSubset(lock, Object.keys(dependencies), 'ws'),
    };
    writeFileSync(
      join(project, 'package-lock.json'),
      JSON.stringify({ name: 'express-app', lockfileVersion: 3, requires: true, packages }, null, 2),
    );
    try {
      await npm(['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], project);
    } catch (err) {
      const { stderr } = err as { stderr?: string };
      assert.fail(`npm install --offline failed (is the npm cache filled? npm ci fills it):\n${stderr ?? String(err)}`);
    }

    writeFileSync(join(project, 'app.js'), APP);
    // No coverage: the duet it runs is the packed copy in the project, not this repository's
    // files. Empty, not absent: Node copies its own NODE_V8_COVERAGE into a child's
    // environment that lacks the variable.
    app = spawn(process.execPath, ['app.js'], {
      cwd: project,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '', NODE_V8_COVERAGE: '' },
    });
    let stderr = '';
    app.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the app printed nothing; stderr: ${stderr}`)), 30_000);
      app!.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(out.split('\n')[0]);
        }
      });
      app!.once('exit', (code) => reject(new Error(`the app exited with ${code}; stderr: ${stderr}`)));
    });
    info = JSON.parse(line) as typeof info;
  });

  after(async () => {
    if (app && app.exitCode === null) {
      const exited = once(app, 'exit');
      app.kill('SIGTERM');
      await exited;
    }
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('npm installed duet where express-ws requires ws', T, () => {
    const fromExpressWs = createRequire(join(project, 'node_modules', 'express-ws', 'lib', 'index.js'));
    const manifest = JSON.parse(readFileSync(fromExpressWs.resolve('ws/package.json'), 'utf8')) as { name: string };
    assert.equal(manifest.name, 'duet');
    assert.equal(info.ws, 'duet');
    assert.equal(info.duetServer, true, "express-ws's server is duet's WebSocketServer");
  });

  it('an Express application with express-ws serves WebSocket routes on duet, with its middleware', T, async () => {
    const client = new WsClient(`ws://${HOST}:${info.port}/echo?room=lobby`, { headers: { 'X-User': 'ada' } });
    const messages: Array<[string, boolean]> = [];
    client.on('message', (data: Buffer, isBinary: boolean) => messages.push([data.toString('hex'), isBinary]));
    await once(client, 'open');
    const got = async (count: number): Promise<void> => {
      for (let i = 0; i < 1000 && messages.length < count; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(messages.length, count, `${count} messages`);
    };
    await got(1);
    assert.deepEqual(JSON.parse(Buffer.from(messages[0][0], 'hex').toString()), { user: 'ada', room: 'lobby' });
    client.send('hello');
    client.send(Buffer.from([0, 1, 2, 255]));
    await got(3);
    assert.deepEqual(messages.slice(1), [
      [Buffer.from('hello').toString('hex'), false],
      ['000102ff', true],
    ]);
    client.close(1000);
    const [code] = (await once(client, 'close')) as [number];
    assert.equal(code, 1000);
  });

  it('plain HTTP routes still answer, and a WebSocket to no route is closed', T, async () => {
    const response = await fetch(`http://${HOST}:${info.port}/`);
    assert.equal(await response.text(), 'plain HTTP');
    const stray = new WsClient(`ws://${HOST}:${info.port}/nowhere`);
    const [code] = (await once(stray, 'close')) as [number];
    // express-ws accepts the upgrade, finds no route and closes the connection.
    assert.equal(code, 1005);
  });
});
