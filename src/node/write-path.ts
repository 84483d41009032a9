/**
 * The write path of a connection: everything between `send()` and the socket. The steps, each
 * with one name:
 *
 *   send(data)           API: argument shapes, readyState, routing (a Blob, or a message to
 *                        compress, goes through the SendQueue so that order is kept)
 *   sendMessage          opcode, continuation frames, RSV1, the slow-consumer policy, counters
 *   sendEncoded(shared)  publish/broadcast (push/'s Subscriber interface): the policy, the queue
 *   writeShared          a shared message's frame for this connection (compressed or not),
 *                        held back while a fragmented send is unfinished
 *   frame                encode one frame (masked on the client side)
 *   write                put an encoded frame on the wire: small ones into this turn's batch
 *                        (write-batch.ts), large ones to the corked socket, both flushed at the
 *                        end of the turn in one write per socket
 *
 * Backpressure lives here too: bufferedAmount, the backlog that pauses reading, and the
 * slow-consumer policy (`admit`), which judges only bytes the kernel refused in earlier turns.
 *
 * Why one file of ~450 lines: these steps are one path, read top to bottom; the batch itself
 * (write-batch.ts) and the queue for asynchronous sends (send-queue.ts) have their own files.
 */
import { CloseCode } from '../protocol/close-codes.js';
import { canSend, CLOSED, CONNECTING } from '../protocol/connection-state.js';
import { encodeFrame, type EncodedFrame } from '../protocol/frame.js';
import { MAX_CONTROL_PAYLOAD, Opcode } from '../protocol/opcodes.js';
import { ConnectionCore } from './connection-core.js';
import {
  codedError,
  controlArguments,
  EMPTY,
  toBuffer,
  type Callback,
  type CodedError,
  type SendData,
  type SendOptions,
} from './connection-types.js';
import { SendQueue } from './send-queue.js';
import type { SharedMessage } from './shared-message.js';
import { READ_PAUSE_BYTES, type OwnedSocket } from './socket-listeners.js';
import { batchSlotOf, type BatchSlot } from './write-batch.js';

/**
 * Frames up to this size are collected per event-loop turn and written as one buffer; larger
 * ones go to the (corked) socket as they are, header and payload without a copy.
 */
const SMALL_FRAME = 4096;

type SendCallback = (err?: Error | null) => void;

// A SendQueueTarget and a BatchOwner, but not declared `implements`: their members are marked
// internal, so the published .d.ts (built with stripInternal) would declare a class that does
// not implement them. `new SendQueue(this)` and `batchSlotOf(this)` check the shape.
export abstract class WritePath extends ConnectionCore {
  /** Bytes queued by send() but not yet handed to the operating system. */
  get bufferedAmount(): number {
    // Application bytes only, as the WHATWG standard counts them: the frame headers written
    // since the socket's buffer was last empty are left out.
    let pending = 0;
    const socket = this.socket;
    if (socket !== undefined) {
      const waiting = socket.writableLength;
      if (waiting === 0) this.headerBytes = 0;
      else pending = Math.max(0, waiting - this.headerBytes);
    }
    return pending + (this.batchSlot?.payloadBytes ?? 0) + (this.queue?.bytes ?? 0) + this.discarded;
  }

  /** Bytes waiting to be written to the peer (reading pauses over READ_PAUSE_BYTES; sweep.ts). @internal */
  get backlog(): number {
    return (this.socket?.writableLength ?? 0) + (this.batchSlot?.bytes ?? 0);
  }

  /**
   * Bytes offered to the socket in earlier event-loop turns and still not taken by the
   * kernel (the slow-consumer policy's measure). Messages waiting to be compressed, and
   * shared frames held behind a fragmented send, count too: they are on their way to the
   * socket whatever the peer does.
   * @internal
   */
  get staleBacklog(): number {
    const written = this.socket?.writableLength ?? 0;
    return Math.max(0, written - (this.batchSlot?.turnBytes ?? 0)) + this.heldBytes + this.queuedBytes;
  }

  /** Bytes waiting in the send queue (Blobs being read, messages being compressed). @internal */
  get queuedBytes(): number {
    return this.queue?.bytes ?? 0;
  }

