/**
 * `duet serve`: a ready-made server for trying WebSocket out, for tests and for tools.
 *   /echo  every message back to its sender, same type
 *   /chat  every message to every client on /chat (sender included), in order
 *   /ticker  a JSON tick every second to every client
 *   /      the Vue demo (dist/demo, see static.ts), or the test page when it is not built
 *   /test  a small HTML page to try /echo and /chat from a browser
 */
import cluster from 'node:cluster';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { PER_MESSAGE_DEFLATE_DEFAULTS } from '../node/deflate.js';
import { abortHandshake } from '../node/server.js';
import type { Channel } from '../push/channel.js';
import { WebSocketServer } from '../push/server.js';
import { RECENT_PATH, WEBSOCKET_PATHS, attachEndpoints, pathOf, recentPosition } from './endpoints.js';
import { listeningLine, openLine, parseCommandLine, portNumber, wholeNumber } from './options.js';
import { demoHandler, sendText, withDemoHint } from './static.js';
import { TEST_PAGE } from './test-page.js';
import { readTlsFiles } from './tls-files.js';
import { watchParent } from './parent.js';
import { runPrimary, sharedTopics, MAX_WORKERS, TICKER_LEASE_MS } from './workers.js';

export const SERVE_HELP = `Usage: duet serve [options]

Options:
  --port N          port to listen on (default 8080; 0 picks a free one)
  --host H          address to bind (default 127.0.0.1)
  --max-payload N   largest incoming message in bytes (default 104857600)
  --tls-cert FILE   serve wss:// with this PEM certificate (needs --tls-key)
  --tls-key FILE    the PEM private key for --tls-cert
  --deflate         accept permessage-deflate compression (RFC 7692) on every endpoint
  --max-inflated-payload N
                    with --deflate: largest size a compressed message may inflate to, in
                    bytes (default 1048576; past it the connection closes with 1009)
  --redis URL       share topics, history and recovery with every duet serve using the
                    same Redis (e.g. redis://127.0.0.1:6379); needs the ioredis package
  --redis-prefix P  prefix of duet's Redis keys (default duet:serve:)
  --workers N       run N processes on the one port (node:cluster); they share topics
                    through Redis with --redis, else through the primary process
  --exit-with-parent
                    stop (as on SIGTERM) when the process that started duet serve ends;
                    npm start uses it, as npm's shell does not pass SIGTERM on
  -h, --help        show this help

Prints "LISTENING ws://HOST:PORT" once ready (with --workers, once all are), then the
address of the demo page for a browser. Ctrl-C or SIGTERM closes every connection with 1001
(Going Away) and exits 0.`;

