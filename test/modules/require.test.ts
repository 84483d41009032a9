/**
 * duet from CommonJS: `require('duet')` and the other entry points, on the built package
 * (npm run build first), from a CommonJS package of its own (a temporary directory, no "type":
 * "module", node_modules/duet linking to this repository as an install would). One
 * implementation: Node loads the ES modules with require() (Node 20.19+, 22.12+), so a class
 * reached through require() is the one reached through import.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);
const T = { timeout: 60_000 };
let project: string;

/** Run `source` as main.js of the CommonJS project; returns its stdout parsed as JSON, and its stderr. */
async function runCommonJs(source: string): Promise<{ result: Record<string, unknown>; stderr: string }> {
  writeFileSync(join(project, 'main.js'), source);
  // A plain `node main.js`, as a user runs it: no NODE_OPTIONS from the test runner, and no
  // coverage (dist/browser/*.js loaded here would add their branches to src/browser/'s count
  // next to those of the tests that run src/browser itself). Empty, not absent: Node copies
  // its own NODE_V8_COVERAGE into a child's environment that lacks the variable.
  const { stdout, stderr } = await run(process.execPath, [join(project, 'main.js')], {
    cwd: project,
    timeout: 30_000,
    env: { ...process.env, NODE_OPTIONS: '', NODE_V8_COVERAGE: '' },
  });
  return { result: JSON.parse(stdout) as Record<string, unknown>, stderr };
}

describe("require('duet')", () => {
  before(() => {
    assert.ok(existsSync(join(root, 'dist', 'index.js')), 'dist/ is missing: run npm run build first');
    project = mkdtempSync(join(tmpdir(), 'duet-require-'));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'cjs-app', private: true }));
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(root, join(project, 'node_modules', 'duet'), 'dir');
  });
  after(() => rmSync(project, { recursive: true, force: true }));

  it("is the WebSocket class with ws's statics and every named export, the same objects as import's", T, async () => {
    const { result, stderr } = await runCommonJs(`
      const WebSocket = require('duet');
      const { WebSocketServer, Hub, DuetError, CloseCode } = require('duet');
      import('duet').then((esm) => {
        const named = Object.keys(esm).filter((k) => k !== 'default' && k !== 'module.exports');
        console.log(JSON.stringify({
          type: typeof WebSocket,
          name: WebSocket.name,
          isDefault: WebSocket === esm.default,
          isNamed: WebSocket === esm.WebSocket,
          server: WebSocket.Server === esm.WebSocketServer && WebSocketServer === esm.WebSocketServer,
          webSocketServer: WebSocket.WebSocketServer === esm.WebSocketServer,
          self: WebSocket.WebSocket === WebSocket,
          states: [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED],
          others: Hub === esm.Hub && DuetError === esm.DuetError && CloseCode === esm.CloseCode,
          missing: named.filter((k) => WebSocket[k] !== esm[k]),
        }));
      });
    `);
    assert.deepEqual(result, {
      type: 'function',
      name: 'WebSocket',
      isDefault: true,
      isNamed: true,
      server: true,
      webSocketServer: true,
      self: true,
      states: [0, 1, 2, 3],
      others: true,
      missing: [],
    });
    // No "ExperimentalWarning: ... loading ES Module ... using require()" or anything else.
    assert.equal(stderr, '');
  });

  it(
    'duet/client, duet/protocol, duet/redis and duet/vue give their exports, the same objects as import',
    T,
    async () => {
      const { result, stderr } = await runCommonJs(`
      const entries = ['duet/client', 'duet/protocol', 'duet/redis', 'duet/vue'];
      Promise.all(entries.map((e) => import(e))).then((esm) => {
        const out = {};
        entries.forEach((e, i) => {
          const cjs = require(e);
          const names = Object.keys(esm[i]);
          out[e] = { count: names.length, different: names.filter((k) => cjs[k] !== esm[i][k]) };
        });
        out.picked = [
          typeof require('duet/client').DuetClient,
          typeof require('duet/protocol').FrameParser,
          typeof require('duet/redis').RedisBroker,
          typeof require('duet/vue').useDuet,
        ];
        out.version = require('duet/package.json').name;
        console.log(JSON.stringify(out));
      });
    `);
      for (const entry of ['duet/client', 'duet/protocol', 'duet/redis', 'duet/vue']) {
        const found = result[entry] as { count: number; different: string[] };
        assert.ok(found.count > 0, entry);
        assert.deepEqual(found.different, [], entry);
      }
      assert.deepEqual(result.picked, ['function', 'function', 'function', 'function']);
      assert.equal(result.version, 'duet');
      assert.equal(stderr, '');
    },
  );

  it('serves and connects from CommonJS, with the interop helpers compilers emit for import syntax', T, async () => {
    // What TypeScript (esModuleInterop) and Babel emit for `import WebSocket from 'duet'` and
    // `import * as duet from 'duet'` in a CommonJS file.
    const { result } = await runCommonJs(`
      const mod = require('duet');
      const importDefault = (m) => (m && m.__esModule ? m : { default: m });
      const importStar = (m) => {
        const ns = { default: m };
        for (const k of Object.getOwnPropertyNames(m)) if (k !== 'default') ns[k] = m[k];
        return ns;
      };
      const WebSocket = importDefault(mod).default;
      const duet = importStar(mod);
      const wss = new WebSocket.Server({ port: 0, host: '127.0.0.1' }, () => {
        const client = new duet.WebSocket('ws://127.0.0.1:' + wss.address().port);
        client.on('open', () => client.send('from CommonJS'));
        client.on('message', (data, isBinary) => {
          const tracked = wss.clients.size;
          client.close();
          wss.close(() => console.log(JSON.stringify({ echoed: data.toString(), isBinary, tracked })));
        });
      });
      wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    `);
    assert.deepEqual(result, { echoed: 'from CommonJS', isBinary: false, tracked: 1 });
  });
});
