/**
 * The error catalogue: every `code` duet's Node side (protocol/, node/, push/) can give an error,
 * the class it comes as, the close code or HTTP status it goes with and what it means, in one
 * table; the classes users catch with `instanceof`; and `createError`, which builds the right
 * class from a code. docs/errors.md documents the same table (a test keeps them equal). The
 * browser client cannot import this file (its build stops at src/browser); its codes are in
 * src/browser/errors.ts.
 *
 *   DuetError                  every error duet makes (also the browser client's, see below)
 *   ├── HandshakeError         the opening handshake failed or was refused (`status`)
 *   ├── ProtocolError          the peer broke RFC 6455 (`closeCode`)
 *   │   └── LimitExceededError a configured or hard limit was passed (1009)
 *   └── ConnectionClosedError  the connection is not open (any more)
 *
 * Codes follow `ws` where `ws` has the same condition (`WS_ERR_INVALID_UTF8`), and the same
 * `WS_ERR_*` style where it has none. `ABORT_ERR` is Node's own code for an aborted operation.
 *
 * Why one file of ~420 lines: most of it is the catalogue, one row per code; the table, the
 * types derived from it and the classes createError builds from it change together (and
 * test/protocol/errors.test.ts compares the table with docs/errors.md).
 */
import type { HeaderFields } from './header-fields.js';

/** The classes a catalogued error can come as. */
export type DuetErrorClassName =
  | 'DuetError'
  | 'HandshakeError'
  | 'ProtocolError'
  | 'LimitExceededError'
  | 'ConnectionClosedError'
  | 'TypeError'
  | 'RangeError';

/** One row of the catalogue. */
export interface ErrorInfo {
  /** The class the error comes as. TypeError/RangeError: a wrong argument, thrown to the caller. */
  readonly class: DuetErrorClassName;
  /** The close code the connection is failed with, where the error fails one. */
  readonly closeCode?: number;
  /** The HTTP status answered (server) or received (client), where there is a fixed one. */
  readonly status?: number;
  /** What happened, in one line. */
  readonly meaning: string;
}

