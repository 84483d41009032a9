/**
 * The state every connection carries and the helpers every concern uses. The connection is
 * one class split by concern over a chain of classes, one file each; a connection is still
 * one object (its fields are all declared here, so every connection has the same shape) and
 * the methods live on the prototypes, so the split costs nothing per connection:
 *
 *   connection-core.ts  fields, yes/no flags as bits, the wire state, event helpers
 *   write-path.ts       send -> frame -> write, this turn's batch, backpressure, slow consumers
 *   receive-path.ts     the parser's events: inflate, deliver, ping and pong, reading paused
 *   closing.ts          the closing handshake (decided by protocol/connection-state.ts),
 *                       failing the connection, teardown
 *   connection.ts       WebSocket: the public API (constructor, binaryType, topics, events)
 */
import type { Duplex } from 'node:stream';
import { CloseCode } from '../protocol/close-codes.js';
import {
  CLOSE_RECEIVED,
  CLOSE_SENT,
  readyStateOf,
  wasClean,
  type ReadyState,
  type WireState,
} from '../protocol/connection-state.js';
import type { EncodedFrame } from '../protocol/frame.js';
import type { FrameParser } from '../protocol/parser.js';
import type { MessageDeflate } from './deflate.js';
import { WsEventTarget } from './event-target.js';
import type { ConnectionHost } from './host.js';
import type { SendQueue } from './send-queue.js';
import type { OwnedSocket } from './socket-listeners.js';
import type { BatchSlot } from './write-batch.js';
import {
  codedError,
  DEFAULT_CONNECTION_OPTIONS,
  EMPTY,
  type BinaryType,
  type Callback,
  type CodedError,
  type ConnectionOptions,
} from './connection-types.js';

/** The yes/no state of a connection, one bit each of `flags` (accessors installed below). */
const FLAG_NAMES = [
  'sendingFragments',
  'errorEmitted',
  'readPausedForWrites',
  'heardFrom',
  'messageSeen',
  'pingOutstanding',
  'userPaused',
  'whatwg',
  'inflating',
  'droppingFragments',
  'droppingCompressed',
  'binaryTypeSet',
  'slowConsumerSends',
] as const;
/** heardFrom and messageSeen start true; every other flag false. */
const INITIAL_FLAGS = (1 << FLAG_NAMES.indexOf('heardFrom')) | (1 << FLAG_NAMES.indexOf('messageSeen'));

const STATE_NAMES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];

export abstract class ConnectionCore extends WsEventTarget {
  /** The subprotocol the server selected ('' if none). */
  protocol = '';
  /** The extensions the server accepted, as a header value ('' if none). */
  extensions = '';
  /** The URL (client side); '' on the server side. */
  url = '';
  /** Messages skipped because this connection's backlog was over `maxBufferedAmount` (policy 'drop'). */
  droppedMessages = 0;

  /**
   * readyState and the closing handshake's progress (protocol/connection-state.ts): one
   * number, changed only by that module's transitions.
   * @internal
   */
  wire: WireState = 0;
  /** The yes/no state, one bit each (FLAG_NAMES): one field instead of thirteen. @internal */
  flags = INITIAL_FLAGS;
  /** @internal */ parser: FrameParser | undefined;
  /** @internal */ socket: OwnedSocket | undefined;
  /** @internal */ options: ConnectionOptions = DEFAULT_CONNECTION_OPTIONS;
  /** permessage-deflate, when negotiated. @internal */ deflate: MessageDeflate | undefined;
  /** The server's counters, policy and topic routing (server side only). @internal */ host: ConnectionHost | undefined;
  /** @internal */ binary: BinaryType = 'nodebuffer';
  /** The origin reported in WHATWG MessageEvents (client side). @internal */ origin = '';
  /** The close code and reason the `close` event reports. @internal */ closeCode: number = CloseCode.ABNORMAL_CLOSURE;
  /** @internal */ closeReason: Buffer = EMPTY;
  /** This turn's share of the write batch (write-batch.ts), or undefined. @internal */ batchSlot:
    BatchSlot | undefined;
  /** Frame header bytes written since the socket's buffer was last empty (see bufferedAmount). @internal */ headerBytes = 0;
  /** Bytes passed to send() after closing: the WHATWG standard counts them in bufferedAmount. @internal */ discarded = 0;
  /** Sends waiting behind a Blob being read or a message being compressed, in call order. @internal */ queue:
    SendQueue | undefined;
  /** Shared frames waiting for a fragmented send to finish, with their payload sizes. @internal */ heldFrames:
    Array<[EncodedFrame, number]> | undefined;
  /** @internal */ heldBytes = 0;
  /** Whether the fragmented message being sent (as send() sees it) is compressed. @internal */ outgoingCompressed:
    boolean | undefined;
  /** TCP ended (1) or closed (2) while inflating: handled once the message was delivered. @internal */ deferredSocketEvents = 0;
  /** Client side: cancels the opening handshake. @internal */ cancelHandshake: (() => void) | undefined;
  /** Sweep bookkeeping (sweep.ts). @internal */ lastHeard = 0;
  /** @internal */ lastMessage = 0;
  /** Bytes waiting to be written at the last sweep (a peer that drains them is alive). @internal */ lastBacklog = 0;
  /** When the sweep first saw a fragmented message being assembled (0: none). @internal */ assemblySeen = 0;

