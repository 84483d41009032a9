/**
 * The endpoints `duet serve` offers, on one push-enabled WebSocketServer:
 *   /echo    every message back to its sender, same type
 *   /chat    every message to every client on /chat, the sender included, in order
 *   /ticker  one JSON tick a second to every client: {"type":"tick","seq":N,"time":ISO,"value":V}
 * The ticker's value is a random walk, published once and framed once for all subscribers.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from '../node/connection.js';
import type { WebSocketServer } from '../push/server.js';

/** Paths that speak WebSocket. */
export const WEBSOCKET_PATHS = ['/echo', '/chat', '/ticker'] as const;

export interface Tick {
  type: 'tick';
  seq: number;
  time: string;
  value: number;
}

/** Wire the endpoints to `wss` and start the ticker. `onTick` sees every tick (for /channel). */
export function attachEndpoints(wss: WebSocketServer, onTick?: (tick: Tick) => void): void {
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
    }
  });

  let value = 100;
  wss.every(1000, (seq) => {
    // A random walk, rounded to cents, that never goes below 1.
    value = Math.max(1, Math.round((value + (Math.random() - 0.5) * 2) * 100) / 100);
    const tick: Tick = { type: 'tick', seq, time: new Date().toISOString(), value };
    wss.publish('ticker', JSON.stringify(tick));
    onTick?.(tick);
  });
}

export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
