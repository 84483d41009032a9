/**
 * A minimal WebSocket client for load generators: a hand-written handshake and frame codec
 * over raw node:net sockets, so that the load costs little next to the server it measures.
 *
 * - Client frames are masked (RFC 6455 5.3); callers build them once with maskedFrame() and
 *   write the same Buffer again and again (the server unmasks every time all the same).
 * - Reads go into one buffer per process (`onread`), never allocated per read; only header
 *   bytes split across reads and control payloads are copied.
 * - Data frames are handed over as they arrive: start(op, fin, length), data(buf, start, end)
 *   any number of times (once when the whole payload is in one read), end(). Pings are answered
 *   with masked pongs; a close frame ends in onClose(code).
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A fresh Sec-WebSocket-Key and the Sec-WebSocket-Accept the server must answer with. */
export function handshakeKey() {
  const key = randomBytes(16).toString('base64');
  return {
    key,
    accept: createHash('sha1')
      .update(key + GUID)
      .digest('base64'),
  };
}

export function upgradeRequest(port, path, key, extensions = '') {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
    (extensions ? `Sec-WebSocket-Extensions: ${extensions}\r\n` : '') +
    '\r\n'
  );
}

/** Check a response head (without the final CRLFCRLF): null when it is a valid 101 for `accept`. */
export function checkUpgradeResponse(head, accept) {
  if (!head.startsWith('HTTP/1.1 101')) return `bad status: ${head.split('\r\n')[0]}`;
  const m = /\r\nsec-websocket-accept:[ \t]*([^\r\n]*?)[ \t]*(\r\n|$)/i.exec(head);
  if (m === null || m[1] !== accept) return 'bad Sec-WebSocket-Accept';
  return null;
}

function headerLength(n) {
  return n < 126 ? 2 : n < 65536 ? 4 : 10;
}

