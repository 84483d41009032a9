/**
 * The ws server under test, written as a ws user would (the ws README's patterns): ws 8 with
 * bufferutil and utf-8-validate installed, defaults untouched, one HTTP server whose upgrades
 * are routed by path to two noServer WebSocketServers.
 *   /echo  every message back to its sender, same type
 *   /chat  every message to every /chat client (the sender too): the usual clients.forEach loop
 * Reports its port to the harness over IPC and exits when the harness goes away.
 */
import { createServer } from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';

const server = createServer();
// --deflate: permessage-deflate on, with its defaults (the compressed-echo scenario).
const perMessageDeflate = process.argv.includes('--deflate');
const echo = new WebSocketServer({ noServer: true, perMessageDeflate });
const chat = new WebSocketServer({ noServer: true, perMessageDeflate });

echo.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

chat.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    chat.clients.forEach((client) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    });
  });
});

server.on('upgrade', (req, socket, head) => {
  const wss = req.url === '/echo' ? echo : req.url === '/chat' ? chat : null;
  if (wss === null) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));
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
