/**
 * The Vue demo in headless Chromium across two `duet serve --redis` processes: page A talks to
 * one process, page B to the other, and they still see each other online and chat in one
 * order, because topics live in Redis. Skips with a printed reason without Chromium or Redis,
 * unless REQUIRE_BROWSER=1 / REQUIRE_REDIS=1 (CI sets both). Screenshots go to test-results/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { startDuet, type Listening } from '../cli/cli-process.js';
import { REDIS_URL, adminClient, deleteKeys, skipWithoutRedis, testPrefix } from '../redis/redis-helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));
const WAIT = 15_000;
const QUERY = 'minDelay=100&maxDelay=400&heartbeat=1000&heartbeatTimeout=3000';

let skip: string | false;
if (!existsSync(CHROMIUM)) {
  if (process.env.REQUIRE_BROWSER === '1') throw new Error(`REQUIRE_BROWSER=1 but Chromium is not at ${CHROMIUM}`);
  skip = `Chromium not found at ${CHROMIUM}`;
  console.log(`# skipping the scaled demo test: ${skip}`);
} else {
  skip = await skipWithoutRedis();
}

interface PageElement {
  textContent: string | null;
}

describe('the Vue demo on two processes sharing Redis', { skip }, () => {
  const prefix = testPrefix('demo');
  let servers: Listening[] = [];
  let browser: Browser;
  let a: Page;
  let b: Page;
  const problems: string[] = [];

  before(async () => {
    mkdirSync(RESULTS, { recursive: true });
    servers = await Promise.all(
      [0, 1].map(() => startDuet(['serve', '--port', '0', '--redis', REDIS_URL, '--redis-prefix', prefix])),
    );
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    [a, b] = await Promise.all([browser.newPage(), browser.newPage()]);
    for (const [page, name] of [
      [a, 'A'],
      [b, 'B'],
    ] as const) {
      page.on('pageerror', (err) => problems.push(`${name} page error: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(`${name} console error: ${msg.text()}`);
      });
    }
    const http = (s: Listening): string => s.url.replace(/^ws/, 'http');
    await a.goto(`${http(servers[0])}/?nick=ada&${QUERY}`);
    await b.goto(`${http(servers[1])}/?nick=grace&${QUERY}`);
  });

  after(async () => {
    await browser?.close();
    await Promise.all(servers.map((s) => s.stop()));
    const admin = adminClient();
    await deleteKeys(admin, prefix);
    admin.disconnect();
  });

  it('pages on different processes see each other online and chat in one order', async () => {
    assert.notEqual(servers[0].url, servers[1].url, 'two processes');
    for (const page of [a, b]) {
      await page.waitForFunction(`document.querySelector('[data-testid=online-count]')?.textContent === '2'`, null, {
        timeout: WAIT,
      });
    }
    for (const [page, text] of [
      [a, 'hello from process one'],
      [b, 'and from process two'],
      [a, 'one order for both'],
    ] as const) {
      await page.fill('[data-testid=chat-input]', text);
      await page.click('[data-testid=chat-send]');
      // On both pages before the next is sent, so the expected order is the sending order.
      for (const reader of [a, b]) {
        await reader.waitForFunction(
          `[...document.querySelectorAll('[data-testid=chat-text]')].some((e) => e.textContent === ${JSON.stringify(text)})`,
          null,
          { timeout: WAIT },
        );
      }
    }
    const texts = (page: Page): Promise<string[]> =>
      page.$$eval('[data-testid=chat-text]', (els: PageElement[]) => els.map((e) => e.textContent ?? ''));
    const [ta, tb] = await Promise.all([texts(a), texts(b)]);
    assert.deepEqual(ta, tb);
    assert.deepEqual(ta.slice(-3), ['hello from process one', 'and from process two', 'one order for both']);
    await a.screenshot({ path: `${RESULTS}demo-scaled-a.png` });
    await b.screenshot({ path: `${RESULTS}demo-scaled-b.png` });
    assert.deepEqual(problems, []);
  });

  it("a process that dies: its page drops out of the other's who-is-online once its entry expires", async () => {
    const online = (page: Page): Promise<string | null> =>
      page.$eval('[data-testid=online-count]', (e: PageElement) => e.textContent);
    assert.equal(await online(a), '2', 'both online before');
    // SIGKILL: nobody is left to say `leave` for page B, whose reconnects to its dead process
    // fail; page A must stop counting it once 16 s pass without an announcement (pruned every
    // 5 s: gone 11 to 21 s after the kill; not within 5 s, which a leave would be).
    const killedAt = Date.now();
    await servers[1].stop();
    await a.waitForFunction(`document.querySelector('[data-testid=online-count]')?.textContent === '1'`, null, {
      timeout: 45_000,
    });
    const after = Date.now() - killedAt;
    // Not at once (no leave was said): only through the expiry.
    assert.ok(after >= 5_000, `page B dropped out after ${after} ms, before its entry could expire`);
    assert.equal(
      await a.$eval('[data-testid=status]', (e: PageElement) => e.textContent),
      'Connected',
      'page A unaffected',
    );
  });
});
