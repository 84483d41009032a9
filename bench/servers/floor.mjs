/**
 * The cost floor: a minimal hand-written WebSocket server on node:net, for reference only
 * (it runs in every `npm run bench` beside duet and ws). It does what the load generators need and
 * nothing a real server must: no UTF-8 checks, no limits, no validation of the request beyond
 * finding the key, no timeouts, no events for an application. Its numbers show what Node's
 * `net` layer costs on this machine, and so how far below ws a full server can still get.
 *   /echo  every message back to its sender, same type
 *   /chat  every message to every /chat client (the sender too), framed once and handed to
 *          each with its own `socket.write`: one write system call per delivery
 * `npm run bench:scaleout` runs it too (its `floor-1` variant): what the operating system alone
 * charges per delivery when each message is written as it arrives.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import bufferutil from 'bufferutil';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const chat = new Set();

function header(op, n) {
  if (n < 126) return Buffer.from([0x80 | op, n]);
  if (n < 65536) {
    const h = Buffer.allocUnsafe(4);
    h[0] = 0x80 | op;
    h[1] = 126;
    h.writeUInt16BE(n, 2);
    return h;
  }
  const h = Buffer.allocUnsafe(10);
  h[0] = 0x80 | op;
  h[1] = 127;
  h.writeUInt32BE(0, 2);
  h.writeUInt32BE(n, 6);
  return h;
}

/** Small frames as one buffer; a large payload is written behind its header without a copy. */
function send(socket, op, payload) {
  if (payload.length < 1024) {
    socket.write(Buffer.concat([header(op, payload.length), payload]));
    return;
  }
  socket.cork();
  socket.write(header(op, payload.length));
  socket.write(payload);
  socket.uncork();
}

function onMessage(conn, op, payload) {
  if (op === 8) {
    conn.socket.end(Buffer.concat([header(8, Math.min(2, payload.length)), payload.subarray(0, 2)]));
    chat.delete(conn);
    return;
  }
  if (op === 9) {
    send(conn.socket, 10, payload);
    return;
  }
  if (op !== 1 && op !== 2) return;
  if (!conn.chat) {
    send(conn.socket, op, payload);
    return;
  }
  const out = Buffer.concat([header(op, payload.length), payload]);
  for (const c of chat) c.socket.write(out);
}

/** Bytes the frame at `at` in `buf` needs in all (header, mask key, payload), or 0 if unknown yet. */
function frameSize(buf, at) {
  if (buf.length - at < 2) return 0;
  const n = buf[at + 1] & 0x7f;
  if (n < 126) return 6 + n;
  if (n === 126) return buf.length - at < 4 ? 0 : 8 + buf.readUInt16BE(at + 2);
  return buf.length - at < 10 ? 0 : 14 + buf.readUInt32BE(at + 6);
}

/**
 * Client frames (masked, FIN set by the load generators). Received chunks are kept in a list
 * and joined once a whole frame is there: one copy per frame, whatever the number of reads.
 */
function onData(conn, chunk) {
  conn.chunks.push(chunk);
  conn.have += chunk.length;
  if (conn.need === 0) {
    // The header itself may be split: join what is there (a few bytes) to read it.
    if (conn.chunks.length > 1 && conn.chunks[0].length < 14) conn.chunks = [Buffer.concat(conn.chunks)];
    conn.need = frameSize(conn.chunks[0], 0);
    if (conn.need === 0) return;
  }
  if (conn.have < conn.need) return;
  const buf = conn.chunks.length === 1 ? conn.chunks[0] : Buffer.concat(conn.chunks, conn.have);
  let at = 0;
  for (;;) {
    const size = frameSize(buf, at);
    if (size === 0 || buf.length - at < size) break;
    const n = buf[at + 1] & 0x7f;
    const head = n < 126 ? 2 : n === 126 ? 4 : 10;
    const op = buf[at] & 0x0f;
    const payload = buf.subarray(at + head + 4, at + size);
    bufferutil.unmask(payload, buf.subarray(at + head, at + head + 4));
    onMessage(conn, op, payload);
    at += size;
  }
  if (at === buf.length) {
    conn.chunks = [];
    conn.have = 0;
    conn.need = 0;
  } else {
    const rest = buf.subarray(at);
    conn.chunks = [rest];
    conn.have = rest.length;
    conn.need = frameSize(rest, 0);
  }
}

const server = net.createServer((socket) => {
  const conn = { socket, chat: false, chunks: [], have: 0, need: 0 };
  let pending = null;
  let open = false;
  socket.on('data', (chunk) => {
    if (open) {
      onData(conn, chunk);
      return;
    }
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      pending = buf;
      return;
    }
    const head = buf.toString('latin1', 0, end);
    const m = /sec-websocket-key:\s*(\S+)/i.exec(head);
    if (m === null) {
      socket.destroy();
      return;
    }
    conn.chat = head.startsWith('GET /chat ');
    if (conn.chat) chat.add(conn);
    const accept = createHash('sha1')
      .update(m[1] + GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    open = true;
    pending = null;
    if (buf.length > end + 4) onData(conn, buf.subarray(end + 4));
  });
  socket.on('error', () => {});
  socket.on('close', () => chat.delete(conn));
});

server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));
process.on('disconnect', () => process.exit(0));
// Harness plumbing, not application code: the JS heap after a forced GC (--expose-gc) for the
// idle-memory scenario; `count` (bench:scaleout): the /chat clients.
process.on('message', (m) => {
  if (m?.type === 'count') process.send({ type: 'count', n: chat.size, ready: true, errors: 0 });
  if (m?.type === 'heap') {
    globalThis.gc?.();
    globalThis.gc?.();
    process.send({ type: 'heap', heapUsed: process.memoryUsage().heapUsed });
  }
});
process.on('SIGTERM', () => process.exit(0));
