/**
 * The receive path of a connection: the FrameParser's events (a message, a Ping, a Pong, a
 * protocol error), permessage-deflate's inflation, delivery to listeners in both event styles,
 * and reading paused and resumed (by the application, while inflating, or while too much
 * waits to be written). The Close frame and the socket's end are the closing handshake's
 * (closing.ts).
 */
import { CloseCode } from '../protocol/close-codes.js';
import { canSend, CLOSED, CONNECTING, OPEN } from '../protocol/connection-state.js';
import type { ProtocolError } from '../protocol/errors.js';
import { Opcode } from '../protocol/opcodes.js';
import { isValidUtf8 } from '../protocol/utf8.js';
import { codedError, toArrayBuffer, type RawData } from './connection-types.js';
import type { DeflateError } from './deflate.js';
import { WritePath } from './write-path.js';

// The message being dispatched with a client's default 'blob' (see deliverMessage), and the
// Blob its WHATWG listeners share (made by the first of them, see whatwgMessageData).
let lastBlobOwner: ReceivePath | undefined;
let lastBlobSource: Buffer | undefined;
let lastBlob: Blob | undefined;

// The FrameParserHandler (with closing.ts's onClose), but not declared `implements`: its members
// are marked internal, so the published .d.ts (built with stripInternal) would declare a class
// that does not implement it. `new FrameParser(this, ...)` (connection.ts) checks the shape.
export abstract class ReceivePath extends WritePath {
  /** Stop reading from the peer (messages wait in the kernel; TCP flow control slows the peer). */
  pause(): void {
    if (this.readyState === CONNECTING || this.readyState === CLOSED) return;
    this.userPaused = true;
    this.socket?.pause();
  }

  /** Resume reading after pause(). */
  resume(): void {
    if (this.readyState === CONNECTING || this.readyState === CLOSED) return;
    this.userPaused = false;
    this.resumeReading();
  }

  /** True while pause() is in effect. */
  get isPaused(): boolean {
    return this.userPaused;
  }

  // ---- parser events (FrameParserHandler) --------------------------------------------------

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void {
    if (compressed) {
      this.inflate(data, isBinary);
      return;
    }
    this.deliverMessage(data, isBinary);
  }

  /** @internal */
  onPing(data: Buffer): void {
    if (this.options.autoPong && canSend(this.wire)) this.frame(Opcode.PONG, data, true);
    this.emit('ping', data);
  }

  /** @internal */
  onPong(data: Buffer): void {
    this.emit('pong', data);
  }

  /** @internal */
  onProtocolError(err: ProtocolError): void {
    this.closeCode = err.closeCode;
    this.failWithError(err, err.closeCode);
  }

  // ---- inflate -----------------------------------------------------------------------------

  /**
   * Inflate a compressed message. zlib works asynchronously, so parsing and reading pause
   * until the message is delivered: what came behind it (a Close included) is handled after it.
   */
  private inflate(data: Buffer, isBinary: boolean): void {
    this.parser!.pause();
    this.inflating = true;
    this.socket?.pause();
    this.deflate!.decompress(data, (err, out) => this.inflated(err, out, isBinary));
  }

  private inflated(err: DeflateError | null, data: Buffer | undefined, isBinary: boolean): void {
    this.inflating = false;
    try {
      if (err !== null) {
        // WS_ERR_NOT_OPEN: the connection went away meanwhile; nothing to report.
        if (err.code !== 'WS_ERR_NOT_OPEN' && this.readyState !== CLOSED) {
          this.closeCode = err.closeCode;
          this.failWithError(err, err.closeCode);
        }
      } else if (!isBinary && !isValidUtf8(data!)) {
        this.closeCode = CloseCode.INVALID_PAYLOAD;
        this.failWithError(
          codedError('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in text message'),
          CloseCode.INVALID_PAYLOAD,
        );
      } else {
        this.deliverMessage(data!, isBinary);
        this.parser?.resume();
      }
    } catch (thrown) {
      this.onListenerError(thrown);
    }
    if (this.inflating) return;
    this.resumeReading();
    const deferred = this.deferredSocketEvents;
    this.deferredSocketEvents = 0;
    if (deferred & 1) this.onSocketEnd();
    if (deferred & 2) this.onSocketClose();
  }

  // ---- delivery ----------------------------------------------------------------------------

  private deliverMessage(data: Buffer, isBinary: boolean): void {
    // As in ws, messages that arrive after close() was called (before the peer's Close) are
    // still delivered to `message` listeners; WHATWG listeners drop them (event-target.ts).
    if (this.readyState === CLOSED) return;
    this.whatwgDispatch = this.readyState === OPEN;
    this.messageSeen = true;
    const host = this.host;
    if (host !== undefined) {
      host.counters.messagesIn++;
      host.counters.bytesIn += data.length;
    }
    let value: RawData = data;
    if (isBinary) {
      switch (this.binary) {
        case 'arraybuffer':
          value = toArrayBuffer(data);
          break;
        case 'fragments':
          value = [data];
          break;
        case 'blob':
          // The default 'blob' of a client: WHATWG listeners make the Blob (whatwgMessageData).
          if (this.binaryTypeSet) {
            value = new Blob([data]);
            break;
          }
          {
            // Saved and put back: a listener may cause another delivery synchronously.
            const outerOwner = lastBlobOwner;
            const outerSource = lastBlobSource;
            const outerBlob = lastBlob;
            // eslint-disable-next-line @typescript-eslint/no-this-alias -- a module-level slot naming the delivering connection, not a closure's alias
            lastBlobOwner = this;
            lastBlobSource = data;
            lastBlob = undefined;
            try {
              this.emit('message', value, isBinary);
            } finally {
              // Not kept beyond this message.
              lastBlobOwner = outerOwner;
              lastBlobSource = outerSource;
              lastBlob = outerBlob;
            }
          }
          return;
      }
    }
    this.emit('message', value, isBinary);
  }

  /** @internal */
  protected override whatwgMessageData(data: RawData): unknown {
    // Decided when the message was delivered, not by binaryType now: a listener that assigns
    // binaryType changes later messages, not what this one's other listeners get.
    if (lastBlobOwner !== this || lastBlobSource !== data) return data;
    // One Blob per message, shared by every WHATWG listener (dispatch is synchronous).
    return (lastBlob ??= new Blob([data]));
  }
}