  // ---- send: the API -----------------------------------------------------------------------

  /**
   * Send a message (or, with `fin: false`, a fragment of one). Strings go as text, other data
   * as binary. `cb` runs once the data is written to the socket, or with an error if the
   * connection is not open.
   */
  send(data: SendData | number | readonly Buffer[], options?: SendOptions | SendCallback, cb?: SendCallback): void {
    if (typeof options === 'function') {
      cb = options;
      options = undefined;
    }
    if (this.readyState === CONNECTING) {
      throw new DOMException('WebSocket is not open: readyState 0 (CONNECTING)', 'InvalidStateError');
    }
    // Buffer[] (what binaryType 'fragments' delivers, part of RawData) is sent as one binary
    // message, so `ws.send(data, { binary: isBinary })` echoes whatever a listener received.
    // Anything else that is not a string, bytes or a Blob is sent as its string form (WebIDL's
    // conversion for the USVString overload), as text.
    const value: SendData = Array.isArray(data)
      ? Buffer.concat(data as readonly Buffer[])
      : typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data) || data instanceof Blob
        ? data
        : String(data);
    if (!canSend(this.wire)) {
      // WHATWG: data sent after closing is discarded but still counted in bufferedAmount.
      this.discarded +=
        typeof value === 'string'
          ? Buffer.byteLength(value)
          : value instanceof Blob
            ? value.size
            : toBuffer(value).length;
      if (cb) this.notOpen(cb);
      return;
    }
    if (value instanceof Blob) {
      (this.queue ??= new SendQueue(this)).sendBlob(value, options, cb);
      return;
    }
    if (this.deflate !== undefined && this.queueCompression(value, options, cb)) return;
    // (Uncompressed: the slow-consumer policy judges it when it is written, in sendMessage.)
    if (this.queue?.active) {
      this.queue.send(
        value,
        typeof value === 'string' ? Buffer.byteLength(value) : toBuffer(value).length,
        options,
        cb,
      );
      return;
    }
    this.sendMessage(value, options, cb);
  }

  /**
   * permessage-deflate: decide whether this message (or fragment) is compressed, and if so
   * queue it for compression (zlib is asynchronous, so it and everything after it go through
   * the send queue, in order). Returns false when it is sent uncompressed the usual way.
   */
  private queueCompression(
    value: Exclude<SendData, Blob>,
    options: SendOptions | undefined,
    cb: Callback | undefined,
  ): boolean {
    const fin = options?.fin ?? true;
    const continuing = this.outgoingCompressed !== undefined;
    let compress = this.outgoingCompressed;
    if (compress === undefined) {
      const size = typeof value === 'string' ? Buffer.byteLength(value) : toBuffer(value).length;
      compress = options?.compress !== false && (!fin || size >= this.deflate!.settings.threshold);
    }
    this.outgoingCompressed = fin ? undefined : compress;
    if (!compress) return false;
    // The slow-consumer policy judges a message once, here: a compressed message cannot be
    // dropped later, since the compressor's state already includes it. The fragments of a
    // message whose first fragment was dropped are dropped too.
    if (continuing ? this.droppingCompressed : this.slowConsumerSends && this.host !== undefined && !this.admit()) {
      this.droppingCompressed = !fin;
      if (cb) this.notOpen(cb);
      return true;
    }
    // The bytes go as a Buffer: say whether they were text.
    const binary = options?.binary ?? typeof value !== 'string';
    (this.queue ??= new SendQueue(this)).sendCompressed(toBuffer(value), { binary, fin }, cb);
    return true;
  }

  /** Send a Ping (at most 125 bytes of data). */
  ping(data?: SendData | number | SendCallback, mask?: boolean | SendCallback, cb?: SendCallback): void {
    const [payload, callback] = controlArguments(data, mask, cb);
    this.control(Opcode.PING, payload, callback);
  }

  /** Send an unsolicited Pong (at most 125 bytes of data). */
  pong(data?: SendData | number | SendCallback, mask?: boolean | SendCallback, cb?: SendCallback): void {
    const [payload, callback] = controlArguments(data, mask, cb);
    this.control(Opcode.PONG, payload, callback);
  }

  private control(opcode: number, data: SendData | number | undefined, cb: SendCallback | undefined): void {
    if (this.readyState === CONNECTING) {
      throw new DOMException('WebSocket is not open: readyState 0 (CONNECTING)', 'InvalidStateError');
    }
    if (data instanceof Blob) throw new TypeError('ping() and pong() take a string or bytes, not a Blob');
    const payload = data === undefined ? EMPTY : toBuffer(typeof data === 'number' ? String(data) : data);
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError('The data size must not be greater than 125 bytes');
    }
    if (!canSend(this.wire)) {
      if (cb) this.notOpen(cb);
      return;
    }
    this.frame(opcode, payload, true, cb);
  }

  // ---- the SendQueue's side (send-queue.ts) ------------------------------------------------

  /** The queue's compression step: deflate `data`; null when the connection went away. @internal */
  compressQueued(data: Buffer, fin: boolean): Promise<Buffer | null> {
    return new Promise((resolve) => {
      if (this.deflate === undefined || this.closeSent || this.readyState === CLOSED || this.socket?.destroyed) {
        resolve(null);
        return;
      }
      this.deflate.compress(data, fin, (err, out) => {
        if (err !== null && err.code !== 'WS_ERR_NOT_OPEN' && this.readyState !== CLOSED) {
          // zlib failed on our own data: the message (or the rest of it) cannot be sent.
          this.failWithError(err, CloseCode.INTERNAL_ERROR);
        }
        resolve(err === null ? out! : null);
      });
    });
  }

  /** A queued message's turn came (`data` null: it could not be compressed). @internal */
  sendQueued(
    data: Exclude<SendData, Blob> | null,
    options: SendOptions | undefined,
    cb: SendCallback | undefined,
    compressed = false,
  ): void {
    if (data === null || this.closeSent || this.readyState === CLOSED) {
      if (cb) this.notOpen(cb);
      return;
    }
    this.sendMessage(data, options, cb, compressed);
  }

  /** End TCP after what was queued before (the peer ended its side). @internal */
  endQueued(): void {
    const socket = this.socket;
    if (socket !== undefined && !socket.writableEnded && !socket.destroyed) this.endSocket(socket);
  }

  /** The Close queued behind messages accepted before close() (or the peer's Close). @internal */
  closeQueued(code: number | undefined, reason: Buffer): void {
    if (this.readyState !== CLOSED) this.startClose(code, reason);
  }

  /**
   * A Blob could not be read: fail the connection (1011), and hand the same error to the
   * Blob's callback and those of the sends queued behind it, which will never be sent (as ws
   * does; a promisified send() must settle).
   * @internal
   */
  blobFailed(cause: unknown, callbacks: Callback[]): void {
    const err = codedError('WS_ERR_BLOB_READ', `Could not read a Blob to send: ${String(cause)}`);
    (err as CodedError & { cause: unknown }).cause = cause;
    // Closed meanwhile: there is nothing left to fail (and no 'error' after 'close').
    if (this.readyState !== CLOSED) this.failWithError(err, CloseCode.INTERNAL_ERROR);
    for (const cb of callbacks) process.nextTick(cb, err);
  }

  // ---- sendMessage: one message or fragment, framed for this connection ---------------------

  private sendMessage(
    value: Exclude<SendData, Blob>,
    options: SendOptions | undefined,
    cb: SendCallback | undefined,
    compressed = false,
  ): void {
    const fin = options?.fin ?? true;
    if (
      this.droppingFragments ||
      (this.slowConsumerSends && this.host !== undefined && !this.sendingFragments && !compressed && !this.admit())
    ) {
      // A dropped first fragment takes the rest of its message with it.
      this.droppingFragments = !fin;
      if (cb) this.notOpen(cb);
      return;
    }
    const binary = options?.binary ?? typeof value !== 'string';
    let opcode: number = binary ? Opcode.BINARY : Opcode.TEXT;
    // RFC 7692 section 6.1: RSV1 on the first frame of a compressed message only.
    let rsv1 = compressed;
    if (this.sendingFragments) {
      opcode = Opcode.CONTINUATION;
      rsv1 = false;
    }
    this.sendingFragments = !fin;
    const payload = toBuffer(value);
    this.frame(opcode, payload, fin, cb, rsv1);
    const host = this.host;
    if (host !== undefined) {
      if (fin) host.counters.messagesOut++;
      host.counters.bytesOut += payload.length;
    }
    if (fin && this.heldFrames !== undefined) this.releaseHeldFrames();
  }

  /**
   * Slow-consumer policy: with more than `maxBufferedAmount` bytes offered to this peer in
   * earlier event-loop turns still unwritten, a new message is dropped (counted, `drop` event)
   * or the connection is closed with 1013, so one reader that stopped reading cannot grow the
   * server's memory beyond the limit plus one turn's burst. What this turn wrote is not
   * judged: the kernel has not been offered it yet, and a fast reader takes it at once.
   */
  private admit(): boolean {
    const host = this.host!;
    if (this.socket === undefined || this.staleBacklog <= host.maxBufferedAmount) return true;
    if (host.slowConsumer === 'drop') {
      this.droppedMessages++;
      host.counters.dropped++;
      if (this.listenerCount('drop') > 0) this.emitSafely('drop', this.backlog);
      return false;
    }
    if (!this.closeSent) {
      host.counters.slowConsumersClosed++;
      this.startClose(CloseCode.TRY_AGAIN_LATER, Buffer.from('slow consumer'));
    }
    return false;
  }

  // ---- sendEncoded / writeShared: a message framed once for many connections ----------------

  /**
   * Write a frame encoded once for many connections (publish, broadcast: push/'s Subscriber
   * interface). Server side only: the bytes are unmasked. Subject to the slow-consumer policy;
   * held back while this connection is in the middle of a fragmented send. Returns false when
   * not written.
   *
   * Public because the Hub's methods take a `Subscriber` (`wss.hub.subscribe(ws, topic)`), and
   * a WebSocket is one through this method; applications send with `send`, `publish` and
   * `broadcast`.
   */
  sendEncoded(message: SharedMessage): boolean {
    if (!canSend(this.wire)) return false;
    if (!this.admit()) return false;
    if (this.queue?.active) {
      // Behind a Blob being read or a message being compressed: wait in line, as the same
      // shared message (never merged into a fragmented message that is still being sent).
      this.queue.sendShared(message);
      return true;
    }
    this.writeShared(message);
    return true;
  }

  /** Write (or hold, during a fragmented send) a shared message. @internal */
  writeShared(message: SharedMessage): void {
    if (this.closeSent || this.readyState === CLOSED) return;
    const payloadLength = message.payload.length;
    const deflate = this.deflate;
    let frame: EncodedFrame;
    if (deflate !== undefined && message.shouldCompress(deflate)) {
      frame = message.compressedFrame(deflate);
      deflate.sharedFrameSent();
    } else {
      frame = message.frame;
    }
    if (this.sendingFragments) {
      (this.heldFrames ??= []).push([frame, payloadLength]);
      this.heldBytes += payloadLength;
    } else {
      this.write(frame, payloadLength);
    }
    const counters = this.host!.counters;
    counters.messagesOut++;
    counters.bytesOut += payloadLength;
  }

  private releaseHeldFrames(): void {
    const held = this.heldFrames!;
    this.heldFrames = undefined;
    this.heldBytes = 0;
    for (const [frame, payloadLength] of held) this.write(frame, payloadLength);
  }

  // ---- frame / write: onto the wire --------------------------------------------------------

  /** Encode one frame for this side (masked when we are the client) and write it. @internal */
  frame(opcode: number, payload: Uint8Array, fin: boolean, cb?: SendCallback, rsv1 = false): void {
    this.write(encodeFrame(opcode, payload, { fin, mask: !this.options.isServer, rsv1 }), payload.length, cb);
  }

  /** Write an encoded frame: small ones join this turn's batch, large ones go to the corked socket. */
  private write(frame: EncodedFrame, payloadLength: number, cb?: Callback): void {
    if (!Array.isArray(frame) && frame.length <= SMALL_FRAME) {
      this.batchSmall(frame, payloadLength, cb);
      return;
    }
    const socket = this.corkSocket();
    this.headerBytes += Array.isArray(frame) ? frame[0].length : frame.length - payloadLength;
    this.batchSlot!.turnBytes += Array.isArray(frame) ? frame[0].length + frame[1].length : frame.length;
    if (Array.isArray(frame)) {
      socket.write(frame[0]);
      socket.write(frame[1], cb);
    } else {
      socket.write(frame, cb);
    }
  }

  /**
   * Small frames of one event-loop turn are collected in the turn's batch and written as one
   * buffer when the turn ends: one write request per socket per turn, without a writev of many
   * tiny chunks or the stream's per-chunk bookkeeping. (A frame shared by many connections is
   * copied only when a connection has several frames in the turn.)
   */
  private batchSmall(frame: Buffer, payloadLength: number, cb: Callback | undefined): void {
    if (this.socket === undefined || this.socket.destroyed) {
      if (cb !== undefined) this.notOpen(cb);
      return;
    }
    const slot = batchSlotOf(this, this.options.writeDelay ?? 0);
    slot.frames.push(frame);
    slot.bytes += frame.length;
    slot.payloadBytes += payloadLength;
    if (cb !== undefined) (slot.callbacks ??= []).push(cb);
  }

  /** Write the turn's small frames now (before any other write, and before ending TCP). @internal */
  flushSmall(): void {
    const slot = this.batchSlot;
    if (slot === undefined || slot.frames.length === 0) return;
    const frames = slot.frames;
    let data: Buffer;
    // One frame a turn is the common case (a fan-out): pop is cheaper than setting the length.
    if (frames.length === 1) data = frames.pop()!;
    else {
      data = Buffer.concat(frames, slot.bytes);
      frames.length = 0;
    }
    const socket = this.socket;
    // Header bytes are counted since the socket's buffer was last empty (see bufferedAmount).
    if (socket !== undefined && socket.writableLength === 0) this.headerBytes = 0;
    this.headerBytes += slot.bytes - slot.payloadBytes;
    slot.bytes = 0;
    slot.payloadBytes = 0;
    const callbacks = slot.callbacks;
    slot.callbacks = undefined;
    if (socket === undefined || !socket.writable) {
      if (callbacks !== undefined) for (const cb of callbacks) this.notOpen(cb);
      return;
    }
    slot.turnBytes += data.length;
    socket.write(
      data,
      callbacks === undefined
        ? undefined
        : (err?: Error | null) => {
            for (const cb of callbacks) cb(err);
          },
    );
  }

  /** Cork the socket for a large write this turn (uncorked with the batch), after the small frames. */
  private corkSocket(): OwnedSocket {
    this.flushSmall();
    const socket = this.socket!;
    if (socket.writableLength === 0) this.headerBytes = 0;
    const slot = batchSlotOf(this, this.options.writeDelay ?? 0);
    if (!slot.socketCorked) {
      slot.socketCorked = true;
      socket.cork();
    }
    return socket;
  }

  /** The turn ended (write-batch.ts): write what it collected and uncork. @internal */
  flushTurn(slot: BatchSlot): void {
    this.flushSmall();
    if (slot.socketCorked) this.socket?.uncork();
    // A write the kernel takes whole completes synchronously: it emits no 'drain', so reading
    // paused for this turn's replies must be resumed here, or it would stay paused for good.
    if (this.readPausedForWrites) this.writesDrained();
  }

  /** End TCP after whatever this turn still has to write. @internal */
  endSocket(socket: OwnedSocket): void {
    this.flushSmall();
    socket.end();
  }

  // ---- reading paused while too much waits to be written ------------------------------------

  /** The socket drained, or the send queue moved on: reading may resume. @internal */
  writesDrained(): void {
    if (!this.readPausedForWrites) return;
    if (this.backlog + this.queuedBytes > READ_PAUSE_BYTES) return;
    this.readPausedForWrites = false;
    this.resumeReading();
  }

  /** Read from the socket again unless something still holds reading. @internal */
  resumeReading(): void {
    if (!this.userPaused && !this.readPausedForWrites && !this.inflating) this.socket?.resume();
  }
}