export const ERROR_CODES = {
  // The opening handshake: refused by duet's server (reported on `wsClientError`) or failed
  // on duet's client (`error`, then `close` 1006).
  WS_ERR_HANDSHAKE: {
    class: 'HandshakeError',
    meaning:
      'the server refused a malformed upgrade request (err.status 400, 405 or 426) or handleProtocols chose a subprotocol not offered (500)',
  },
  WS_ERR_CLIENT_REJECTED: {
    class: 'HandshakeError',
    status: 401,
    meaning: 'verifyClient refused the handshake (err.status: 401 or the status it chose)',
  },
  WS_ERR_ORIGIN_NOT_ALLOWED: {
    class: 'HandshakeError',
    status: 403,
    meaning: 'the Origin header is not allowed by allowOrigins',
  },
  WS_ERR_TOO_MANY_CONNECTIONS: { class: 'HandshakeError', status: 503, meaning: 'the server is at maxConnections' },
  WS_ERR_CONNECT: {
    class: 'HandshakeError',
    meaning:
      'the client could not reach the server (a network error without a system code; others keep theirs, e.g. ECONNREFUSED)',
  },
  WS_ERR_HANDSHAKE_TIMEOUT: {
    class: 'HandshakeError',
    meaning: 'no complete opening handshake within handshakeTimeout',
  },
  ABORT_ERR: { class: 'HandshakeError', meaning: "the client's signal aborted the connection attempt" },
  WS_ERR_CLOSED_BEFORE_OPEN: {
    class: 'HandshakeError',
    meaning: 'close() or terminate() was called while the client was connecting',
  },
  WS_ERR_UNEXPECTED_RESPONSE: {
    class: 'HandshakeError',
    meaning: 'the server answered with a status other than 101 (err.status)',
  },
  WS_ERR_INVALID_UPGRADE_HEADER: {
    class: 'HandshakeError',
    status: 101,
    meaning: 'the 101 response lacks Upgrade: websocket or Connection: Upgrade',
  },
  WS_ERR_INVALID_ACCEPT: {
    class: 'HandshakeError',
    status: 101,
    meaning: "the server's Sec-WebSocket-Accept does not match the client's key",
  },
  WS_ERR_UNEXPECTED_PROTOCOL: {
    class: 'HandshakeError',
    status: 101,
    meaning: 'the server chose a subprotocol the client did not offer, several, or none of those offered',
  },
  WS_ERR_INVALID_EXTENSION: {
    class: 'HandshakeError',
    status: 101,
    meaning: "the server's Sec-WebSocket-Extensions is malformed or not a permessage-deflate answer the offer allows",
  },
  WS_ERR_UNEXPECTED_EXTENSION: {
    class: 'HandshakeError',
    status: 101,
    meaning: 'the server accepted an extension the client did not offer',
  },
  WS_ERR_TOO_MANY_REDIRECTS: { class: 'HandshakeError', meaning: 'more than maxRedirects redirects (followRedirects)' },
  WS_ERR_INVALID_REDIRECT: {
    class: 'HandshakeError',
    meaning:
      'a redirect to a Location that is not a ws, wss, http, https or ws+unix URL (or has a fragment), or from a network URL to a ws+unix one',
  },

  // The peer broke RFC 6455: the connection is failed with the close code given.
  WS_ERR_INVALID_OPCODE: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'a frame with a reserved opcode (0x3-0x7, 0xB-0xF)',
  },
  WS_ERR_UNEXPECTED_RSV_1: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'RSV1 set without permessage-deflate, or on a continuation or control frame',
  },
  WS_ERR_UNEXPECTED_RSV_2_3: { class: 'ProtocolError', closeCode: 1002, meaning: 'RSV2 or RSV3 set' },
  WS_ERR_EXPECTED_MASK: { class: 'ProtocolError', closeCode: 1002, meaning: 'a frame from a client was not masked' },
  WS_ERR_UNEXPECTED_MASK: { class: 'ProtocolError', closeCode: 1002, meaning: 'a frame from a server was masked' },
  WS_ERR_EXPECTED_FIN: { class: 'ProtocolError', closeCode: 1002, meaning: 'a fragmented control frame' },
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'a control frame over 125 bytes, or a Close frame with a 1-byte payload',
  },
  WS_ERR_UNEXPECTED_CONTINUATION: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'a continuation frame with no message in progress',
  },
  WS_ERR_EXPECTED_CONTINUATION: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'a new text or binary frame inside a fragmented message',
  },
  WS_ERR_NON_MINIMAL_LENGTH: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'a payload length not in its shortest encoding',
  },
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'a 64-bit payload length with its most significant bit set',
  },
  WS_ERR_INVALID_CLOSE_CODE: {
    class: 'ProtocolError',
    closeCode: 1002,
    meaning: 'a Close frame with a code that may not be sent',
  },
  WS_ERR_INVALID_UTF8: {
    class: 'ProtocolError',
    closeCode: 1007,
    meaning: 'invalid UTF-8 in a text message (once inflated) or a close reason',
  },
  WS_ERR_INFLATE: { class: 'ProtocolError', closeCode: 1007, meaning: 'a compressed message that zlib cannot inflate' },
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: {
    class: 'LimitExceededError',
    closeCode: 1009,
    meaning:
      'a message over maxPayload (as sent or once inflated), a compressed one inflating past maxInflatedPayload, or a frame longer than any buffer',
  },
  WS_ERR_TOO_MANY_BUFFERED_PARTS: {
    class: 'LimitExceededError',
    closeCode: 1009,
    meaning: 'a message in more frames than maxFragments (empty continuation frames count)',
  },
  WS_ERR_MESSAGE_ASSEMBLY_TIMEOUT: {
    class: 'ProtocolError',
    closeCode: 1008,
    meaning: 'a fragmented message still incomplete assemblyTimeout ms after its first fragment',
  },

  // The connection is not open.
  WS_ERR_NOT_OPEN: {
    class: 'ConnectionClosedError',
    meaning:
      'send, ping or pong on a connection that is closing or closed, or one that closed while its message was compressed',
  },

  // duet's side or the application: the connection is failed with 1011, a handshake answered 500.
  WS_ERR_UNEXPECTED_CONDITION: {
    class: 'DuetError',
    closeCode: 1011,
    status: 500,
    meaning:
      'an application callback threw (a listener, verifyClient, handleProtocols, a headers listener, finishRequest); err.cause is what it threw',
  },
  WS_ERR_DEFLATE: { class: 'DuetError', closeCode: 1011, meaning: 'zlib failed to compress an outgoing message' },
  WS_ERR_BLOB_READ: { class: 'DuetError', closeCode: 1011, meaning: 'a Blob given to send() could not be read' },
  WS_ERR_UPGRADE_TWICE: {
    class: 'DuetError',
    meaning:
      'handleUpgrade() was called a second time with the same socket (two servers took one upgrade request); thrown',
  },
  WS_ERR_NO_PUBSUB: {
    class: 'DuetError',
    meaning: 'subscribe/publish on a connection not accepted by a duet WebSocketServer',
  },
  WS_ERR_SERVER_NOT_RUNNING: {
    class: 'DuetError',
    meaning: 'close(cb) on a server that is already closed, or a job scheduled on a closed push server',
  },
  WS_ERR_BROKER_UNAVAILABLE: {
    class: 'DuetError',
    meaning:
      'the broker (Redis, the cluster primary) cannot be reached: a publish, recovery or position that failed, or the connection lost; nothing was published',
  },
  WS_ERR_BROKER_OUTCOME_UNKNOWN: {
    class: 'DuetError',
    meaning:
      'a publish was handed to the broker but its answer never came (a command timeout, the connection lost while it waited): it may or may not have been published',
  },
  WS_ERR_BROKER_BACKLOG: {
    class: 'DuetError',
    meaning: 'more publishes wait for the broker than maxPendingPublishes: this one was refused (not published)',
  },
  WS_ERR_BROKER_MESSAGE: {
    class: 'DuetError',
    meaning: 'a malformed or foreign message on the broker channel: counted and skipped',
  },
  WS_ERR_BROKER_ASYNC: {
    class: 'TypeError',
    meaning:
      'a synchronous call (recover, position, a payload function) on a hub whose broker answers asynchronously: use the *Async method',
  },

  // Wrong arguments, thrown to (or reported to) the caller as TypeError / RangeError with a code.
  WS_ERR_INVALID_HEADER: {
    class: 'TypeError',
    status: 500,
    meaning: 'a header name or value that cannot be sent (CR, LF, non-ASCII, not a token, ...)',
  },
  WS_ERR_INVALID_STATUS: {
    class: 'RangeError',
    status: 500,
    meaning: 'an HTTP status for a refusal that is not an integer from 100 to 999',
  },
} as const satisfies Record<string, ErrorInfo>;

