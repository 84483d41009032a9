/**
 * The duet server of `npm run bench:scaleout` (bench/scaleout.mjs), written as an application
 * would: one WebSocketServer, defaults untouched, every /chat client subscribed to one topic,
 * every message a client sends published to that topic (the sender receives it too).
 *
 *   node bench/servers/duet-redis.mjs --broker=memory            the default in-memory broker
 *   node bench/servers/duet-redis.mjs --broker=redis --prefix=P  RedisBroker from duet/redis
 *        (dist/redis/index.js, REDIS_URL or redis://127.0.0.1:6379): every process started with
 *        the same prefix shares the topic, so a publish in one reaches the subscribers of all
 *   --write-delay=MS                                             the server's writeDelay option (default 0)
 *
 * Harness plumbing over IPC, not application code: `listening {port}` once it listens (after
 * Redis answered); `count` -> `count {n, ready, errors}`: the topic's local subscribers,
 * whether the broker delivers the topic here yet (the Redis channel subscribed and the topic
 * positioned), and the errors the server reported (a failed publish is one: then the run is
 * INVALID).
 */
import { WebSocketServer } from '../../dist/index.js';
import { arg } from '../lib/proc.mjs';

const TOPIC = 'chat';
const mode = arg('broker', 'memory');
if (mode !== 'memory' && mode !== 'redis') throw new Error(`--broker=memory|redis, not ${mode}`);

let broker;
if (mode === 'redis') {
  const { RedisBroker } = await import('../../dist/redis/index.js');
  broker = await RedisBroker.connect({ prefix: arg('prefix', 'duet-bench:') });
}

const writeDelay = Number(arg('write-delay', '0'));
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, writeDelay, ...(broker ? { broker } : {}) });
let errors = 0;
wss.on('error', (err) => {
  if (errors++ < 5) console.error(`duet server (${mode}): ${err?.message ?? err}`);
});

wss.on('connection', (ws, req) => {
  if (req.url !== '/chat') {
    ws.close(1008, 'unknown path');
    return;
  }
  ws.subscribe(TOPIC);
  ws.on('message', (data, isBinary) => wss.publish(TOPIC, data, { binary: isBinary }));
});

wss.once('listening', () => process.send({ type: 'listening', port: wss.address().port }));
process.on('message', (m) => {
  if (m?.type !== 'count') return;
  const n = wss.subscriberCount(TOPIC);
  // The Hub watched the topic when its first subscriber came; watch() again returns the same
  // feed's start (subscribed to the Redis channel, then positioned), it starts nothing new.
  const started =
    broker === undefined
      ? Promise.resolve(true)
      : n === 0
        ? Promise.resolve(false)
        : broker.watch(TOPIC).then(() => true);
  started.then(
    (ready) => process.send({ type: 'count', n, ready, errors }),
    () => process.send({ type: 'count', n, ready: false, errors }),
  );
});
process.on('disconnect', () => process.exit(0));
// Exit normally on SIGTERM, so --cpu-prof (SCALEOUT_SERVER_NODE_ARGS) can write its profile.
process.on('SIGTERM', () => process.exit(0));
