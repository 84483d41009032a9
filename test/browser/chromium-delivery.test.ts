/**
 * The browser client's sending in a real browser: headless Chromium (Debian's
 * /usr/bin/chromium via playwright-core) loads dist/browser/client.js as an ES module, and
 * its pages talk to a Channel server, the sender's page through test/fault-proxy.ts. A burst
 * of 100 publishes while connected, and publishes made during a black hole, arrive exactly
 * once, checked page to page (a second page receives). Skips with a printed reason when
 * Chromium is absent, unless REQUIRE_BROWSER=1 (CI sets it), where absence fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { Channel } from '../../src/index.js';
import { FaultProxy } from '../fault-proxy.js';
import { startServer } from '../helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DIST = fileURLToPath(new URL('../../dist/browser/', import.meta.url));
const available = existsSync(CHROMIUM);
if (!available) {
  if (process.env.REQUIRE_BROWSER === '1') throw new Error(`REQUIRE_BROWSER=1 but Chromium is not at ${CHROMIUM}`);
  console.log(
    `# skipping browser delivery tests: Chromium not found at ${CHROMIUM} (set REQUIRE_BROWSER=1 to make this a failure)`,
  );
}
const WAIT = 20_000;

/** The page: the client as a module, and helpers the tests call by name (source text: it runs in the page). */
const PAGE = `<!doctype html><meta charset="utf-8"><title>duet delivery</title>
<script type="module">
import { DuetClient } from '/client.js';
window.duetReady = true;
window.start = (url, options, topic) => {
  const client = new DuetClient(url, options);
  const state = { client, got: [], closes: [], errors: [], outcomes: [] };
  client.on('close', (c) => state.closes.push({ code: c.code, reason: c.reason }));
  client.on('error', (e) => state.errors.push(e.code ?? e.message));
  if (topic) client.subscribe(topic, (data, meta) => state.got.push({ seq: meta.seq, data }));
  window.duet = state;
};
window.publish = (values) => {
  for (const value of values) {
    const outcome = { value, result: null };
    window.duet.outcomes.push(outcome);
    window.duet.client.publish('chat', value).then(
      (seq) => (outcome.result = 'seq ' + seq),
      (err) => (outcome.result = err.code),
    );
  }
};
</script>`;

/** Serves the page and dist/browser's modules. */
async function serveFiles(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      return;
    }
    const file = /^\/[a-z-]+\.js$/.test(path) ? `${DIST}${path.slice(1)}` : '';
    if (file && existsSync(file)) res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file));
    else res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

interface PageState {
  got: { seq: number; data: unknown }[];
  closes: { code: number; reason: string }[];
  errors: string[];
  outcomes: { value: string; result: string | null }[];
  status: string;
  limits: boolean;
  subscribed: boolean;
}

const read = (page: Page): Promise<PageState> =>
  page.evaluate(`({
    got: window.duet.got,
    closes: window.duet.closes,
    errors: window.duet.errors,
    outcomes: window.duet.outcomes,
    status: window.duet.client.status,
    limits: window.duet.client.limits !== undefined,
    subscribed: window.duet.client.position('chat') !== undefined,
  })`);

