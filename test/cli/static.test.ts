/**
 * The static file handler behind `duet serve`'s demo: types, HEAD, caching, 404s, and no
 * way out of the root (raw request paths, so nothing normalizes them on the way).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentTypeOf, createStaticHandler, demoHandler, sendText, withDemoHint } from '../../src/cli/static.js';
import { TEST_PAGE } from '../../src/cli/test-page.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('createStaticHandler', () => {
  let dir = '';
  let server: http.Server;
  let port = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'duet-static-'));
    const root = join(dir, 'root');
    mkdirSync(join(root, 'assets'), { recursive: true });
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'index.html'), '<!doctype html><p>home</p>');
    writeFileSync(join(root, 'assets', 'app-Ab12.js'), 'console.log(1)');
    writeFileSync(join(root, 'assets', 'app-Ab12.css'), 'p{}');
    writeFileSync(join(root, 'sub', 'index.html'), '<p>sub</p>');
    writeFileSync(join(root, 'logo.svg'), '<svg/>');
    writeFileSync(join(root, 'data.bin'), 'xyz');
    writeFileSync(join(root, '.env'), 'SECRET=1');
    writeFileSync(join(dir, 'secret.txt'), 'outside the root');
    symlinkSync(join(dir, 'secret.txt'), join(root, 'link.txt'));
    const handler = createStaticHandler(root, { immutablePrefixes: ['/assets/'] });
    server = http.createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  function request(path: string, method = 'GET', headers: http.OutgoingHttpHeaders = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.setTimeout(5000, () => req.destroy(new Error(`no answer for ${path}`)));
      req.on('error', reject);
      req.end();
    });
  }

  it('serves index.html for / and for a directory, as HTML', async () => {
    const home = await request('/');
    assert.equal(home.status, 200);
    assert.equal(home.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(home.body, '<!doctype html><p>home</p>');
    assert.equal(home.headers['cache-control'], 'no-cache');
    assert.equal((await request('/sub/')).body, '<p>sub</p>');
    assert.equal((await request('/index.html?v=1')).body, '<!doctype html><p>home</p>');
  });

  it('sends the right content types and long caching only for hashed assets', async () => {
    const js = await request('/assets/app-Ab12.js');
    assert.equal(js.status, 200);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(js.headers['x-content-type-options'], 'nosniff');
    assert.equal((await request('/assets/app-Ab12.css')).headers['content-type'], 'text/css; charset=utf-8');
    assert.equal((await request('/logo.svg')).headers['content-type'], 'image/svg+xml');
    assert.equal((await request('/data.bin')).headers['content-type'], 'application/octet-stream');
    assert.equal(contentTypeOf('X.PNG'), 'image/png');
  });

  it('HEAD: the same headers with no body', async () => {
    const get = await request('/assets/app-Ab12.js');
    const head = await request('/assets/app-Ab12.js', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], String('console.log(1)'.length));
    assert.equal(head.headers['content-type'], get.headers['content-type']);
    assert.equal(head.headers.etag, get.headers.etag);
    assert.equal((await request('/missing', 'HEAD')).status, 404);
  });

  it('revalidation with the ETag answers 304 without a body', async () => {
    const first = await request('/');
    const again = await request('/', 'GET', { 'If-None-Match': first.headers.etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    assert.equal((await request('/', 'GET', { 'If-None-Match': '"other"' })).status, 200);
  });

  it('every answer says nosniff and how to cache: files, 304, and the 404/405/400 errors', async () => {
    const replies = [
      await request('/'),
      await request('/logo.svg'),
      await request('/', 'GET', { 'If-None-Match': (await request('/')).headers.etag }),
      await request('/nope.js'),
      await request('/', 'POST'),
      await request('/%E0%A4%A'),
      await request('/nope.js', 'HEAD'),
    ];
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 304, 404, 405, 400, 404],
    );
    for (const reply of replies) {
      assert.equal(reply.headers['x-content-type-options'], 'nosniff', String(reply.status));
      assert.equal(reply.headers['cache-control'], 'no-cache', String(reply.status));
    }
  });

  it('missing files get 404, other methods 405, broken escapes 400', async () => {
    assert.equal((await request('/nope.js')).status, 404);
    assert.equal((await request('/assets/')).status, 404); // a directory without index.html
    const post = await request('/', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal((await request('/%E0%A4%A')).status, 400);
  });

  it('nothing outside the root, nor dot files, in any spelling', async () => {
    const attempts = [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E%2Fsecret.txt',
      '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/..%5csecret.txt',
      '/assets\\..\\..\\secret.txt',
      '/%00/index.html',
      '/index.html%00.js',
      '//etc/passwd',
      '/link.txt', // a symbolic link pointing outside
      '/.env',
      '/%2eenv',
      '/sub/./../.env',
      `/${'../'.repeat(12)}etc/passwd`,
    ];
    for (const path of attempts) {
      const reply = await request(path);
      assert.ok(
        reply.status === 404 || reply.status === 403 || reply.status === 400,
        `${path} answered ${reply.status}`,
      );
      assert.doesNotMatch(reply.body, /outside the root|SECRET|root:/, path);
    }
  });
});

describe('the demo handler', () => {
  it('is null when the demo is not built, and the fallback page says how to build it', () => {
    assert.equal(demoHandler(join(tmpdir(), 'duet-no-such-demo-dir')), null);
    const page = withDemoHint('<html><body>\n<h1>x</h1></body></html>');
    assert.match(page, /<body>\n<p [^>]*>The Vue demo is not built.*npm run build:demo/);
    assert.match(page, /<h1>x<\/h1>/);
  });
});

describe('sendText (the /test page and the answers duet serve makes in memory)', () => {
  it('sends nosniff, Cache-Control: no-cache, the type and length; HEAD the same headers without the body', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/test') sendText(res, 200, TEST_PAGE, 'text/html; charset=utf-8');
      else sendText(res, 404, 'Not found\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const request = (path: string, method: string): Promise<Reply> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        req.setTimeout(5000, () => req.destroy(new Error(`no answer for ${path}`)));
        req.on('error', reject);
        req.end();
      });
    try {
      const page = await request('/test', 'GET');
      assert.equal(page.status, 200);
      assert.equal(page.body, TEST_PAGE);
      assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(page.headers['content-length'], String(Buffer.byteLength(TEST_PAGE)));
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      assert.equal(page.headers['cache-control'], 'no-cache');
      const head = await request('/test', 'HEAD');
      assert.equal(head.body, '');
      assert.deepEqual(
        [
          head.headers['content-type'],
          head.headers['content-length'],
          head.headers['x-content-type-options'],
          head.headers['cache-control'],
        ],
        [page.headers['content-type'], page.headers['content-length'], 'nosniff', 'no-cache'],
      );
      const missing = await request('/other', 'GET');
      assert.equal(missing.status, 404);
      assert.equal(missing.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(missing.headers['x-content-type-options'], 'nosniff');
      assert.equal(missing.headers['cache-control'], 'no-cache');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
