/**
 * The Socket.IO server of `npm run bench:scaleout` (bench/scaleout.mjs), written as the
 * Socket.IO docs show it: socket.io 4 on a node:http server, the websocket transport only (no
 * long-polling, so no sticky sessions are needed behind a balancer), and for several processes
 * @socket.io/redis-adapter with ioredis (a publishing client and its duplicate, which
 * subscribes). Clients join one room with an event; every `pub` event a client sends goes to
 * the whole room, the sender included: `io.to(room).emit('msg', data)`.
 *
 *   node bench/servers/socketio-redis.mjs --adapter=redis --key=K   every process started with
 *        the same key shares rooms through Redis (REDIS_URL or redis://127.0.0.1:6379)
 *   node bench/servers/socketio-redis.mjs --adapter=memory          the default in-memory adapter
 *
 * Events: `join` (room, ack) joins the room and acknowledges; `pub` (data) emits `msg` (data) to
 * the room. Harness plumbing over IPC, not application code: `listening {port}` once it listens
 * (after Redis answered and the adapter's subscription is in place); `count` -> `count {n,
 * ready, errors}`: the room's local members, and errors the Redis clients reported.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { arg } from '../lib/proc.mjs';

const ROOM = 'chat';
const mode = arg('adapter', 'redis');
if (mode !== 'memory' && mode !== 'redis') throw new Error(`--adapter=memory|redis, not ${mode}`);

const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false });
let errors = 0;
const onError = (err) => {
  if (errors++ < 5) console.error(`socket.io server (${mode}): ${err?.message ?? err}`);
};

if (mode === 'redis') {
  const [{ createAdapter }, { Redis }] = await Promise.all([import('@socket.io/redis-adapter'), import('ioredis')]);
  const key = arg('key', 'socket.io');
  const pubClient = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const subClient = pubClient.duplicate();
  pubClient.on('error', onError);
  subClient.on('error', onError);
  io.adapter(createAdapter(pubClient, subClient, { key }));
  // The adapter subscribes (PSUBSCRIBE key#/#*) without waiting: the same PSUBSCRIBE again is
  // answered after it on the same connection, so once it resolves every broadcast arrives.
  await subClient.psubscribe(`${key}#/#*`);
  await pubClient.ping();
}

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    socket.join(room);
    if (typeof ack === 'function') ack(true);
  });
  socket.on('pub', (data) => io.to(ROOM).emit('msg', data));
});

http.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: http.address().port }));
process.on('message', (m) => {
  if (m?.type !== 'count') return;
  const n = io.of('/').adapter.rooms.get(ROOM)?.size ?? 0;
  process.send({ type: 'count', n, ready: true, errors });
});
process.on('disconnect', () => process.exit(0));
// Exit normally on SIGTERM, so --cpu-prof (SCALEOUT_SERVER_NODE_ARGS) can write its profile.
process.on('SIGTERM', () => process.exit(0));