/** Every error code duet's Node side can emit. */
export type DuetErrorCode = keyof typeof ERROR_CODES;

/** The codes whose errors come as class `C`. */
type CodesOf<C extends DuetErrorClassName> = {
  [K in DuetErrorCode]: (typeof ERROR_CODES)[K]['class'] extends C ? K : never;
}[DuetErrorCode];

export type HandshakeErrorCode = CodesOf<'HandshakeError'>;
export type LimitExceededErrorCode = CodesOf<'LimitExceededError'>;
/** Every code a ProtocolError (LimitExceededError included) can have. */
export type ProtocolErrorCode = CodesOf<'ProtocolError' | 'LimitExceededError'>;
export type ConnectionClosedErrorCode = CodesOf<'ConnectionClosedError'>;

/**
 * Codes renamed before 0.1.0, old name to new, so that code written against the old name is
 * easy to fix. No error carries an old name.
 */
export const RENAMED_ERROR_CODES = {
  WS_ERR_INVALID_CLOSE_PAYLOAD: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
  WS_ERR_TOO_MANY_FRAGMENTS: 'WS_ERR_TOO_MANY_BUFFERED_PARTS',
} as const satisfies Record<string, DuetErrorCode>;

/**
 * Marks every error duet makes, across copies of this module and across the browser client's
 * own DuetError (src/browser/errors.ts, which checks the same key), so `instanceof DuetError`
 * holds for all of them whichever entry point DuetError was imported from.
 */
const DUET_ERROR = Symbol.for('duet.error');

/** A catalogued code, or for a network failure the system's own code (`ECONNREFUSED`, ...). */
type AnyCode = DuetErrorCode | (string & Record<never, never>);

/** The base of every error duet makes; `code` says exactly what happened. */
export class DuetError extends Error {
  /** Stable machine-readable code, e.g. `WS_ERR_INVALID_UTF8`; see docs/errors.md. */
  readonly code: AnyCode;

  constructor(code: AnyCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DuetError';
    this.code = code;
  }

  /** Every duet error is a DuetError (see DUET_ERROR); subclasses check their prototype chain. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== DuetError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as { [DUET_ERROR]?: unknown })[DUET_ERROR] === true;
  }
}
Object.defineProperty(DuetError.prototype, DUET_ERROR, { value: true });

export interface HandshakeErrorOptions extends ErrorOptions {
  /** The HTTP status: the one answered (server) or received (client). */
  status?: number;
  /** The extra headers the server's refusal would have carried. */
  headers?: HeaderFields;
}

/** The opening handshake failed (client) or was refused (server). */
export class HandshakeError extends DuetError {
  declare readonly code: HandshakeErrorCode | (string & Record<never, never>);
  /** The HTTP status answered or received, where there is one. */
  declare status?: number;
  /** The extra headers the server's refusal would have carried, if any. */
  declare headers?: HeaderFields;

