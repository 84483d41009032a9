/**
 * The duet server under test, written as an application would: one WebSocketServer on a
 * port, defaults untouched, routing by path.
 *   /echo  every message back to its sender, same type
 *   /chat  every message to every /chat client (the sender too), through a topic
 * Reports its port to the harness over IPC and exits when the harness goes away.
 */
import { WebSocketServer } from '../../dist/index.js';

// --deflate: permessage-deflate on, with its defaults (the compressed-echo scenario);
// BENCH_DUET_DEFLATE_LEVEL=N sets the zlib level instead (ws's default is 6, duet's 1).
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate:
    process.argv.includes('--deflate') &&
    (process.env.BENCH_DUET_DEFLATE_LEVEL ? { level: Number(process.env.BENCH_DUET_DEFLATE_LEVEL) } : true),
});

wss.on('connection', (ws, req) => {
  if (req.url === '/echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else if (req.url === '/chat') {
    ws.subscribe('chat');
    ws.on('message', (data, isBinary) => wss.publish('chat', data, { binary: isBinary }));
  } else {
    ws.close(1008, 'unknown path');
  }
});

wss.once('listening', () => process.send({ type: 'listening', port: wss.address().port }));
process.on('disconnect', () => process.exit(0));
// Harness plumbing, not application code: the JS heap after a forced GC (--expose-gc) for the idle-memory scenario.
process.on('message', (m) => {
  if (m?.type === 'heap') {
    globalThis.gc?.();
    globalThis.gc?.();
    process.send({ type: 'heap', heapUsed: process.memoryUsage().heapUsed });
  }
});
// Exit normally on SIGTERM, so --cpu-prof (BENCH_SERVER_NODE_ARGS) can write its profile.
process.on('SIGTERM', () => process.exit(0));