/** Poll the page's state until `ok` holds (the state is read in Node, so the test asserts here). */
async function until(page: Page, ok: (s: PageState) => boolean, what: string): Promise<PageState> {
  const end = Date.now() + WAIT;
  for (;;) {
    const state = await read(page);
    if (ok(state)) return state;
    if (Date.now() > end)
      throw new Error(`timed out after ${WAIT} ms: ${what} (${JSON.stringify(state).slice(0, 400)})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Each value once at the receiver, in order, with the seq its ack named at the sender. */
function assertExactlyOnce(receiver: PageState, sender: PageState, values: string[]): void {
  assert.deepEqual(
    receiver.got.map((g) => g.data).filter((d) => values.includes(d as string)),
    values,
  );
  for (const outcome of sender.outcomes.filter((o) => values.includes(o.value))) {
    const delivered = receiver.got.find((g) => g.data === outcome.value);
    assert.equal(outcome.result, `seq ${delivered?.seq}`, outcome.value);
  }
}

describe(
  'the browser client sending from Chromium',
  { skip: available ? false : `Chromium not found at ${CHROMIUM}` },
  () => {
    let browser: Browser;
    let files: http.Server;
    const cleanup: (() => unknown)[] = [];

    before(async () => {
      assert.ok(existsSync(`${DIST}client.js`), 'dist/browser is not built; run npm run build');
      files = await serveFiles();
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      });
    });

    after(async () => {
      for (const step of cleanup.reverse()) await step();
      await browser?.close();
      files?.close();
    });

    /** A server, a proxy in front of it, and two pages: the sender behind the proxy, the receiver direct. */
    async function setup(senderOptions: Record<string, unknown>) {
      const server = await startServer();
      const channel = new Channel(server.wss, { topics: { chat: { history: { size: 1000 } } } });
      server.wss.on('connection', (ws) => channel.accept(ws));
      const proxy = await FaultProxy.start(server.port);
      const [sender, receiver] = await Promise.all([browser.newPage(), browser.newPage()]);
      cleanup.push(
        () => sender.close(),
        () => receiver.close(),
        () => proxy.close(),
        () => server.close(),
      );
      const problems: string[] = [];
      for (const page of [sender, receiver]) page.on('pageerror', (err) => problems.push(err.message));
      const base = `http://127.0.0.1:${(files.address() as { port: number }).port}/`;
      await Promise.all([sender.goto(base), receiver.goto(base)]);
      await Promise.all([sender.waitForFunction('window.duetReady'), receiver.waitForFunction('window.duetReady')]);
      await sender.evaluate(
        `window.start(${JSON.stringify(`ws://127.0.0.1:${proxy.port}/channel`)}, ${JSON.stringify(senderOptions)}, null)`,
      );
      await receiver.evaluate(`window.start(${JSON.stringify(`ws://127.0.0.1:${server.port}/channel`)}, {}, 'chat')`);
      await until(sender, (s) => s.limits, 'the sender connected');
      await until(receiver, (s) => s.subscribed, 'the receiver subscribed');
      return { proxy, sender, receiver, problems };
    }

    it('a burst of 100 publishes: every one acknowledged and received once on the other page; the sender stays open', async () => {
      const { proxy, sender, receiver, problems } = await setup({});
      const values = Array.from({ length: 100 }, (_, i) => `burst ${i}`);
      await sender.evaluate(`window.publish(${JSON.stringify(values)})`);
      const sent = await until(sender, (s) => s.outcomes.every((o) => o.result !== null), 'every ack');
      const got = await until(receiver, (s) => s.got.length >= 100, 'every message at the receiver');
      assertExactlyOnce(got, sent, values);
      assert.deepEqual(sent.closes, [], 'the sender never lost its connection');
      assert.deepEqual(sent.errors, [], 'nothing refused');
      assert.equal(sent.status, 'open');
      assert.equal(proxy.accepted, 1);
      assert.deepEqual(problems, []);
    });

    it('publishes made during a black hole: the heartbeat finds it, and after it every one arrives once', async () => {
      const fast = {
        minDelay: 50,
        maxDelay: 500,
        heartbeatInterval: 500,
        heartbeatTimeout: 1500,
        connectTimeout: 2000,
      };
      const { proxy, sender, receiver, problems } = await setup(fast);
      const values = Array.from({ length: 20 }, (_, i) => `hole ${i}`);
      await sender.evaluate(`window.publish(${JSON.stringify(values.slice(0, 5))})`);
      await until(sender, (s) => s.outcomes.every((o) => o.result !== null), 'the first five acknowledged');
      // Acks stop coming back (the publishes reach the server), also on new connections.
      proxy.blackhole('down', { newConnections: true });
      for (const value of values.slice(5)) {
        await sender.evaluate(`window.publish(${JSON.stringify([value])})`);
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
      const noticed = await until(sender, (s) => s.closes.length > 0, 'the hole noticed');
      assert.deepEqual(noticed.closes[0], { code: 1006, reason: 'heartbeat timeout' });
      assert.ok(
        noticed.outcomes.some((o) => o.result === null),
        'publishes wait for their acks',
      );
      proxy.heal();
      const sent = await until(sender, (s) => s.outcomes.every((o) => o.result !== null), 'every ack after the hole');
      const got = await until(receiver, (s) => s.got.length >= 20, 'every message at the receiver');
      await new Promise((resolve) => setTimeout(resolve, 100)); // a duplicate would arrive now
      assertExactlyOnce(await read(receiver), sent, values);
      assert.equal((await read(receiver)).got.length, 20, 'nothing twice');
      assert.equal(got.closes.length, 0);
      assert.deepEqual(problems, []);
    });
  },
);