export async function runServe(argv: string[]): Promise<number> {
  if (!cluster.isWorker) return serve(argv);
  // A worker of --workers: its channel to the primary keeps it alive, and closing that
  // channel makes node:cluster exit with 0, so it exits itself, with its own code (stderr is
  // written synchronously to a pipe or terminal, so the reason is not lost).
  let code: number;
  try {
    code = await serve(argv);
  } catch (err) {
    console.error(`duet: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  }
  process.exit(code);
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parseCommandLine('serve', argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    'max-payload': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    deflate: { type: 'boolean' },
    'max-inflated-payload': { type: 'string' },
    redis: { type: 'string' },
    'redis-prefix': { type: 'string' },
    workers: { type: 'string' },
    'exit-with-parent': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const port = portNumber(values.port, 8080);
  const host = values.host ?? '127.0.0.1';
  const maxPayload = wholeNumber('max-payload', values['max-payload'], 100 * 1024 * 1024);
  // 1 MiB, not the library's 4 MiB: /chat relays every message to everyone, and at or under
  // publishCompressLimit a relayed message is compressed once instead of going out inflated
  // to every client (docs/compression.md has the measurements).
  const maxInflatedPayload = wholeNumber(
    'max-inflated-payload',
    values['max-inflated-payload'],
    PER_MESSAGE_DEFLATE_DEFAULTS.publishCompressLimit,
  );
  // Read and checked here, so that every process of --workers fails the same clear way.
  const tlsFiles = readTlsFiles(values['tls-cert'], values['tls-key']);
  const workers = wholeNumber('workers', values.workers, 1);
  if (workers < 1 || workers > MAX_WORKERS) throw new Error(`--workers must be 1-${MAX_WORKERS}, got ${workers}`);
  if (values['redis-prefix'] !== undefined && values.redis === undefined)
    throw new Error('--redis-prefix goes with --redis');
  const tls = tlsFiles !== undefined;
  const exitWithParent = values['exit-with-parent'] === true;
  if (workers > 1 && cluster.isPrimary) {
    return runPrimary({
      workers,
      redis: values.redis !== undefined,
      scheme: tls ? 'wss' : 'ws',
      host,
      port,
      demo: demoHandler() !== null,
      exitWithParent,
    });
  }
  // One process, or one of --workers' processes: where its topics live.
  const shared = await sharedTopics(values.redis, values['redis-prefix'], workers > 1);
  const demo = demoHandler();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload,
    shutdownTimeout: 2000,
    perMessageDeflate: values.deflate === true && { maxInflatedPayload },
    ...(shared ? { broker: shared.broker } : {}),
  });
  // The broker's troubles (Redis gone, reconnecting) are reported here, once per outage;
  // connections stay up meanwhile.
  wss.on('error', (err: Error) => console.error(`duet: ${err.message}`));
  const channel = attachEndpoints(
    wss,
    shared ? { tickerLeader: () => shared.broker.lease('ticker', TICKER_LEASE_MS) } : {},
  );

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === RECENT_PATH) {
      void answerRecent(channel, req, res);
      return;
    }
    if ((path === '/test' || (path === '/' && demo === null)) && (req.method === 'GET' || req.method === 'HEAD')) {
      sendText(res, 200, path === '/' ? withDemoHint(TEST_PAGE) : TEST_PAGE, 'text/html; charset=utf-8');
      return;
    }
    const upgrade = (WEBSOCKET_PATHS as readonly string[]).includes(path);
    if (!upgrade && demo !== null) {
      void demo(req, res);
      return;
    }
    if (upgrade) sendText(res, 426, 'This endpoint speaks WebSocket\n');
    else sendText(res, 404, 'Not found\n');
  };
  // Slow or stalled clients must not hold a connection open before their handshake: 408
  // after 10 s without complete request headers, checked every second.
  const timeouts = { headersTimeout: 10_000, requestTimeout: 15_000, connectionsCheckingInterval: 1000 };
  const server = tlsFiles
    ? https.createServer({ ...timeouts, ...tlsFiles }, onRequest)
    : http.createServer(timeouts, onRequest);

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((WEBSOCKET_PATHS as readonly string[]).includes(pathOf(req))) {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    } else {
      abortHandshake(socket, 404, `No WebSocket endpoint at this path; try ${WEBSOCKET_PATHS.join(', ')}`);
    }
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } catch (err) {
    // The port is taken (or not ours to use): stop the ticker and everything else the
    // endpoints started, so the process ends with the error instead of hanging.
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await shared?.broker.close();
    throw err;
  }
  // A worker of --workers: the primary prints the lines once every worker listens.
  if (!cluster.isWorker) {
    const scheme = tls ? 'wss' : 'ws';
    console.log(listeningLine(scheme, host, server.address(), port));
    const bound = (server.address() as AddressInfo).port;
    console.log(
      openLine(scheme, host, bound, demo === null ? 'the test page (npm run build:demo builds the demo)' : 'the demo'),
    );
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      let pending = 2;
      const done = (): void => {
        if (--pending > 0) return;
        if (shared === undefined) resolve(0);
        else
          void Promise.resolve(shared.broker.close()).then(
            () => resolve(0),
            () => resolve(0),
          );
      };
      // 1001 to everyone; peers that never answer are terminated after shutdownTimeout.
      wss.close(done);
      server.close(done);
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 2500).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (exitWithParent) watchParent(stop);
  });
}

/**
 * `GET /channel/recent?topic=T`: JSON `{ topic, epoch, seq, since }` (endpoints.ts
 * recentPosition), 404 for a topic /channel does not have, 503 when the broker cannot say.
 */
async function answerRecent(channel: Channel, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const json = (status: number, body: unknown): void =>
    sendText(res, status, JSON.stringify(body) + '\n', 'application/json; charset=utf-8');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendText(res, 405, 'GET or HEAD\n', 'text/plain; charset=utf-8', { Allow: 'GET, HEAD' });
    return;
  }
  const topic = new URL(req.url ?? '/', 'http://x').searchParams.get('topic');
  if (topic === null) {
    json(400, { error: 'say which topic: /channel/recent?topic=chat' });
    return;
  }
  try {
    const recent = await recentPosition(channel, topic);
    if (recent === undefined) json(404, { error: `no topic "${topic}" on /channel` });
    else json(200, recent);
  } catch (err) {
    json(503, { error: (err as Error).message });
  }
}