function writeHeader(frame, opcode, n, maskBit) {
  frame[0] = 0x80 | opcode;
  if (n < 126) frame[1] = maskBit | n;
  else if (n < 65536) {
    frame[1] = maskBit | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = maskBit | 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
}

/** One complete, masked client frame (FIN set) with a random masking key; `rsv1` marks it compressed. */
export function maskedFrame(opcode, payload, maskKey = randomBytes(4), rsv1 = false) {
  const n = payload.length;
  const h = headerLength(n);
  const frame = Buffer.allocUnsafe(h + 4 + n);
  writeHeader(frame, opcode, n, 0x80);
  if (rsv1) frame[0] |= 0x40;
  maskKey.copy(frame, h);
  for (let i = 0; i < n; i++) frame[h + 4 + i] = payload[i] ^ maskKey[i & 3];
  return frame;
}

/** The unmasked frame a server sends for `payload` (what an echo must look like). */
export function serverFrame(opcode, payload) {
  const n = payload.length;
  const h = headerLength(n);
  const frame = Buffer.allocUnsafe(h + n);
  writeHeader(frame, opcode, n, 0);
  payload.copy(frame, h);
  return frame;
}

/** A masked close frame with a status code. */
export function closeFrame(code = 1000) {
  const p = Buffer.allocUnsafe(2);
  p.writeUInt16BE(code, 0);
  return maskedFrame(0x8, p);
}

const HEAD = 0;
const BODY = 1;

/**
 * Open one client connection. `h` holds the callbacks:
 *   open(c)                        upgraded (the handshake checked)
 *   start(c, op, fin, len)         a data frame begins (op 0, 1 or 2)
 *   data(c, buf, start, end)       payload bytes of that frame (valid only during the call)
 *   end(c)                         the frame ended
 *   close(c, code)                 the server's close frame (a masked close is sent back)
 *   fail(c, message)               a protocol error, a failed handshake or a socket error
 *   gone(c)                        the TCP connection closed
 *   afterRead(c, nread)            optional: after each read was decoded
 * Returns the connection object `c` ({ id, socket, upgraded, ... }); `c.closing = true` marks
 * an expected close. `keys` ({ key, accept }): a fresh handshakeKey() unless given (a load
 * generator opening thousands of connections a second may reuse a few). `extensions`: a
 * Sec-WebSocket-Extensions offer; the response's value is kept in `c.extensions`, and RSV1
 * is then allowed on data frames (start() gets it as a fifth argument).
 */
export function connect(port, path, readBuffer, h, id = 0, keys = handshakeKey(), extensions = '') {
  const { key, accept } = keys;
  const c = {
    id,
    socket: null,
    upgraded: false,
    extensions: '',
    rsv1Allowed: false,
    closing: false,
    closeCode: -1,
    // decoder state
    state: HEAD,
    hdr: Buffer.allocUnsafe(14),
    hdrLen: 0,
    remaining: 0,
    op: 0,
    control: null,
    controlLen: 0,
    headText: '',
  };
  const onRead = (nread, buf) => {
    let off = 0;
    if (!c.upgraded) {
      c.headText += buf.latin1Slice(0, nread);
      const endAt = c.headText.indexOf('\r\n\r\n');
      if (endAt < 0) {
        if (c.headText.length > 8192) h.fail(c, 'response head too long');
        return;
      }
      const head = c.headText.slice(0, endAt);
      const problem = checkUpgradeResponse(head, accept);
      if (problem !== null) {
        h.fail(c, problem);
        c.socket.destroy();
        return;
      }
      c.extensions = /\r\nsec-websocket-extensions:[ \t]*([^\r\n]*)/i.exec(head)?.[1]?.trim() ?? '';
      c.rsv1Allowed = extensions !== '' && c.extensions.startsWith('permessage-deflate');
      // The head was read as latin1, one char per byte: bytes after it in this read are frames.
      off = nread - (c.headText.length - endAt - 4);
      c.headText = '';
      c.upgraded = true;
      h.open(c);
    }
    decode(c, buf, off, nread, h);
    if (h.afterRead !== undefined) h.afterRead(c, nread);
  };
  const socket = net.connect({ port, host: '127.0.0.1', onread: { buffer: readBuffer, callback: onRead } });
  c.socket = socket;
  socket.setNoDelay(true);
  socket.on('connect', () => socket.write(upgradeRequest(port, path, key, extensions)));
  socket.on('error', (err) => {
    if (!c.closing) h.fail(c, err.message);
  });
  socket.on('close', () => h.gone(c));
  return c;
}

function decode(c, buf, off, len, h) {
  while (off < len) {
    if (c.state === HEAD) {
      // Collect the header: 2 bytes, then the extended length; server frames carry no mask.
      if (c.hdrLen === 0 && len - off >= 2) {
        const b1 = buf[off + 1];
        const need = (b1 & 0x7f) === 126 ? 4 : (b1 & 0x7f) === 127 ? 10 : 2;
        if (len - off >= need) {
          if (!startFrame(c, buf, off, h)) return;
          off += need;
          continue;
        }
      }
      c.hdr[c.hdrLen++] = buf[off++];
      if (c.hdrLen >= 2) {
        const b1 = c.hdr[1];
        const need = (b1 & 0x7f) === 126 ? 4 : (b1 & 0x7f) === 127 ? 10 : 2;
        if (c.hdrLen === need) {
          c.hdrLen = 0;
          if (!startFrame(c, c.hdr, 0, h)) return;
        }
      }
    } else {
      const take = Math.min(c.remaining, len - off);
      if (c.control !== null) {
        buf.copy(c.control, c.controlLen, off, off + take);
        c.controlLen += take;
      } else {
        h.data(c, buf, off, off + take);
      }
      off += take;
      c.remaining -= take;
      if (c.remaining === 0) endFrame(c, h);
    }
  }
}

/** Read a frame header at buf[off]; false after a protocol failure. */
function startFrame(c, buf, off, h) {
  const b0 = buf[off];
  const b1 = buf[off + 1];
  if (b1 & 0x80) {
    h.fail(c, 'masked frame from the server');
    c.socket.destroy();
    return false;
  }
  if (b0 & (c.rsv1Allowed ? 0x30 : 0x70)) {
    h.fail(c, 'RSV bits set');
    c.socket.destroy();
    return false;
  }
  let n = b1 & 0x7f;
  if (n === 126) n = buf.readUInt16BE(off + 2);
  else if (n === 127) n = Number(buf.readBigUInt64BE(off + 2));
  const op = b0 & 0x0f;
  c.op = op;
  c.remaining = n;
  if (op >= 8) {
    if (n > 125 || !(b0 & 0x80)) {
      h.fail(c, 'bad control frame');
      c.socket.destroy();
      return false;
    }
    c.control = Buffer.allocUnsafe(n);
    c.controlLen = 0;
  } else {
    c.control = null;
    h.start(c, op, (b0 & 0x80) !== 0, n, (b0 & 0x40) !== 0);
  }
  c.state = BODY;
  if (n === 0) endFrame(c, h);
  return true;
}

function endFrame(c, h) {
  c.state = HEAD;
  if (c.control === null) {
    h.end(c);
    return;
  }
  const payload = c.control;
  c.control = null;
  if (c.op === 0x9) c.socket.write(maskedFrame(0xa, payload));
  else if (c.op === 0x8) {
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
    c.closeCode = code;
    if (!c.closing) {
      c.closing = true;
      c.socket.write(closeFrame(code === 1005 ? 1000 : code));
    }
    h.close(c, code);
  } else if (c.op !== 0xa) h.fail(c, `unknown opcode ${c.op}`);
}

/** Write `value` as `width` decimal digits at buf[at] (the loaders' fixed-width message fields). */
export function writeDigits(buf, at, width, value) {
  for (let i = at + width - 1; i >= at; i--) {
    buf[i] = 48 + (value % 10);
    value = Math.floor(value / 10);
  }
}

/** Read `width` decimal digits at buf[at]. */
export function readDigits(buf, at, width) {
  let v = 0;
  for (let i = at; i < at + width; i++) v = v * 10 + (buf[i] - 48);
  return v;
}
