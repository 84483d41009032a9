/**
 * The cost floor: a minimal hand-written WebSocket server on node:net, for reference only
 * (`node bench/run.mjs --servers=duet,ws,floor`). It does what the load generators need and
 * nothing a real server must: no UTF-8 checks, no limits, no validation of the request beyond
 * finding the key, no timeouts, no events for an application. Its numbers show what Node's
 * `net` layer costs on this machine, and so how far below ws a full server can still get.
 *   /echo  every message back to its sender, same type
 *   /chat  every message to every /chat client (the sender too)
 */
import { createHash } from 'node:crypto';
import net from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const chat = new Set();

function header(op, n) {
  if (n < 126) return Buffer.from([0x80 | op, n]);
  if (n < 65536) { const h = Buffer.allocUnsafe(4); h[0] = 0x80 | op; h[1] = 126; h.writeUInt16BE(n, 2); return h; }
  const h = Buffer.allocUnsafe(10); h[0] = 0x80 | op; h[1] = 127; h.writeUInt32BE(0, 2); h.writeUInt32BE(n, 6); return h;
}

function frame(op, payload) {
  return Buffer.concat([header(op, payload.length), payload]);
}

function onMessage(conn, op, payload) {
  if (op === 8) {
    conn.socket.end(frame(8, payload.subarray(0, 2)));
    chat.delete(conn);
    return;
  }
  if (op === 9) { conn.socket.write(frame(10, payload)); return; }
  if (op !== 1 && op !== 2) return;
  const out = frame(op, payload);
  if (conn.chat) for (const c of chat) c.socket.write(out);
  else conn.socket.write(out);
}

/** Frames from `buf` (client frames: masked, FIN set by the load generators); returns the rest. */
function frames(conn, buf) {
  let at = 0;
  while (buf.length - at >= 2) {
    const op = buf[at] & 0x0f;
    let n = buf[at + 1] & 0x7f;
    let h = 2;
    if (n === 126) { if (buf.length - at < 4) break; n = buf.readUInt16BE(at + 2); h = 4; }
    else if (n === 127) { if (buf.length - at < 10) break; n = buf.readUInt32BE(at + 6); h = 10; }
    if (buf.length - at < h + 4 + n) break;
    const k = at + h;
    const payload = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) payload[i] = buf[k + 4 + i] ^ buf[k + (i & 3)];
    at = k + 4 + n;
    onMessage(conn, op, payload);
  }
  return at === buf.length ? null : buf.subarray(at);
}

const server = net.createServer((socket) => {
  const conn = { socket, chat: false };
  let rest = null;
  let open = false;
  socket.on('data', (chunk) => {
    let buf = rest === null ? chunk : Buffer.concat([rest, chunk]);
    if (!open) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) { rest = buf; return; }
      const head = buf.toString('latin1', 0, end);
      const m = /sec-websocket-key:\s*(\S+)/i.exec(head);
      if (m === null) { socket.destroy(); return; }
      conn.chat = head.startsWith('GET /chat ');
      if (conn.chat) chat.add(conn);
      const accept = createHash('sha1').update(m[1] + GUID).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      open = true;
      buf = buf.subarray(end + 4);
    }
    rest = frames(conn, buf);
  });
  socket.on('error', () => {});
  socket.on('close', () => chat.delete(conn));
});

server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
