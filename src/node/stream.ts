/**
 * createWebSocketStream: a connection (client or server side) as a Node Duplex stream, with
 * backpressure both ways, as ws's function of that name. Every message read becomes one
 * chunk; every chunk written is sent as one message.
 *
 * Reading: when the stream's buffer is full (`push()` returns false) the connection pauses,
 * so TCP flow control slows the peer; `_read` resumes it. Writing: a chunk's callback runs
 * once the frame is handed to the operating system (send()'s callback), so `write()` returns
 * false while more than `writableHighWaterMark` bytes wait behind a socket that does not
 * drain, and 'drain' follows when it does.
 */
import { Duplex, type DuplexOptions } from 'node:stream';
import type { WebSocket } from './connection.js';
import { toBuffer, type CodedError, type RawData } from './connection-types.js';

/** The stream's chunk for a message: its bytes, or its text in `readableObjectMode`. */
type Chunk = Buffer | string;

/**
 * Wrap `ws` in a Duplex stream (ws's `createWebSocketStream`). `options` go to the Duplex
 * constructor (`highWaterMark`, `encoding`, `allowHalfOpen`, `decodeStrings`,
 * `readableObjectMode`...), except `objectMode` and `writableObjectMode`, which are always
 * off, and `autoDestroy` / `emitClose`, which are always on (the stream is destroyed once both
 * sides are done, and emits 'close' after the connection closed).
 *
 * - Reading: each message is one chunk, a Buffer (binary messages in whatever `binaryType`
 *   says are turned back into bytes); with `readableObjectMode`, text messages are strings.
 *   The stream ends when the connection closes.
 * - Writing: a Buffer (or a string, after `decodeStrings: false`) is sent as one binary (or
 *   text) message; writes before `open` wait for it. `end()` closes the connection (1005, no
 *   code) and 'finish' follows the closing handshake.
 * - `destroy()` terminates the connection (no closing handshake); an `error` of the
 *   connection (a protocol error, a failed handshake) destroys the stream with it, after the
 *   connection's own close. Attach an 'error' listener, or use `pipeline()`: a stream with
 *   none throws, as every Node stream does.
 */
export function createWebSocketStream(ws: WebSocket, options?: DuplexOptions): Duplex {
  // The connection closes itself after its own errors (with the right close code); the
  // stream must not terminate it then.
  let terminateOnDestroy = true;
  // Binary messages in a Blob (binaryType 'blob', assigned) are read asynchronously: what
  // arrives behind them waits for them, so chunks keep the messages' order.
  let pending: Promise<void> | undefined;

  const duplex = new Duplex({
    ...options,
    autoDestroy: true,
    emitClose: true,
    objectMode: false,
    writableObjectMode: false,
  });

  const deliver = (chunk: Chunk | null): void => {
    if (duplex.destroyed) return;
    if (!duplex.push(chunk) && chunk !== null) ws.pause();
  };
  const deliverInOrder = (chunk: Chunk | null | Promise<Chunk>): void => {
    if (pending === undefined && !(chunk instanceof Promise)) {
      deliver(chunk);
      return;
    }
    const previous = pending ?? Promise.resolve();
    const next = previous.then(async () => deliver(await chunk));
    pending = next;
    // A Blob that cannot be read fails the stream (and, through destroy, the connection).
    next.then(
      () => {
        if (pending === next) pending = undefined;
      },
      (err: unknown) => duplex.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  };

  ws.on('message', (data: RawData, isBinary: boolean) => {
    const text = !isBinary && duplex.readableObjectMode;
    if (data instanceof Blob) {
      deliverInOrder(data.arrayBuffer().then((bytes) => Buffer.from(bytes)));
      return;
    }
    const bytes = Array.isArray(data) ? Buffer.concat(data) : toBuffer(data);
    deliverInOrder(text ? bytes.toString('utf8') : bytes);
  });
  ws.once('error', (err: CodedError) => {
    if (duplex.destroyed) return;
    terminateOnDestroy = false;
    duplex.destroy(err);
  });
  ws.once('close', () => deliverInOrder(null));
  // Wrapped after it closed: the stream has nothing to read.
  if (ws.readyState === ws.CLOSED) process.nextTick(deliverInOrder, null);

  duplex._read = (): void => {
    if (ws.isPaused) ws.resume();
  };

  duplex._write = (chunk: Chunk, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void => {
    if (ws.readyState === ws.CONNECTING) {
      ws.once('open', () => duplex._write(chunk, _encoding, callback));
      return;
    }
    ws.send(chunk, callback);
  };

  duplex._final = (callback: (err?: Error | null) => void): void => {
    if (ws.readyState === ws.CONNECTING) {
      ws.once('open', () => duplex._final(callback));
      return;
    }
    if (ws.readyState === ws.CLOSED) {
      callback();
      return;
    }
    ws.once('close', () => callback());
    ws.close();
  };

  duplex._destroy = (err: Error | null, callback: (err?: Error | null) => void): void => {
    if (ws.readyState === ws.CLOSED) {
      callback(err);
      return;
    }
    ws.once('close', () => callback(err));
    if (terminateOnDestroy) ws.terminate();
  };

  return duplex;
}
