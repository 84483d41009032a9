/**
 * The event objects of the WHATWG WebSocket API (`onmessage`, `addEventListener`), kept small:
 * they are created only when such a listener exists.
 */

/** A plain event (`open`). */
export class WsEvent {
  /** The event type: 'open', 'message', 'error', 'close', or what `dispatchEvent` was given. */
  readonly type: string;
  /** The WebSocket that dispatched it. */
  readonly target: unknown;
  constructor(type: string, target: unknown) {
    this.type = type;
    this.target = target;
  }
  /** The same as `target` (a WebSocket is not in a tree of event targets). */
  get currentTarget(): unknown {
    return this.target;
  }
}

/** A `message` event: `data` is a string for text, else per `binaryType`. */
export class WsMessageEvent extends WsEvent {
  /** The message: a string for text; for binary, per `binaryType` (Blob, ArrayBuffer, Buffer or Buffer[]). */
  readonly data: unknown;
  /** The origin of the WebSocket URL (client side; '' on the server side). */
  readonly origin: string;
  /** Always '' (MessageEvent's field for server-sent events). */
  readonly lastEventId = '';
  /** Always empty (MessageEvent's field for message channels). */
  readonly ports: readonly never[] = [];
  /** Always null (MessageEvent's field for windows and workers). */
  readonly source = null;
  constructor(target: unknown, data: unknown, origin = '') {
    super('message', target);
    this.data = data;
    this.origin = origin;
  }
}

/** A `close` event. `wasClean` is true when both Close frames were exchanged. */
export class WsCloseEvent extends WsEvent {
  /** The close code: the peer's, 1005 if its Close had none, 1006 if no Close frame arrived. */
  readonly code: number;
  /** The close reason, as text ('' if none). */
  readonly reason: string;
  /** True when both Close frames were exchanged. */
  readonly wasClean: boolean;
  constructor(target: unknown, code: number, reason: string, wasClean: boolean) {
    super('close', target);
    this.code = code;
    this.reason = reason;
    this.wasClean = wasClean;
  }
}

/** An `error` event, carrying the `Error` (with its `code` string) as `error`. */
export class WsErrorEvent extends WsEvent {
  /** The error, with its `code` string (docs/errors.md). */
  readonly error: Error;
  /** The error's message. */
  readonly message: string;
  constructor(target: unknown, error: Error) {
    super('error', target);
    this.error = error;
    this.message = error.message;
  }
}
