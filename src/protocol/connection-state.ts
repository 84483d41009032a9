/**
 * The connection's wire state and its closing handshake (RFC 6455 sections 4.1, 5.5.1, 7.1),
 * sans-I/O. A connection's whole state is one number (`WireState`): the readyState in the low
 * two bits and a few flags above it. Each event is a function from a state to the next state
 * and the actions the I/O layer must take (send a Close frame, end TCP, start the close
 * timer...). node/ performs the actions; it never decides them. Nothing here allocates
 * except the small result object of a transition, which only closing events make.
 *
 * The rules, in one place:
 * - OPEN: data and control frames may be sent. Closing starts by sending a Close (7.1.2) or
 *   receiving one (7.1.3); either makes the state CLOSING.
 * - A Close received before ours was sent is echoed with the same code (5.5.1); the I/O
 *   layer may delay the echo behind messages it already accepted, but sends nothing else.
 * - Once both Close frames are exchanged, the server closes TCP first (7.1.1); the client
 *   waits for it, and the close timer bounds the wait on both sides.
 * - Failing the connection (7.1.7) sends a Close with the error's code if none was sent,
 *   stops processing what the peer sends, and closes TCP at once (both sides).
 * - The peer's FIN before the handshake finished: CLOSING, stop reading, end our side.
 * - TCP closed: CLOSED, whatever came before. The close code reported is the one in the
 *   first Close frame received, 1005 when it had none, 1006 when none was received (7.1.5).
 */
import { CloseCode } from './close-codes.js';

/** A connection's wire state: readyState in bits 0-1, flags above (see the constants). */
export type WireState = number;

/** The readyState values of the WebSocket API. */
export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;
export type ReadyState = typeof CONNECTING | typeof OPEN | typeof CLOSING | typeof CLOSED;

const READY_STATE = 0b11;
/** We sent a Close frame (or handed it to the I/O layer to send now). */
export const CLOSE_SENT = 1 << 2;
/** The peer's Close frame was received. */
export const CLOSE_RECEIVED = 1 << 3;
/** This end is the server (it closes TCP first). */
export const SERVER = 1 << 4;
/** The connection was failed (7.1.7): nothing more the peer sends is processed. */
export const FAILED = 1 << 5;
/** Our side of TCP is ending (FIN sent or asked for). */
export const TCP_ENDING = 1 << 6;
/** The peer ended its side of TCP. */
export const EOF_RECEIVED = 1 << 7;

/** Actions for the I/O layer, performed in this order. */
export const Action = {
  /** Stop processing received bytes (failing, or the peer's FIN). */
  STOP_READING: 1,
  /** Write a Close frame (the caller knows the code: the application's, the echo's, the error's). */
  SEND_CLOSE: 2,
  /**
   * The peer's Close must be echoed: start the closing handshake with its code (now, or
   * after the messages already accepted for sending, which the I/O layer may still hold).
   */
  ECHO_CLOSE: 4,
  /** End our side of TCP (FIN) after what is already queued for writing. */
  END_TCP: 8,
  /** Start the close timer: drop TCP if the peer does not finish in time. */
  ARM_CLOSE_TIMER: 16,
  /** Drop TCP now, without a closing handshake. */
  DESTROY_TCP: 32,
} as const;

/** The next state and what to do to get there. */
export interface Transition {
  state: WireState;
  /** A set of `Action` bits. */
  actions: number;
}

const NOTHING = 0;

/** The state of a new connection: CONNECTING, on the server or the client side. */
export function initialState(isServer: boolean): WireState {
  return CONNECTING | (isServer ? SERVER : 0);
}

export function readyStateOf(state: WireState): ReadyState {
  return (state & READY_STATE) as ReadyState;
}

function withReadyState(state: WireState, readyState: ReadyState): WireState {
  return (state & ~READY_STATE) | readyState;
}

/** The opening handshake completed: OPEN. */
export function opened(state: WireState): WireState {
  return readyStateOf(state) === CONNECTING ? withReadyState(state, OPEN) : state;
}

/** Data frames (and Pings, Pongs) may be sent: OPEN, and no Close sent or being held. */
export function canSend(state: WireState): boolean {
  return (state & (READY_STATE | CLOSE_SENT)) === OPEN;
}

/** Both Close frames were exchanged. */
export function wasClean(state: WireState): boolean {
  return (state & (CLOSE_SENT | CLOSE_RECEIVED)) === (CLOSE_SENT | CLOSE_RECEIVED);
}