  constructor(
    code: HandshakeErrorCode | (string & Record<never, never>),
    message: string,
    options?: HandshakeErrorOptions,
  ) {
    super(code, message, options);
    this.name = 'HandshakeError';
    if (options?.status !== undefined) this.status = options.status;
    if (options?.headers !== undefined) this.headers = options.headers;
  }
}

/** A violation of RFC 6455 by the peer (or a limit such as maxPayload: see LimitExceededError). */
export class ProtocolError extends DuetError {
  declare readonly code: ProtocolErrorCode;
  /** The close code the connection is failed with (1002, 1007 or 1009). */
  readonly closeCode: number;

  constructor(
    code: ProtocolErrorCode,
    message: string,
    closeCode: number = ERROR_CODES[code].closeCode,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.name = 'ProtocolError';
    this.closeCode = closeCode;
  }
}

/** A message over maxPayload or maxFragments (or one no buffer can hold): close 1009. */
export class LimitExceededError extends ProtocolError {
  declare readonly code: LimitExceededErrorCode;

  constructor(
    code: LimitExceededErrorCode,
    message: string,
    closeCode: number = ERROR_CODES[code].closeCode,
    options?: ErrorOptions,
  ) {
    super(code, message, closeCode, options);
    this.name = 'LimitExceededError';
  }
}

/** The connection is closing or closed, so it cannot do what was asked. */
export class ConnectionClosedError extends DuetError {
  declare readonly code: ConnectionClosedErrorCode;

  constructor(code: ConnectionClosedErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'ConnectionClosedError';
  }
}

/** The error `createError` returns for each class name. */
interface ErrorOfClass<C extends DuetErrorCode> {
  DuetError: DuetError;
  HandshakeError: HandshakeError;
  ProtocolError: ProtocolError;
  LimitExceededError: LimitExceededError;
  ConnectionClosedError: ConnectionClosedError;
  TypeError: TypeError & { code: C };
  RangeError: RangeError & { code: C };
}

/** The error `createError(code, ...)` returns. */
export type ErrorFor<C extends DuetErrorCode> = ErrorOfClass<C>[(typeof ERROR_CODES)[C]['class']];

export interface CreateErrorOptions extends ErrorOptions {
  /** ProtocolError / LimitExceededError: the close code, when not the catalogue's. */
  closeCode?: number;
  /** HandshakeError: the HTTP status, when not the catalogue's. */
  status?: number;
  /** HandshakeError: the refusal's extra headers. */
  headers?: HeaderFields;
}

/** The error for `code`, of the class the catalogue gives it, with its close code or status. */
export function createError<C extends DuetErrorCode>(
  code: C,
  message: string,
  options: CreateErrorOptions = {},
): ErrorFor<C> {
  const info: ErrorInfo = ERROR_CODES[code];
  const cause = 'cause' in options ? { cause: options.cause } : undefined;
  let err: Error;
  switch (info.class) {
    case 'HandshakeError': {
      const status = options.status ?? info.status;
      const handshake = new HandshakeError(code, message, {
        ...cause,
        ...(status !== undefined && { status }),
        ...(options.headers !== undefined && { headers: options.headers }),
      });
      // Node's name for an aborted operation, so `err.name === 'AbortError'` checks work.
      if (code === 'ABORT_ERR') handshake.name = 'AbortError';
      err = handshake;
      break;
    }
    case 'ProtocolError':
      err = new ProtocolError(code as ProtocolErrorCode, message, options.closeCode ?? info.closeCode, cause);
      break;
    case 'LimitExceededError':
      err = new LimitExceededError(code as LimitExceededErrorCode, message, options.closeCode ?? info.closeCode, cause);
      break;
    case 'ConnectionClosedError':
      err = new ConnectionClosedError(code as ConnectionClosedErrorCode, message, cause);
      break;
    case 'TypeError':
    case 'RangeError':
      err = info.class === 'TypeError' ? new TypeError(message, cause) : new RangeError(message, cause);
      (err as Error & { code: string }).code = code;
      Object.defineProperty(err, DUET_ERROR, { value: true });
      break;
    default:
      err = new DuetError(code, message, cause);
  }
  return err as ErrorFor<C>;
}

/**
 * The error for application code that threw where duet called it (`verifyClient`, a
 * `headers` listener, ...): `WS_ERR_UNEXPECTED_CONDITION`, "`what` threw: <its message>",
 * with what was thrown as `cause`.
 * @internal
 */
export function applicationThrew(what: string, thrown: unknown): DuetError {
  return createError(
    'WS_ERR_UNEXPECTED_CONDITION',
    `${what} threw: ${thrown instanceof Error ? thrown.message : String(thrown)}`,
    { cause: thrown },
  );
}
