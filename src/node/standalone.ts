/**
 * duet's own listening server (`new WebSocketServer({ port })`): a net.Server that reads each
 * request head itself (protocol/http-request.ts) instead of going through node:http, which
 * builds a parser, an IncomingMessage and more per connection that an upgrade never uses
 * (measured: about twice the handshakes per second). It emits `upgrade` like http.Server, so
 * WebSocketServer treats both alike; anything that is not an upgrade is answered by
 * `answerPlain` and the connection closed. Requests arriving through `server` or
 * `handleUpgrade` keep node:http's IncomingMessage.
 */
import * as net from 'node:net';
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import {
  distinctHeaders,
  findHeadEnd,
  joinHeaders,
  parseRequestHead,
  type RequestHead,
} from '../protocol/http-request.js';
import { headerHasToken } from '../protocol/handshake.js';
import { deadlines } from './deadlines.js';

/**
 * The upgrade request as duet's own server hands it to `verifyClient`, `handleProtocols`,
 * `headers` and `connection`: the fields of http.IncomingMessage a WebSocket server reads
 * (`method`, `url`, `httpVersion`, `headers`, `headersDistinct`, `rawHeaders`, `socket`).
 * It is not a stream: there is no request body to read.
 */
export class UpgradeRequest {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly rawHeaders: string[];
  readonly headers: http.IncomingHttpHeaders;
  readonly socket: net.Socket;
  readonly complete = true;
  private distinct: Record<string, string[]> | undefined;

  constructor(head: RequestHead, socket: net.Socket) {
    this.method = head.method;
    this.url = head.target;
    this.httpVersion = head.version;
    this.httpVersionMajor = Number(head.version[0]);
    this.httpVersionMinor = Number(head.version[2]);
    this.rawHeaders = head.rawHeaders;
    this.headers = joinHeaders(head.rawHeaders);
    this.socket = socket;
  }

  /** Every value of every header field, by lower-case name. */
  get headersDistinct(): Record<string, string[]> {
    return (this.distinct ??= distinctHeaders(this.rawHeaders));
  }

  /** Alias of `socket`, as on IncomingMessage. */
  get connection(): net.Socket {
    return this.socket;
  }
}

export interface StandaloneOptions {
  /** Longest request head in bytes; longer ones get 431. */
  maxHeaderSize: number;
  /** Milliseconds for the whole request head; slower clients get 408. */
  handshakeTimeout: number;
  /** Answer a request that is not an upgrade: [status, message, extra headers]. */
  answerPlain: (req: http.IncomingMessage) => [number, string, Record<string, string>];
  /** Write an error response and close (WebSocketServer's abortHandshake). */
  abort: (socket: Duplex, status: number, message: string, headers?: Record<string, string>) => void;
}

interface Pending {
  server: StandaloneServer;
  socket: net.Socket;
  buffered: Buffer | undefined;
  expire(): void;
}

// Shared listeners find their state through a symbol: no closures per connection.
const kPending = Symbol('duetPendingHead');
type PendingSocket = net.Socket & { [kPending]?: Pending };

function expirePending(this: Pending): void {
  finish(this.socket, this);
  this.server.options.abort(this.socket, 408, 'Request head not received in time');
}

function onHeadError(this: net.Socket): void {
  this.destroy();
}

function onHeadClose(this: PendingSocket): void {
  const pending = this[kPending];
  if (pending !== undefined) {
    this[kPending] = undefined;
    deadlines.delete(pending);
    pending.server.pending.delete(this);
  }
}

function onHeadData(this: PendingSocket, chunk: Buffer): void {
  const pending = this[kPending];
  if (pending === undefined) return;
  const previous = pending.buffered;
  const buf = previous === undefined ? chunk : Buffer.concat([previous, chunk]);
  const end = findHeadEnd(buf, previous?.length ?? 0);
  const { options } = pending.server;
  if (end === -1) {
    // A head ended by bare LFs would never complete: refuse it now rather than after the timeout.
    if (buf.indexOf('\n\n') !== -1 || buf.indexOf('\n\r\n') !== -1) {
      finish(this, pending);
      options.abort(this, 400, 'Malformed request head (line endings must be CRLF)');
      return;
    }
    if (buf.length > options.maxHeaderSize) {
      finish(this, pending);
      options.abort(this, 431, 'Request header fields too large');
      return;
    }
    pending.buffered = buf;
    return;
  }
  finish(this, pending);
  if (end - 4 > options.maxHeaderSize) {
    options.abort(this, 431, 'Request header fields too large');
    return;
  }
  const parsed = parseRequestHead(buf.subarray(0, end));
  if (!parsed.ok) {
    options.abort(this, parsed.status, parsed.message);
    return;
  }
  const req = new UpgradeRequest(parsed.head, this) as unknown as http.IncomingMessage;
  const head = buf.subarray(end);
  // As node:http: an upgrade is a request with an Upgrade field and "upgrade" in Connection.
  const connection = req.headers.connection;
  if (req.headers.upgrade !== undefined && connection !== undefined && headerHasToken(connection, 'upgrade')) {
    pending.server.emit('upgrade', req, this, head);
    return;
  }
  const [status, message, headers] = options.answerPlain(req);
  options.abort(this, status, req.method === 'HEAD' ? '' : message, headers);
}

function finish(socket: PendingSocket, pending: Pending): void {
  socket[kPending] = undefined;
  deadlines.delete(pending);
  pending.server.pending.delete(socket);
  socket.removeListener('data', onHeadData);
  socket.removeListener('close', onHeadClose);
  socket.removeListener('error', onHeadError);
  // As node:http does for upgrades: later bytes wait in the socket until the connection
  // attaches its own 'data' listener, which starts the flow again.
  (socket as { readableFlowing: boolean | null }).readableFlowing = null;
}

/** A net.Server that emits `upgrade` (req, socket, head) for WebSocket upgrade requests. */
export class StandaloneServer extends net.Server {
  readonly options: StandaloneOptions;
  /** Connections whose request head has not arrived yet. @internal */
  readonly pending = new Set<net.Socket>();

  constructor(options: StandaloneOptions) {
    // Half-open like http.Server: a peer's FIN must not end our side while a connection still
    // has replies to write (it ends TCP itself when it is done).
    super({ noDelay: true, allowHalfOpen: true });
    this.options = options;
    this.on('connection', (socket: PendingSocket) => {
      const pending: Pending = { server: this, socket, buffered: undefined, expire: expirePending };
      socket[kPending] = pending;
      this.pending.add(socket);
      socket.on('data', onHeadData);
      socket.on('error', onHeadError);
      socket.on('close', onHeadClose);
      // 0 means no limit, as for node:http's headersTimeout.
      if (options.handshakeTimeout > 0) deadlines.add(pending, options.handshakeTimeout);
    });
  }

  /** Drop connections that have not sent a complete request head (server.close() waits for the rest). */
  closeIdleConnections(): void {
    for (const socket of this.pending) socket.destroy();
  }
}