/**
 * CLOSING without a Close sent yet: the application asked to close, and the I/O layer still
 * holds messages accepted before (being compressed, a Blob being read). Nothing new may be
 * sent; the Close follows them (`startClosing` when they are gone).
 */
export function closingHeld(state: WireState): WireState {
  return readyStateOf(state) === OPEN ? withReadyState(state, CLOSING) : state;
}

/**
 * Start the closing handshake (7.1.2): the application's close(), a policy (1013 for a slow
 * consumer, 1001 at shutdown), or the echo of the peer's Close. Once only: a Close already
 * sent makes this a no-op. With both Close frames exchanged, the server ends TCP (7.1.1).
 */
export function startClosing(state: WireState): Transition {
  const ready = readyStateOf(state);
  if (ready === CLOSED || ready === CONNECTING || (state & CLOSE_SENT) !== 0) return { state, actions: NOTHING };
  let next = withReadyState(state | CLOSE_SENT, CLOSING);
  let actions: number = Action.SEND_CLOSE | Action.ARM_CLOSE_TIMER;
  if ((state & (CLOSE_RECEIVED | SERVER)) === (CLOSE_RECEIVED | SERVER) && (state & TCP_ENDING) === 0) {
    next |= TCP_ENDING;
    actions |= Action.END_TCP;
  }
  return { state: next, actions };
}

/**
 * The peer's Close frame arrived (7.1.3). Before ours: echo it (`ECHO_CLOSE`). After ours:
 * the handshake is complete, and the server ends TCP (7.1.1); the client waits for that.
 * A Close after the connection failed is not processed (7.1.7).
 */
export function receiveClose(state: WireState): Transition {
  const ready = readyStateOf(state);
  if (ready === CLOSED || (state & (FAILED | CLOSE_RECEIVED)) !== 0) return { state, actions: NOTHING };
  let next = withReadyState(state | CLOSE_RECEIVED, CLOSING);
  if ((state & CLOSE_SENT) === 0) return { state: next, actions: Action.ECHO_CLOSE };
  let actions = NOTHING;
  if ((state & SERVER) !== 0 && (state & TCP_ENDING) === 0) {
    next |= TCP_ENDING;
    actions |= Action.END_TCP;
  }
  return { state: next, actions };
}

/**
 * Fail the connection (7.1.7): a protocol error, a limit, an application fault. A Close frame
 * with the error's code goes out if none was sent; reading stops; TCP ends at once.
 */
export function fail(state: WireState): Transition {
  if (readyStateOf(state) === CLOSED) return { state, actions: NOTHING };
  let actions: number = Action.STOP_READING | Action.ARM_CLOSE_TIMER;
  if ((state & CLOSE_SENT) === 0 && readyStateOf(state) !== CONNECTING) actions |= Action.SEND_CLOSE;
  if ((state & TCP_ENDING) === 0) actions |= Action.END_TCP;
  return { state: withReadyState(state | FAILED | CLOSE_SENT | TCP_ENDING, CLOSING), actions };
}

/**
 * The peer ended its side of TCP. Without a completed handshake that is an abnormal closure
 * (1006 follows); either way nothing more will arrive: stop reading, end our side after what
 * is queued, and bound the wait for the rest with the close timer.
 */
export function receiveEof(state: WireState): Transition {
  if (readyStateOf(state) === CLOSED) return { state, actions: NOTHING };
  let actions: number = Action.STOP_READING | Action.ARM_CLOSE_TIMER;
  if ((state & TCP_ENDING) === 0) actions |= Action.END_TCP;
  return { state: withReadyState(state | EOF_RECEIVED | TCP_ENDING, CLOSING), actions };
}

/** Drop the connection without a closing handshake (`terminate()`). */
export function terminate(state: WireState): Transition {
  if (readyStateOf(state) === CLOSED) return { state, actions: NOTHING };
  return { state: withReadyState(state, CLOSING), actions: Action.DESTROY_TCP };
}

/** TCP is closed: CLOSED (7.1.4). */
export function tcpClosed(state: WireState): WireState {
  return withReadyState(state, CLOSED);
}

/**
 * The WebSocket Connection Close Code (7.1.5): the code of the first Close frame received,
 * 1005 if it had none, 1006 when no Close frame was received at all.
 */
export function connectionCloseCode(state: WireState, receivedCode: number | undefined): number {
  if ((state & CLOSE_RECEIVED) === 0) return CloseCode.ABNORMAL_CLOSURE;
  return receivedCode ?? CloseCode.NO_STATUS_RECEIVED;
}
