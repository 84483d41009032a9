/**
 * Closing a connection: the closing handshake, failing the connection, the socket's end, and
 * the teardown when TCP is gone. What happens is decided by protocol/connection-state.ts (the
 * sans-I/O state machine: who sends a Close, when TCP ends, when the close timer starts);
 * this layer performs its actions on the socket, the timers and the send queue.
 */
import { closeCodeIsSendable, CloseCode } from '../protocol/close-codes.js';
import {
  Action,
  CLOSED,
  CLOSING,
  CONNECTING,
  closingHeld,
  fail,
  receiveClose,
  receiveEof,
  startClosing,
  tcpClosed,
  terminate,
} from '../protocol/connection-state.js';
import { encodeClosePayload } from '../protocol/frame.js';
import { Opcode } from '../protocol/opcodes.js';
import { isValidUtf8 } from '../protocol/utf8.js';
import { clampUnsignedShort, codedError, EMPTY, type CodedError } from './connection-types.js';
import { deadlines } from './deadlines.js';
import { ReceivePath } from './receive-path.js';
import { kConnection, socketOnData } from './socket-listeners.js';

// An Expirable (deadlines.ts), but not declared `implements Expirable`: expire() is marked
// internal, so the published .d.ts (built with stripInternal) would declare a class that does
// not implement it. `deadlines.add(this, ...)` checks the shape.
export abstract class Closing extends ReceivePath {
  /**
   * Start the closing handshake. `code` must be 1000, 1001-1003, 1007-1014 or 3000-4999;
   * `reason` at most 123 bytes of UTF-8. A second call while closing does nothing.
   */
  close(code?: number, reason?: string | Buffer): void {
    if (this.whatwg) {
      // The browser API's rules: `[Clamp] unsigned short` (round half to even, clamp), then
      // only 1000 and 3000-4999 are the application's to send.
      if (code !== undefined) code = clampUnsignedShort(code);
      if (code !== undefined && code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
        throw new DOMException(`The close code must be 1000 or in 3000-4999, not ${code}`, 'InvalidAccessError');
      }
    } else if (code !== undefined && !closeCodeIsSendable(code)) {
      throw new TypeError(`Invalid close code: ${code} (use 1000, 1001-1003, 1007-1014 or 3000-4999)`);
    }
    const reasonBytes =
      reason === undefined ? EMPTY : typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason;
    if (typeof reason !== 'string' && reason !== undefined && !isValidUtf8(reasonBytes)) {
      throw new TypeError('The close reason must be valid UTF-8');
    }
    if (reasonBytes.length > 123) {
      if (this.whatwg)
        throw new DOMException('The close reason must not be greater than 123 bytes of UTF-8', 'SyntaxError');
      throw new RangeError('The close reason must not be greater than 123 bytes');
    }
    if (code === undefined && reasonBytes.length > 0) code = CloseCode.NORMAL;
    const ready = this.readyState;
    // Closing already (a Close sent or queued behind messages still being compressed, the
    // peer's FIN, terminate()): nothing to do, as in ws and browsers. A second close() must
    // not send its Close ahead of what the first one queued.
    if (ready === CLOSING || ready === CLOSED) return;
    if (ready === CONNECTING) {
      this.abortConnecting();
      return;
    }
    if (this.queue?.active) {
      // CLOSING at once (later sends are discarded); the Close frame follows what was queued.
      this.wire = closingHeld(this.wire);
      this.queue.close(code, reasonBytes);
      return;
    }
    this.startClose(code, reasonBytes);
  }

  /** Destroy the socket at once, without a closing handshake (close code 1006). */
  terminate(): void {
    if (this.readyState === CONNECTING) {
      this.abortConnecting();
      return;
    }
    const { state, actions } = terminate(this.wire);
    this.wire = state;
    if (actions & Action.DESTROY_TCP) this.socket?.destroy();
  }

  /** Client side: abandon an unfinished opening handshake (error, then close 1006). */
  private abortConnecting(): void {
    if (this.cancelHandshake) this.cancelHandshake();
    else this.wire = tcpClosed(this.wire);
  }

  /**
   * Start the closing handshake now (RFC 6455 7.1.2): the application's close(), a policy
   * close, or the echo of the peer's Close. Once only.
   * @internal
   */
  startClose(code: number | undefined, reason: Uint8Array): void {
    const { state, actions } = startClosing(this.wire);
    this.wire = state;
    if ((actions & Action.SEND_CLOSE) === 0) return;
    this.sendingFragments = false;
    const socket = this.socket;
    if (socket === undefined) return;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    this.frame(Opcode.CLOSE, encodeClosePayload(code, reason), true);
    // Handshake complete on the server side: it closes TCP first (7.1.1).
    if (actions & Action.END_TCP) this.endSocket(socket);
    if (actions & Action.ARM_CLOSE_TIMER) deadlines.add(this, this.options.closeTimeout);
  }

