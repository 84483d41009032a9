/**
 * Static files for `duet serve` (the demo's built files): GET and HEAD, content types,
 * ETag revalidation, long caching for content-hashed assets, and nothing outside the root.
 */
import { createReadStream, existsSync, realpathSync, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};

/** The Content-Type for a file name; unknown extensions are sent as opaque bytes. */
export function contentTypeOf(file: string): string {
  return TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Options of {@link createStaticHandler}. */
export interface StaticOptions {
  /**
   * URL path prefixes (such as `/assets/`) whose files have a content hash in their names,
   * so they never change under the same URL and can be cached for a year. Everything else is
   * revalidated on every use (`no-cache` with an ETag).
   */
  immutablePrefixes?: readonly string[];
}

/** Serves one request from the root directory; always answers it. */
export type StaticHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * A handler serving the files under `root`. Directories are served through their
 * `index.html`. Dot files, `..` segments, NUL bytes, backslashes and symbolic links that lead
 * outside `root` all get the same 404 as a missing file, so the answer reveals nothing about
 * what exists outside. Methods other than GET and HEAD get 405.
 */
export function createStaticHandler(root: string, options: StaticOptions = {}): StaticHandler {
  // Resolved once: every file's real path must stay below this one.
  const realRoot = realpathSync(root);
  const immutable = options.immutablePrefixes ?? [];

  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method not allowed\n', undefined, { Allow: 'GET, HEAD' });
      return;
    }
    const urlPath = (req.url ?? '/').split(/[?#]/, 1)[0];
    let path: string;
    try {
      path = decodeURIComponent(urlPath);
    } catch {
      sendText(res, 400, 'Bad request\n');
      return;
    }
    const file = await resolveFile(realRoot, path);
    if (file === null) {
      sendText(res, 404, 'Not found\n');
      return;
    }
    const { real, stats } = file;
    const etag = `"${stats.size.toString(36)}-${Math.floor(stats.mtimeMs).toString(36)}"`;
    const headers: Record<string, string | number> = {
      'Content-Type': contentTypeOf(real),
      'Content-Length': stats.size,
      ETag: etag,
      'Last-Modified': stats.mtime.toUTCString(),
      'Cache-Control': immutable.some((p) => path.startsWith(p)) ? 'public, max-age=31536000, immutable' : 'no-cache',
      'X-Content-Type-Options': 'nosniff',
    };
    if (req.headers['if-none-match'] === etag) {
      delete headers['Content-Length'];
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(real);
    // The headers are out already, so a read error can only cut the response short.
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  };
}

/** The real path and stats of the regular file `urlPath` names below `realRoot`, or null. */
async function resolveFile(realRoot: string, urlPath: string): Promise<{ real: string; stats: Stats } | null> {
  if (!urlPath.startsWith('/') || urlPath.includes('\0') || urlPath.includes('\\')) return null;
  const segments = urlPath.split('/').filter((s) => s !== '');
  // No "..", and no dot files (".env", ".git"): a build output has none worth serving.
  if (segments.some((s) => s.startsWith('.'))) return null;
  let candidate = join(realRoot, ...segments);
  try {
    let stats = await stat(candidate);
    if (stats.isDirectory()) {
      candidate = join(candidate, 'index.html');
      stats = await stat(candidate);
    }
    if (!stats.isFile()) return null;
    const real = await realpath(candidate);
    if (!real.startsWith(realRoot + sep)) return null;
    return { real, stats };
  } catch {
    return null;
  }
}

/**
 * Answer with a body made in memory (`duet serve`'s /test page, its 404 and 426 answers, this
 * handler's errors): `nosniff`, so a browser never runs it as another type than `contentType`
 * says, and `Cache-Control: no-cache`, so a newer duet's page is never hidden behind a cached
 * one. HEAD gets the headers only.
 */
export function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  contentType = 'text/plain; charset=utf-8',
  extra: Readonly<Record<string, string>> = {},
): void {
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Where `npm run build:demo` puts the demo: dist/demo, from both src/cli and dist/cli. */
export const DEMO_DIR = fileURLToPath(new URL('../../dist/demo/', import.meta.url));

/**
 * The handler for the built demo, or null when it is not built (a checkout where only
 * `npm run build` ran): `duet serve` then shows its test page at `/` instead.
 */
export function demoHandler(dir: string = DEMO_DIR): StaticHandler | null {
  if (!existsSync(join(dir, 'index.html'))) return null;
  // Vite names everything under assets/ by content hash.
  return createStaticHandler(dir, { immutablePrefixes: ['/assets/'] });
}

/** `page` (an HTML document) with a note at the top of its body saying how to build the demo. */
export function withDemoHint(page: string): string {
  const hint =
    '<p style="background:#fff5d6;border:1px solid #e6c200;border-radius:6px;padding:.5rem .75rem">' +
    'The Vue demo is not built, so this is the plain test page. Run <code>npm run build:demo</code> ' +
    '(or <code>npm install</code>) and restart <code>duet serve</code> to see it.</p>';
  return page.replace('<body>', `<body>\n${hint}`);
}
