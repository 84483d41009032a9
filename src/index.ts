/**
 * duet: a WebSocket stack for Node.js.
 *
 *   import { WebSocketServer } from 'duet';
 *   const wss = new WebSocketServer({ port: 8080 });
 *   wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
 */
export * from './node/index.js';
export { CloseCode, closeCodeIsValid, ProtocolError } from './protocol/index.js';
