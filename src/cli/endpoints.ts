/**
 * The endpoints `duet serve` offers, on one push-enabled WebSocketServer:
 *   /echo    every message back to its sender, same type
 *   /chat    every message to every client on /chat, the sender included, in order
 *   /ticker  one JSON tick a second to every client: {"type":"tick","seq":N,"time":ISO,"value":V}
 *   /channel the JSON channel protocol (docs/protocol.md) with topics `chat` (clients publish)
 *            and `ticker` (server only), each keeping its last 100 messages for recovery
 * The ticker's value is a random walk, published once and framed once for all subscribers.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from '../node/connection.js';
import { Channel } from '../push/channel.js';
import type { WebSocketServer } from '../push/server.js';

/** Paths that speak WebSocket. */
export const WEBSOCKET_PATHS = ['/echo', '/chat', '/ticker', '/channel'] as const;

export interface Tick {
  type: 'tick';
  seq: number;
  time: string;
  value: number;
}

/** Wire the endpoints to `wss` and start the ticker. Returns the /channel handler. */
export function attachEndpoints(wss: WebSocketServer): Channel {
  const channel = new Channel(wss, {
    topics: {
      chat: { history: { size: 100 } },
      ticker: { history: { size: 100 }, publish: false },
    },
  });
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    switch (pathOf(req)) {
      case '/echo':
        ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
        break;
      case '/chat':
        ws.subscribe('chat');
        ws.on('message', (data, isBinary) => {
          wss.publish('chat', data as Buffer, { binary: isBinary });
        });
        break;
      case '/ticker':
        ws.subscribe('ticker');
        break;
      case '/channel':
        channel.accept(ws);
        break;
    }
  });

  let value = 100;
  wss.every(1000, (seq) => {
    // A random walk, rounded to cents, that never goes below 1.
    value = Math.max(1, Math.round((value + (Math.random() - 0.5) * 2) * 100) / 100);
    const tick: Tick = { type: 'tick', seq, time: new Date().toISOString(), value };
    wss.publish('ticker', JSON.stringify(tick));
    channel.publish('ticker', tick);
  });
  return channel;
}

export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
