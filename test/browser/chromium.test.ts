/**
 * A real browser against duet: headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) opens `duet serve`'s test page (/test) and endpoints. Skips with a printed reason when
 * Chromium is absent, unless REQUIRE_BROWSER=1 (CI sets it), where absence fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CLI = fileURLToPath(new URL('../../dist/cli/duet.js', import.meta.url));
const available = existsSync(CHROMIUM);
if (!available) {
  if (process.env.REQUIRE_BROWSER === '1') throw new Error(`REQUIRE_BROWSER=1 but Chromium is not at ${CHROMIUM}`);
  console.log(
    `# skipping browser tests: Chromium not found at ${CHROMIUM} (set REQUIRE_BROWSER=1 to make this a failure)`,
  );
}

describe(
  'headless Chromium against duet serve',
  { skip: available ? false : `Chromium not found at ${CHROMIUM}` },
  () => {
    let server: ChildProcess;
    let base = '';
    let browser: Browser;
    let page: Page;

    before(async () => {
      server = spawn(process.execPath, [CLI, 'serve', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
      base = await new Promise<string>((resolve, reject) => {
        let out = '';
        server.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /LISTENING ws:\/\/(\S+)/.exec(out);
          if (m) resolve(m[1]);
        });
        server.once('exit', (code) => reject(new Error(`duet serve exited ${code}`)));
      });
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      page = await browser.newPage();
      await page.goto(`http://${base}/test`);
    });

    after(async () => {
      await browser?.close();
      if (server && server.exitCode === null) {
        server.kill('SIGTERM');
        await once(server, 'exit');
      }
    });

    // Browser-side code is passed as source text: it runs in the page, not through tsx.
    it('echo: text and binary round trips, and a clean close, in the browser', async () => {
      const result = await page.evaluate(`(async (url) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      const got = [];
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
      const next = () => new Promise((resolve) => (ws.onmessage = resolve));
      ws.send('héllo from chromium');
      got.push((await next()).data);
      ws.send(new Uint8Array([0, 1, 254, 255]));
      got.push(Array.from(new Uint8Array((await next()).data)));
      ws.send('x'.repeat(200000));
      got.push((await next()).data.length);
      const closed = new Promise((resolve) => (ws.onclose = resolve));
      ws.close(1000, 'done');
      const event = await closed;
      return { got, protocol: ws.protocol, extensions: ws.extensions, code: event.code, wasClean: event.wasClean };
    })(${JSON.stringify(`ws://${base}/echo`)})`);
      assert.deepEqual(result, {
        got: ['héllo from chromium', [0, 1, 254, 255], 200_000],
        protocol: '',
        extensions: '', // Chromium offers permessage-deflate; duet serve declines it without --deflate
        code: 1000,
        wasClean: true,
      });
    });

    it('the test page chats through /chat', async () => {
      await page.goto(`http://${base}/test`);
      await page.click('#connect');
      await page.waitForSelector('#text:not([disabled])');
      await page.fill('#text', 'typed in the page');
      await page.click('#send');
      await page.waitForFunction(
        `[...document.querySelectorAll('#log .in')].some((d) => d.textContent === '< typed in the page')`,
      );
    });

    it('the channel protocol from the browser: subscribe, publish, pong', async () => {
      const replies = await page.evaluate<Array<{ type: string }>>(`(async (url) => {
      const ws = new WebSocket(url);
      const got = [];
      await new Promise((resolve) => (ws.onopen = resolve));
      const done = new Promise((resolve) => {
        ws.onmessage = (e) => { got.push(JSON.parse(e.data)); if (got.length === 4) resolve(); };
      });
      ws.send(JSON.stringify({ type: 'subscribe', topic: 'chat' }));
      ws.send(JSON.stringify({ type: 'publish', topic: 'chat', data: 'from the browser' }));
      ws.send(JSON.stringify({ type: 'ping', id: 1 }));
      await done;
      ws.close();
      return got;
    })(${JSON.stringify(`ws://${base}/channel`)})`);
      assert.deepEqual(
        replies.map((m) => m.type),
        ['limits', 'subscribed', 'message', 'pong'],
      );
      assert.equal((replies[2] as unknown as { data: string }).data, 'from the browser');
    });

    it("permessage-deflate with Chromium's own implementation (duet serve --deflate): large and small, text and binary", async () => {
      const deflating = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--deflate'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      try {
        const at = await new Promise<string>((resolve, reject) => {
          let out = '';
          deflating.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            const m = /LISTENING ws:\/\/(\S+)/.exec(out);
            if (m) resolve(m[1]);
          });
          deflating.once('exit', (code) => reject(new Error(`duet serve --deflate exited ${code}`)));
        });
        const result = await page.evaluate(`(async (url) => {
        const ws = new WebSocket(url);
        ws.binaryType = 'arraybuffer';
        await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
        const next = () => new Promise((resolve) => (ws.onmessage = (e) => resolve(e.data)));
        const ok = [];
        // Repetitive JSON several times: Chromium keeps its compression context between messages.
        for (let i = 0; i < 5; i++) {
          const text = JSON.stringify({ i, rows: Array.from({ length: 300 }, (_, k) => ({ k, name: 'row ' + k })) });
          ws.send(text);
          ok.push((await next()) === text);
        }
        const bin = new Uint8Array(100000);
        for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) & 255;
        ws.send(bin);
        const back = new Uint8Array(await next());
        ok.push(back.length === bin.length && back.every((v, i) => v === bin[i]));
        ws.send('small');
        ok.push((await next()) === 'small');
        const closed = new Promise((resolve) => (ws.onclose = resolve));
        ws.close(1000);
        const event = await closed;
        return { extensions: ws.extensions, ok, code: event.code, wasClean: event.wasClean };
      })(${JSON.stringify(`ws://${at}/echo`)})`);
        assert.deepEqual(result, {
          extensions: 'permessage-deflate',
          ok: [true, true, true, true, true, true, true],
          code: 1000,
          wasClean: true,
        });
      } finally {
        deflating.kill('SIGTERM');
        await once(deflating, 'exit');
      }
    });

    it('SIGTERM: the browser sees 1001', async () => {
      const code = page.evaluate<number>(`new Promise((resolve) => {
      const ws = new WebSocket(${JSON.stringify(`ws://${base}/echo`)});
      ws.onopen = () => { window.ready = true; };
      ws.onclose = (e) => resolve(e.code);
    })`);
      await page.waitForFunction('window.ready === true');
      server.kill('SIGTERM');
      assert.equal(await code, 1001);
      const [exitCode] = (await once(server, 'exit')) as [number | null];
      assert.equal(exitCode, 0);
    });
  },
);
