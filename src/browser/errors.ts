/**
 * The browser client's errors: its own codes, and the DuetError class it throws and emits.
 * The Node side's catalogue (src/protocol/errors.ts) is out of this build's reach (it stops at
 * src/browser), so the client's codes have their own table here; docs/errors.md documents
 * both in one table, and a test checks that the two tables do not overlap.
 */

/** One of the client's codes: what happened, in one line. */
export interface ClientErrorInfo {
  readonly meaning: string;
}

export const CLIENT_ERROR_CODES = {
  WS_ERR_SOCKET: { meaning: 'the socket reported an error without details (browsers give none); a close follows' },
  WS_ERR_INVALID_CHANNEL_MESSAGE: {
    meaning:
      'the server sent a channel message that is binary, not JSON, not a JSON object, or an error without a code',
  },
  WS_ERR_NO_WEBSOCKET: { meaning: 'there is no WebSocket implementation to use (Node 20): pass options.WebSocket' },
  WS_ERR_INVALID_URL: { meaning: 'the URL does not parse, or its scheme is not ws, wss, http or https' },
  WS_ERR_QUEUE_FULL: { meaning: "send or publish while offline with a full queue and queuePolicy 'error'" },
  WS_ERR_NOT_CHANNEL: { meaning: 'subscribe, publish or setNick on a client whose channel option is false' },
  WS_ERR_PUBLISH_DROPPED: {
    meaning:
      "publish's promise: the full queue discarded it (queuePolicy 'drop-oldest' or 'drop-newest') before it was acknowledged",
  },
  WS_ERR_PUBLISH_CANCELLED: {
    meaning:
      "publish's promise: close(), clearQueue() or giving up reconnecting ended it before it was acknowledged; it is not sent again",
  },
  WS_ERR_OUTCOME_UNKNOWN: {
    meaning:
      "publish's promise: it was sent but not acknowledged, and the server can no longer tell whether it was published (its dedupScope changed, dedupMs passed, or it does not acknowledge publishes); not sent again, so never published twice",
  },
  WS_ERR_PUBLISH_TOO_BIG: {
    meaning: "publish's promise: the message is larger than the server's maxMessageBytes; it was not sent",
  },
} as const satisfies Record<string, ClientErrorInfo>;

/** The browser client's own error codes (the channel protocol's codes come from the server). */
export type DuetClientErrorCode = keyof typeof CLIENT_ERROR_CODES;

/** Codes renamed before 0.1.0, old name to new. No error carries an old name. */
export const CLIENT_RENAMED_ERROR_CODES = {
  DUET_SOCKET_ERROR: 'WS_ERR_SOCKET',
  DUET_BAD_MESSAGE: 'WS_ERR_INVALID_CHANNEL_MESSAGE',
  DUET_NO_WEBSOCKET: 'WS_ERR_NO_WEBSOCKET',
  DUET_BAD_URL: 'WS_ERR_INVALID_URL',
  DUET_QUEUE_FULL: 'WS_ERR_QUEUE_FULL',
  DUET_NOT_CHANNEL: 'WS_ERR_NOT_CHANNEL',
} as const satisfies Record<string, DuetClientErrorCode>;

/**
 * The key duet's errors carry on both sides (protocol/errors.ts uses the same one), so that
 * `instanceof DuetError` holds for every error duet makes: in Node, the errors of duet's
 * WebSocket that the client passes on are DuetErrors too.
 */
const DUET_ERROR = Symbol.for('duet.error');

/**
 * An error with a stable `code`: one of the client's own (`WS_ERR_*`, see CLIENT_ERROR_CODES)
 * or a channel protocol error from the server (`bad_json`, `rate_limited`, ...). See
 * docs/errors.md.
 */
export class DuetError extends Error {
  /** A stable string to branch on. */
  readonly code: DuetClientErrorCode | (string & Record<never, never>);
  /** The topic the error concerns, when there is one. */
  readonly topic: string | undefined;
  constructor(code: DuetClientErrorCode | (string & Record<never, never>), message: string, topic?: string) {
    super(message);
    this.name = 'DuetError';
    this.code = code;
    this.topic = topic;
  }

  /** Every duet error is a DuetError (see DUET_ERROR); subclasses check their prototype chain. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== DuetError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as { [DUET_ERROR]?: unknown })[DUET_ERROR] === true;
  }
}
Object.defineProperty(DuetError.prototype, DUET_ERROR, { value: true });