  /** The close handshake timed out: drop TCP. @internal */
  expire(): void {
    this.socket?.destroy();
  }

  /** The peer's Close frame (FrameParserHandler). @internal */
  onClose(code: number, reason: Buffer): void {
    const { state, actions } = receiveClose(this.wire);
    if (state === this.wire) return;
    this.wire = state;
    this.closeCode = code;
    this.closeReason = reason;
    if (actions & Action.END_TCP && this.socket !== undefined) this.endSocket(this.socket);
    if ((actions & Action.ECHO_CLOSE) === 0) return;
    // Echo the peer's code (RFC 6455 section 5.5.1); a close without a code is echoed without one.
    const echo = code === CloseCode.NO_STATUS_RECEIVED ? undefined : code;
    if (this.queue?.active) {
      // Messages sent before the peer's Close arrived (still being compressed, or behind a
      // Blob) go out first; nothing sent from now on does.
      this.queue.close(echo, EMPTY);
      return;
    }
    this.startClose(echo, EMPTY);
  }

  /**
   * Fail the connection (RFC 6455 section 7.1.7): emit `error`, send a Close frame with
   * `closeCode`, and close TCP without waiting for the peer's Close.
   * @internal
   */
  failWithError(err: CodedError, closeCode: number): void {
    this.parser?.stop();
    this.emitError(err);
    const socket = this.socket;
    if (!socket) return;
    const { state, actions } = fail(this.wire);
    this.wire = state;
    if (actions & Action.SEND_CLOSE && socket.writable)
      this.frame(Opcode.CLOSE, encodeClosePayload(closeCode, ''), true);
    if (actions & Action.END_TCP) this.endSocket(socket);
    if (actions & Action.ARM_CLOSE_TIMER) deadlines.add(this, this.options.closeTimeout);
  }

  /** A listener threw while this connection dispatched an event. @internal */
  onListenerError(cause: unknown): void {
    const err = codedError(
      'WS_ERR_UNEXPECTED_CONDITION',
      `a listener threw: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
    (err as CodedError & { cause: unknown }).cause = cause;
    if (this.listenerCount('error') === 0 || this.errorEmitted) {
      // Nobody would hear of it otherwise; the process keeps running.
      process.emitWarning(err);
    }
    this.closeCode = CloseCode.INTERNAL_ERROR;
    this.failWithError(err, CloseCode.INTERNAL_ERROR);
  }

  // ---- socket events ------------------------------------------------------------------------

  /** The peer half-closed TCP. @internal */
  onSocketEnd(): void {
    if (this.inflating) {
      this.deferredSocketEvents |= 1;
      return;
    }
    const { state, actions } = receiveEof(this.wire);
    this.wire = state;
    if (actions & Action.STOP_READING) this.parser?.stop();
    const socket = this.socket;
    if (this.queue?.active) {
      // Replies still being compressed (or Blobs read) go out before our FIN.
      this.queue.end();
    } else if (actions & Action.END_TCP && socket !== undefined && !socket.writableEnded) {
      // Usually our FIN went out already (after the closing handshake); ending twice only
      // makes Node build an error object.
      this.endSocket(socket);
    }
    // Our FIN may wait behind data the peer never reads: do not wait for it forever.
    if (actions & Action.ARM_CLOSE_TIMER) deadlines.add(this, this.options.closeTimeout);
  }

  /** TCP is gone: the connection is closed. @internal */
  onSocketClose(): void {
    if (this.readyState === CLOSED) return;
    if (this.inflating) {
      // The message being inflated arrived before the connection ended: deliver it first.
      this.deferredSocketEvents |= 2;
      return;
    }
    this.wire = tcpClosed(this.wire);
    this.host?.pubsub?.unsubscribeAll(this);
    this.heldFrames = undefined;
    // Frames still collected for this turn cannot be written any more: their callbacks get
    // an error (the socket is not writable).
    this.flushSmall();
    deadlines.delete(this);
    this.parser?.stop();
    this.deflate?.release();
    const socket = this.socket;
    if (socket) {
      socket.removeListener('data', socketOnData);
      socket[kConnection] = undefined;
    }
    this.emitSafely('close', this.closeCode, this.closeReason);
  }
}
