/**
 * The event objects of the WHATWG WebSocket API (`onmessage`, `addEventListener`), kept small:
 * they are created only when such a listener exists.
 */

/** A plain event (`open`). */
export class WsEvent {
  readonly type: string;
  readonly target: unknown;
  constructor(type: string, target: unknown) {
    this.type = type;
    this.target = target;
  }
  get currentTarget(): unknown {
    return this.target;
  }
}

/** A `message` event: `data` is a string for text, else per `binaryType`. */
export class WsMessageEvent extends WsEvent {
  readonly data: unknown;
  /** The origin of the WebSocket URL (client side; '' on the server side). */
  readonly origin: string;
  readonly lastEventId = '';
  readonly ports: readonly never[] = [];
  readonly source = null;
  constructor(target: unknown, data: unknown, origin = '') {
    super('message', target);
    this.data = data;
    this.origin = origin;
  }
}

/** A `close` event. `wasClean` is true when both Close frames were exchanged. */
export class WsCloseEvent extends WsEvent {
  readonly code: number;
  readonly reason: string;
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
  readonly error: Error;
  readonly message: string;
  constructor(target: unknown, error: Error) {
    super('error', target);
    this.error = error;
    this.message = error.message;
  }
}