  // The flags, read and written as ordinary properties (accessors on the prototype).
  /** A fragmented message is being sent: its continuation frames come next. @internal */ declare sendingFragments: boolean;
  /** @internal */ declare errorEmitted: boolean;
  /** Reading paused because too much waits to be written. @internal */ declare readPausedForWrites: boolean;
  /** Set on every read; the heartbeat sweep clears it. @internal */ declare heardFrom: boolean;
  /** Set on every message; the idle sweep clears it. @internal */ declare messageSeen: boolean;
  /** @internal */ declare pingOutstanding: boolean;
  /** pause() is in effect. @internal */ declare userPaused: boolean;
  /** Client side: created with a URL, so the WHATWG rules for close() and send() apply. @internal */ declare whatwg: boolean;
  /** A received message is being inflated: reading and parsing wait for it. @internal */ declare inflating: boolean;
  /** The slow-consumer policy dropped the first fragment of the message being sent. @internal */ declare droppingFragments: boolean;
  /** @internal */ declare droppingCompressed: boolean;
  /**
   * binaryType was assigned. Until then a client's 'blob' (the browsers' default) applies to
   * WHATWG listeners only: ws-style `message` listeners get a Buffer, as ws gives them.
   * @internal
   */
  declare binaryTypeSet: boolean;
  /**
   * Server side: `send()` on this connection is subject to the server's slow-consumer policy
   * (`maxBufferedAmount` / `slowConsumer`), as publish and broadcast always are. Default
   * false: as in ws, `send()` queues whatever the application gives it, and the application
   * watches `bufferedAmount` itself.
   */
  declare slowConsumerSends: boolean;

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  get readyState(): ReadyState {
    return readyStateOf(this.wire);
  }

  /** True when this connection is the server side. */
  get isServer(): boolean {
    return this.options.isServer;
  }

  /** The underlying socket (as ws's `_socket`, e.g. for `ws._socket.remoteAddress`). */
  get _socket(): Duplex | undefined {
    return this.socket;
  }

  /** True when both Close frames were exchanged. */
  get wasClean(): boolean {
    return wasClean(this.wire);
  }

  /** @internal */
  get closeSent(): boolean {
    return (this.wire & CLOSE_SENT) !== 0;
  }

  /** @internal */
  protected get closeFrameReceived(): boolean {
    return (this.wire & CLOSE_RECEIVED) !== 0;
  }

  /**
   * Emit an event whose listeners' exceptions must not escape into socket or timer callbacks
   * (where they would crash the process): they are reported as process warnings, as browsers
   * report exceptions in event handlers and carry on.
   * @internal
   */
  emitSafely(event: string, ...args: unknown[]): void {
    // Each listener on its own: one that throws does not keep the others from running.
    for (const listener of this.rawListeners(event) as Array<(...a: unknown[]) => void>) {
      try {
        listener.apply(this, args);
      } catch (err) {
        process.emitWarning(err instanceof Error ? err : String(err));
      }
    }
  }

  /** Emit `error` once per connection, and only to listeners that exist. @internal */
  emitError(err: Error): void {
    if (this.errorEmitted) return;
    this.errorEmitted = true;
    // A server must survive bad peers even when the application attached no error listener,
    // so `error` is only emitted to listeners that exist (EventEmitter would throw otherwise).
    if (this.listenerCount('error') === 0) return;
    try {
      this.emit('error', err);
    } catch (thrown) {
      process.emitWarning(thrown instanceof Error ? thrown : String(thrown));
    }
  }

  /** Call `cb` (asynchronously) with the error for a send on a connection that is not open. @internal */
  notOpen(cb: Callback): void {
    const state = this.readyState;
    process.nextTick(
      cb,
      codedError('WS_ERR_NOT_OPEN', `WebSocket is not open: readyState ${state} (${STATE_NAMES[state]})`),
    );
  }

  // Implemented by the layers above (closing.ts); declared here so every layer can use them.

  /** Fail the connection (RFC 6455 7.1.7) with `err`, sending `closeCode`. @internal */
  abstract failWithError(err: CodedError, closeCode: number): void;
  /** A listener threw while this connection dispatched an event. @internal */
  abstract onListenerError(cause: unknown): void;
  /** Start the closing handshake with `code` and `reason` (a policy close, an echo). @internal */
  abstract startClose(code: number | undefined, reason: Uint8Array): void;
  /** The peer half-closed TCP. @internal */
  abstract onSocketEnd(): void;
  /** TCP is gone. @internal */
  abstract onSocketClose(): void;
}

// The flags, stored as bits of `flags` behind accessors on the prototype.
FLAG_NAMES.forEach((name, bit) => {
  const mask = 1 << bit;
  Object.defineProperty(ConnectionCore.prototype, name, {
    get(this: ConnectionCore): boolean {
      return (this.flags & mask) !== 0;
    },
    set(this: ConnectionCore, on: boolean) {
      this.flags = on ? this.flags | mask : this.flags & ~mask;
    },
  });
});
