/**
 * The socket listeners of a connection. They are shared functions that find their connection
 * through a symbol on the socket, so a connection costs no closures.
 */
import type { Duplex } from 'node:stream';

/** What the listeners need of the connection that owns a socket. */
export interface SocketOwner {
  heardFrom: boolean;
  readPausedForWrites: boolean;
  readonly parser: { push(chunk: Buffer): void } | undefined;
  readonly backlog: number;
  readonly queuedBytes: number;
  readonly options: { readonly isServer: boolean };
  onListenerError(cause: unknown): void;
  resumeReading(): void;
  writesDrained(): void;
  onSocketEnd(): void;
  onSocketClose(): void;
}

export const kConnection = Symbol('duetConnection');
export interface OwnedSocket extends Duplex {
  [kConnection]?: SocketOwner;
}

/**
 * On the server, reading stops while this many bytes wait to be written to the peer, and
 * resumes on 'drain': a peer that sends (pings, messages an application echoes) but does not
 * read cannot make the server queue replies without bound. The client never stops reading
 * for this: if both ends did, two endpoints sending to each other faster than they read
 * (two large sends crossing, an echo of a long burst) would each wait for the other for good.
 */
export const READ_PAUSE_BYTES = 1024 * 1024;

export function socketOnData(this: OwnedSocket, chunk: Buffer): void {
  const ws = this[kConnection];
  if (ws === undefined) return;
  ws.heardFrom = true;
  try {
    ws.parser?.push(chunk);
  } catch (err) {
    // An application listener threw while handling this connection's events. Fail just this
    // connection with 1011 (unexpected condition) instead of taking the process down.
    ws.onListenerError(err);
  }
  // Replies waiting for compression count too: a peer must not make us queue them unboundedly.
  if (ws.options.isServer && ws.backlog + ws.queuedBytes > READ_PAUSE_BYTES && !this.isPaused()) {
    this.pause();
    ws.readPausedForWrites = true;
  }
}
export function replayHead(ws: SocketOwner, socket: Duplex, head: Buffer): void {
  if (socket.destroyed) return;
  socket.unshift(head);
  ws.resumeReading();
}
export function socketOnDrain(this: OwnedSocket): void {
  this[kConnection]?.writesDrained();
}
export function socketOnEnd(this: OwnedSocket): void {
  this[kConnection]?.onSocketEnd();
}
export function socketOnClose(this: OwnedSocket): void {
  this[kConnection]?.onSocketClose();
}
export function socketOnError(this: OwnedSocket): void {
  // Resets and broken pipes end the connection (close 1006); they are not the application's error.
  this.destroy();
}
