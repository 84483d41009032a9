/**
 * WebSocketServer: accepts RFC 6455 opening handshakes on a node:http(s) server (its own, a
 * user's, or none with `noServer` + `handleUpgrade`) and hands out WebSocket connections.
 * The API follows `ws`'s server, so switching is a one-line import change.
 */
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode, closeCodeIsSendable } from '../protocol/close-codes.js';
import {
  acceptResponseLines,
  buildErrorResponse,
  checkUpgradeRequest,
  serializeResponseLines,
} from '../protocol/handshake.js';
import { createError, type HandshakeErrorCode } from '../protocol/errors.js';
import type { HeaderFields } from '../protocol/header-fields.js';
import { WebSocket, type ConnectionOptions } from './connection.js';
import { newCounters, type PubSub, type PublishOptions, type ServerCounters, type SlowConsumerPolicy } from './host.js';
import { Sweep } from './sweep.js';
import { acceptDeflateOffer, type DeflateOptions } from '../protocol/deflate-negotiation.js';
import type { ExtensionOffer } from '../protocol/handshake.js';
import { deadlines } from './deadlines.js';
import { MessageDeflate, resolveDeflateSettings, type DeflateSettings } from './deflate.js';
import { SharedMessage } from './shared-message.js';
import { StandaloneServer } from './standalone.js';
import {
  SERVER_DEFAULTS,
  type ResolvedServerOptions,
  type ServerOptions,
  type VerifyClientInfo,
} from './server-options.js';

export type { ServerOptions, VerifyClientInfo, VerifyClientAsync, VerifyClientDone } from './server-options.js';

/** An HTTP server duet attaches to (http.Server or https.Server), or its own StandaloneServer. */
type HttpServerLike = http.Server | StandaloneServer;

/**
 * What `wsClientError` listeners get: why, and the answer duet would have sent. A refusal is a
 * HandshakeError; a mistake of the application's (a bad header or status, a callback that
 * threw) is the TypeError, RangeError or DuetError reported with status 500. See docs/errors.md.
 */
export interface HandshakeRefusal extends Error {
  /** `WS_ERR_*`: `WS_ERR_HANDSHAKE`, `WS_ERR_CLIENT_REJECTED`, `WS_ERR_INVALID_HEADER`, ... */
  code: string;
  /** The HTTP status duet would have answered with. */
  status: number;
  /** The extra headers duet would have sent with it (checked; as given), if any. */
  headers?: HeaderFields;
}

/** How long a refused client gets to read our answer before its socket is destroyed. */
const ABORT_LINGER_MS = 1000;

/**
 * Answer a refused upgrade with `status` and a short text body, then close the socket: at
 * once if the client closes its side, or after a second at most (shared deadline queue, no
 * timer per socket). `headers` are stringified as node:http does (see buildErrorResponse).
 * A status or header that cannot be sent still answers (a plain 500) and closes the socket,
 * then throws the TypeError / RangeError (`code` WS_ERR_INVALID_HEADER / WS_ERR_INVALID_STATUS)
 * to the caller.
 */
export function abortHandshake(socket: Duplex, status: number, message: string, headers?: HeaderFields): void {
  let response: string;
  try {
    response = buildErrorResponse(status, message, headers);
  } catch (err) {
    endHandshake(socket, buildErrorResponse(500, http.STATUS_CODES[500]!));
    throw err;
  }
  endHandshake(socket, response);
}

/** Write `response` and close the socket, as abortHandshake describes. */
function endHandshake(socket: Duplex, response: string): void {
  socket.on('error', socketOnHandshakeError);
  if (socket.writable) socket.end(response);
  if (socket.destroyed) return;
  const linger = { expire: () => socket.destroy() };
  socket.once('close', () => deadlines.delete(linger));
  deadlines.add(linger, ABORT_LINGER_MS);
}

// Connections find their server through a symbol: one shared close listener, no closure each.
const kServer = Symbol('duetServer');
type TrackedSocket = WebSocket & { [kServer]?: WebSocketServer };
/**
 * Every Host value when the request has more than one, otherwise undefined. Read from
 * rawHeaders, so no headersDistinct object is built for every handshake.
 */
function repeatedHosts(req: http.IncomingMessage): string[] | undefined {
  const raw = req.rawHeaders as string[] | undefined;
  if (!Array.isArray(raw)) {
    const distinct = req.headersDistinct?.host;
    return distinct !== undefined && distinct.length > 1 ? distinct : undefined;
  }
  let hosts: string[] | undefined;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 4 && name.toLowerCase() === 'host') {
      (hosts ??= []).push(raw[i + 1]);
      count++;
    }
  }
  return count > 1 ? hosts : undefined;
}

function clientOnClose(this: TrackedSocket): void {
  this[kServer]?.connectionClosed(this);
}

/** The duet servers attached to each HTTP server, in the order they were attached. */
const attached = new WeakMap<HttpServerLike, WebSocketServer[]>();

function socketOnHandshakeError(this: Duplex): void {
  this.destroy();
}

/** Normalize an origin for comparison: lower-case, no trailing slash. */
function normalizeOrigin(origin: string): string {
  const s = origin.trim().toLowerCase();
  // A loop rather than /\/+$/, which backtracks quadratically on many slashes and then a letter.
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x2f) end--;
  return s.slice(0, end);
}

/** The numbers `stats()` returns. */
export interface ServerStats extends ServerCounters {
  /** Open connections. */
  connections: number;
  /** Topics with at least one subscriber. */
  topics: number;
  /** Subscriptions over all topics. */
  subscriptions: number;
}

/** The events of a WebSocketServer and the arguments their listeners get. */
export interface ServerEvents {
  /** A handshake completed: `ws` is open; `req` is the upgrade request. */
  connection: [ws: WebSocket, req: http.IncomingMessage];
  /** The HTTP server duet created (or was given) is listening. */
  listening: [];
  /** Before the 101 response is written: push `'Name: value'` strings to `headers` to add headers. */
  headers: [headers: string[], req: http.IncomingMessage];
  /** The HTTP server failed (e.g. EADDRINUSE), or the application gave duet a response it cannot send. */
  error: [err: Error];
  /** After `close()`: the server is closed and every connection has ended. */
  close: [];
  /** `close()` or `closeAll()` started: no new connections, the open ones are being closed. */
  shutdown: [];
  /** A handshake was refused; only when listened to, and the listener answers and closes `socket` itself. */
  wsClientError: [err: HandshakeRefusal, socket: Duplex, req: http.IncomingMessage];
}
type ServerListener<A extends unknown[]> = (this: WebSocketServer, ...args: A) => void;

// Typed overloads for the server's events (merged into the class below). Other event names
// take a listener of any arguments, without `any`: an unannotated parameter is `unknown`.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- on purpose: the event overloads
export interface WebSocketServer {
  on<K extends keyof ServerEvents>(event: K, listener: ServerListener<ServerEvents[K]>): this;
  on<A extends unknown[]>(event: string | symbol, listener: ServerListener<A>): this;
  once<K extends keyof ServerEvents>(event: K, listener: ServerListener<ServerEvents[K]>): this;
  once<A extends unknown[]>(event: string | symbol, listener: ServerListener<A>): this;
  off<K extends keyof ServerEvents>(event: K, listener: ServerListener<ServerEvents[K]>): this;
  off<A extends unknown[]>(event: string | symbol, listener: ServerListener<A>): this;
  addListener<K extends keyof ServerEvents>(event: K, listener: ServerListener<ServerEvents[K]>): this;
  addListener<A extends unknown[]>(event: string | symbol, listener: ServerListener<A>): this;
  removeListener<K extends keyof ServerEvents>(event: K, listener: ServerListener<ServerEvents[K]>): this;
  removeListener<A extends unknown[]>(event: string | symbol, listener: ServerListener<A>): this;
}

/**
 * The server side of node/: the opening handshake (on its own HTTP server, one it is given,
 * or `handleUpgrade` from any framework), its connections, heartbeat, slow consumers and a
 * graceful shutdown. Applications import push/'s subclass (`duet`'s WebSocketServer), which
 * adds topics, history and timed jobs. Options and events: docs/server.md.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- on purpose: the event overloads
export class WebSocketServer extends EventEmitter {
  /** Open connections (a Set), when `clientTracking` is on. */
  readonly clients: Set<WebSocket> | undefined;
  /** The resolved options, defaults filled in. */
  readonly options: ResolvedServerOptions;
  /** Counters reported by stats(). @internal */
  readonly counters: ServerCounters = newCounters();
  /** Topic routing; push/ installs its Hub here. @internal */
  pubsub: PubSub | undefined;
  /** @internal */ readonly maxBufferedAmount: number;
  /** @internal */ readonly slowConsumer: SlowConsumerPolicy;
  /** Every open connection, tracked or not (the sweep and shutdown need them). */
  private readonly connections = new Set<WebSocket>();
  private readonly sweep: Sweep;

  private server: HttpServerLike | undefined;
  private ownsServer = false;
  private state: 'running' | 'closing' | 'closed' = 'running';
  private connectionCount = 0;
  private readonly allowedOrigins: Set<string> | undefined;
  private detach: (() => void) | undefined;
  /** permessage-deflate: what we accept, and how we compress (undefined: declined). */
  private readonly deflate: { negotiation: DeflateOptions; settings: DeflateSettings } | undefined;
  /** What every connection of this server is set up with: one object for all of them. */
  private connectionOptions: ConnectionOptions;

  /**
   * Exactly one of `port` (duet creates the HTTP server), `server` (attach to yours) or
   * `noServer` (call `handleUpgrade` yourself). `callback` runs once a created server listens.
   */
  constructor(options: ServerOptions = {}, callback?: () => void) {
    super();
    const modes = [options.port !== undefined, options.server !== undefined, options.noServer === true].filter(
      Boolean,
    ).length;
    if (modes !== 1) {
      throw new TypeError('One and only one of the "port", "server", or "noServer" options must be specified');
    }
    this.options = { ...SERVER_DEFAULTS, ...options };
    this.clients = this.options.clientTracking ? this.connections : undefined;
    this.maxBufferedAmount = this.options.maxBufferedAmount;
    this.slowConsumer = this.options.slowConsumer;
    this.connectionOptions = Object.freeze({
      isServer: true,
      maxPayload: this.options.maxPayload,
      maxFragments: this.options.maxFragments,
      closeTimeout: this.options.closeTimeout,
      autoPong: this.options.autoPong,
    });
    const pmd = this.options.perMessageDeflate;
    if (pmd) {
      const negotiation = pmd === true ? {} : pmd;
      // Checked now, so a bad option throws here rather than at the first handshake.
      acceptDeflateOffer([], negotiation);
      this.deflate = { negotiation, settings: resolveDeflateSettings(negotiation) };
    }
    this.sweep = new Sweep(this.connections, this.counters, {
      heartbeat: this.options.heartbeat,
      idleTimeout: this.options.idleTimeout,
      assemblyTimeout: this.options.assemblyTimeout,
    });
    if (Array.isArray(options.allowOrigins)) {
      this.allowedOrigins = new Set(options.allowOrigins.map(normalizeOrigin));
    }

    if (options.port !== undefined) {
      // Our own listener reads request heads itself (standalone.ts): a client that never
      // finishes its request head is answered 408 and dropped.
      const server = new StandaloneServer({
        maxHeaderSize: options.maxHeaderSize ?? http.maxHeaderSize,
        handshakeTimeout: this.options.handshakeTimeout,
        answerPlain: (req) => this.plainAnswer(req),
        abort: abortHandshake,
      });
      this.server = server;
      this.ownsServer = true;
      server.listen(options.port, options.host, options.backlog, callback);
    } else if (options.server) {
      this.server = options.server;
    }

    if (this.server) {
      const server = this.server;
      const onListening = (): void => {
        this.emit('listening');
      };
      const onError = (err: Error): void => {
        this.emit('error', err);
      };
      const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
        if (!this.shouldHandle(req)) {
          // Several duet servers may share one HTTP server (one per path): the first one
          // registered answers 404 when none of them takes the request. Upgrade listeners
          // that are not duet's are left to answer for themselves.
          const siblings = attached.get(server)!;
          if (siblings[0] !== this || server.listenerCount('upgrade') !== siblings.length) return;
          if (siblings.some((other) => other.shouldHandle(req))) return;
          this.abort(socket, 404, 'No WebSocket endpoint at this path');
          return;
        }
        this.handleUpgrade(req, socket, head, this.emitConnection);
      };
      server.on('listening', onListening);
      server.on('error', onError);
      server.on('upgrade', onUpgrade);
      const siblings = attached.get(server) ?? [];
      siblings.push(this);
      attached.set(server, siblings);
      this.detach = () => {
        siblings.splice(siblings.indexOf(this), 1);
        server.removeListener('listening', onListening);
        server.removeListener('error', onError);
        server.removeListener('upgrade', onUpgrade);
      };
    }
  }

  /**
   * A request that is not an upgrade reached duet's own server. A
   * WebSocket handshake gone wrong (it carries Sec-WebSocket-* headers but lacks a proper
   * Upgrade/Connection) is answered 400 as RFC 6455 4.2.1 asks; any other request gets 426
   * naming the protocol to upgrade to. Either way the connection is closed.
   */
  private plainAnswer(req: http.IncomingMessage): [number, string, Record<string, string>] {
    const attempted =
      req.headers['sec-websocket-key'] !== undefined || req.headers['sec-websocket-version'] !== undefined;
    const check = attempted ? checkUpgradeRequest(req.method ?? '', req.httpVersion, req.headers) : undefined;
    const status = check && !check.ok ? check.status : 426;
    const body = check && !check.ok ? check.message : 'This server speaks WebSocket only';
    const headers: Record<string, string> = { ...(check && !check.ok ? check.headers : {}) };
    if (status === 426) {
      headers.Upgrade = 'websocket';
      headers['Sec-WebSocket-Version'] = '13';
    }
    return [status, body, headers];
  }

  /**
   * The shared options object for new connections; made again if the application changed
   * `wss.options` since (as in ws, such a change applies to connections made afterwards).
   */
  private currentConnectionOptions(): ConnectionOptions {
    const shared = this.connectionOptions;
    const { maxPayload, maxFragments, closeTimeout, autoPong } = this.options;
    if (
      shared.maxPayload === maxPayload &&
      shared.maxFragments === maxFragments &&
      shared.closeTimeout === closeTimeout &&
      shared.autoPong === autoPong
    )
      return shared;
    return (this.connectionOptions = Object.freeze({
      isServer: true,
      maxPayload,
      maxFragments,
      closeTimeout,
      autoPong,
    }));
  }

  private readonly emitConnection = (ws: WebSocket, req: http.IncomingMessage): void => {
    this.emit('connection', ws, req);
  };

  /** The address the server listens on (as net.Server#address()); throws with `noServer`. */
  address(): AddressInfo | string | null {
    if (this.options.noServer) throw new Error('The server is operating in "noServer" mode');
    return this.server ? this.server.address() : null;
  }

  /**
   * Whether this server takes the upgrade request: by default, true when `path` is unset or
   * equals the request's pathname. Override to route differently.
   */
  shouldHandle(req: http.IncomingMessage): boolean {
    const path = this.options.path;
    if (path === undefined) return true;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    return (q === -1 ? url : url.slice(0, q)) === path;
  }

  /**
   * Complete (or refuse) an upgrade request from any HTTP server or framework: call it from
   * the server's `upgrade` event. `cb(ws, req)` runs once the connection is open.
   */
  handleUpgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    cb: (ws: WebSocket, req: http.IncomingMessage) => void,
  ): void {
    socket.on('error', socketOnHandshakeError);

    if (this.state !== 'running') {
      this.abort(socket, 503, 'The server is shutting down');
      return;
    }
    // node:http keeps only the first of repeated Host headers; RFC 7230 5.4 wants 400 for several.
    const hosts = repeatedHosts(req);
    const headers = hosts !== undefined ? { ...req.headers, host: hosts } : req.headers;
    const check = checkUpgradeRequest(req.method ?? '', req.httpVersion, headers);
    if (!check.ok) {
      this.refuse(req, socket, 'WS_ERR_HANDSHAKE', check.status, check.message, check.headers);
      return;
    }
    if (this.connectionCount >= this.options.maxConnections) {
      this.refuse(req, socket, 'WS_ERR_TOO_MANY_CONNECTIONS', 503, 'Too many connections', { 'Retry-After': '5' });
      return;
    }
    const origin = req.headers.origin;
    if (!this.originAllowed(origin, req)) {
      this.refuse(req, socket, 'WS_ERR_ORIGIN_NOT_ALLOWED', 403, 'Origin not allowed');
      return;
    }

    const verify = this.options.verifyClient;
    if (!verify) {
      this.completeUpgrade(req, socket, head, check.key, check.protocols, check.extensions, cb);
      return;
    }
    const info: VerifyClientInfo = {
      origin: (req.headers['sec-websocket-origin'] as string | undefined) ?? origin ?? '',
      secure: Boolean((req.socket as { encrypted?: boolean }).encrypted),
      req,
    };
    // A verifyClient that throws is an application fault like a bad header: the handshake
    // gets a 500 and the error is reported, instead of escaping into the socket's callback
    // and taking the process down. done() counts once: a second call is ignored.
    let decided = false;
    try {
      if (verify.length >= 2) {
        // The async form: verifyClient(info, done). done() never throws: a refusal duet cannot
        // send (a bad header or status) is answered 500 and reported (see refuse()).
        verify(info, (ok, code = 401, message, headers) => {
          if (decided) return;
          decided = true;
          if (!ok) {
            this.refuse(
              req,
              socket,
              'WS_ERR_CLIENT_REJECTED',
              code,
              message ?? http.STATUS_CODES[code] ?? 'Rejected',
              headers,
            );
            return;
          }
          this.completeUpgrade(req, socket, head, check.key, check.protocols, check.extensions, cb);
        });
        return;
      }
      decided = true;
      if (!(verify as (i: VerifyClientInfo) => boolean)(info)) {
        this.refuse(req, socket, 'WS_ERR_CLIENT_REJECTED', 401, http.STATUS_CODES[401]!);
        return;
      }
    } catch (thrown) {
      if (decided && verify.length >= 2) {
        // done() was called before the throw: the handshake is settled; report only.
        process.emitWarning(thrown instanceof Error ? thrown : String(thrown));
        return;
      }
      decided = true;
      const err = createError(
        'WS_ERR_UNEXPECTED_CONDITION',
        `verifyClient threw: ${thrown instanceof Error ? thrown.message : String(thrown)}`,
        { cause: thrown },
      );
      this.applicationFault(req, socket, err);
      return;
    }
    this.completeUpgrade(req, socket, head, check.key, check.protocols, check.extensions, cb);
  }

  private originAllowed(origin: string | undefined, req: http.IncomingMessage): boolean {
    const rule = this.options.allowOrigins;
    if (rule === undefined) return true;
    if (typeof rule === 'function') return rule(origin, req);
    // Clients other than browsers send no Origin; the check protects browsers' users.
    if (origin === undefined) return true;
    return this.allowedOrigins!.has(normalizeOrigin(origin));
  }

  private completeUpgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    key: string,
    offered: string[],
    extensions: ExtensionOffer[],
    cb: (ws: WebSocket, req: http.IncomingMessage) => void,
  ): void {
    if (!socket.readable || !socket.writable) {
      socket.destroy();
      return;
    }
    if (this.state !== 'running') {
      this.abort(socket, 503, 'The server is shutting down');
      return;
    }
    if (this.connectionCount >= this.options.maxConnections) {
      this.refuse(req, socket, 'WS_ERR_TOO_MANY_CONNECTIONS', 503, 'Too many connections', { 'Retry-After': '5' });
      return;
    }
    // As in ws 8: after verifyClient; without handleProtocols the first offered one is chosen.
    let protocol: string | undefined;
    if (offered.length > 0) {
      const chosen = this.options.handleProtocols ? this.options.handleProtocols(new Set(offered), req) : offered[0];
      // As in ws, any falsy answer (false, undefined, null, '') means "no subprotocol".
      if (chosen) {
        if (!offered.includes(chosen)) {
          this.refuse(
            req,
            socket,
            'WS_ERR_HANDSHAKE',
            500,
            'handleProtocols chose a subprotocol the client did not offer',
          );
          return;
        }
        protocol = chosen;
      }
    }
    // RFC 7692: the first acceptable permessage-deflate offer, if we take any.
    const agreed = this.deflate !== undefined ? acceptDeflateOffer(extensions, this.deflate.negotiation) : null;
    let response: string;
    const lines = acceptResponseLines(key, protocol, agreed?.response);
    try {
      // As in ws: listeners see (and may change) the whole response head, line by line.
      if (this.listenerCount('headers') > 0) this.emit('headers', lines, req);
    } catch (thrown) {
      const err = createError(
        'WS_ERR_UNEXPECTED_CONDITION',
        `a headers listener threw: ${thrown instanceof Error ? thrown.message : String(thrown)}`,
        { cause: thrown },
      );
      this.applicationFault(req, socket, err);
      return;
    }
    try {
      response = serializeResponseLines(lines);
    } catch (err) {
      // A line a headers listener added that cannot be sent (CR/LF, not "Name: value", ...).
      this.applicationFault(req, socket, err as Error);
      return;
    }
    socket.write(response);
    socket.removeListener('error', socketOnHandshakeError);

    const ws = new WebSocket();
    if (protocol !== undefined) ws.protocol = protocol;
    if (agreed) ws.extensions = agreed.response;
    ws.setSocket(
      socket,
      head,
      this.currentConnectionOptions(),
      agreed ? new MessageDeflate(agreed.params, this.deflate!.settings, true, this.options.maxPayload) : undefined,
    );
    this.connectionCount++;
    this.connections.add(ws);
    ws.host = this;
    this.sweep.add(ws);
    (ws as TrackedSocket)[kServer] = this;
    ws.on('close', clientOnClose);
    ws.emitOpen();
    cb(ws, req);
  }

  /**
   * Refuse a handshake: report it on `wsClientError` if anyone listens, else answer `status`.
   * A refusal that cannot be sent as asked (the application gave verifyClient's `done` a
   * header value with CR/LF, an invalid name, a bad status...) becomes an application fault.
   */
  private refuse(
    req: http.IncomingMessage,
    socket: Duplex,
    code: HandshakeErrorCode,
    status: number,
    message: string,
    headers?: HeaderFields,
  ): void {
    let response: string;
    try {
      // Built first even when a wsClientError listener answers, so it never gets unsendable headers.
      response = buildErrorResponse(status, message, headers);
    } catch (err) {
      this.applicationFault(req, socket, err as Error);
      return;
    }
    if (this.listenerCount('wsClientError') > 0) {
      const err = createError(code, message, headers === undefined ? { status } : { status, headers });
      this.emit('wsClientError', err, socket, req);
      return;
    }
    endHandshake(socket, response);
  }

  /**
   * The application handed duet something it cannot send (a bad header or status in a refusal,
   * an invalid line from a `headers` listener) or a `headers` listener threw. The handshake is
   * refused with a plain 500 and nothing of what was asked, and `err` is reported: on
   * `wsClientError` (status 500; the listener answers) when anyone listens there, otherwise
   * duet answers and emits `error`, or a process warning when nobody listens to that either,
   * so the mistake is seen and the server keeps running.
   */
  private applicationFault(req: http.IncomingMessage, socket: Duplex, err: Error): void {
    if (this.listenerCount('wsClientError') > 0) {
      const refusal = err as HandshakeRefusal;
      refusal.code ??= 'WS_ERR_HANDSHAKE';
      refusal.status = 500;
      this.emit('wsClientError', refusal, socket, req);
      return;
    }
    this.abort(socket, 500, http.STATUS_CODES[500]!);
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(err);
  }

  private abort(socket: Duplex, status: number, message: string, headers?: HeaderFields): void {
    abortHandshake(socket, status, message, headers);
  }

  /**
   * Graceful shutdown: stop accepting connections, close every open one with 1001 (Going
   * Away), wait up to `shutdownTimeout` for their closing handshakes, then terminate the
   * rest. `close` is emitted once, and `cb` called, when the server and every connection are
   * gone. (ws 8 leaves open connections alone here; see docs/server.md.)
   */
  close(cb?: (err?: Error) => void): void {
    this.shutdown(CloseCode.GOING_AWAY, 'server shutting down', cb);
  }

  /** Like close(), with your own close code and reason. */
  closeAll(code: number = CloseCode.GOING_AWAY, reason = 'server shutting down', cb?: (err?: Error) => void): void {
    this.shutdown(code, reason, cb);
  }

  private shutdown(code: number, reason: string, cb?: (err?: Error) => void): void {
    // Check the arguments before anything is shut down.
    if (!closeCodeIsSendable(code)) throw new TypeError(`Invalid close code: ${code}`);
    if (Buffer.byteLength(reason) > 123) throw new RangeError('The close reason must not be greater than 123 bytes');
    const wasRunning = this.state === 'running';
    this.stopAccepting(cb);
    if (!wasRunning) return;
    this.sweep.stop();
    this.emit('shutdown');
    for (const ws of this.connections) ws.close(code, reason);
    if (this.connections.size > 0) {
      const timer = setTimeout(() => {
        for (const ws of this.connections) ws.terminate();
      }, this.options.shutdownTimeout);
      timer.unref();
      this.once('close', () => clearTimeout(timer));
    }
  }

  /**
   * Broadcast to every open connection: the frame is encoded once (and compressed once for
   * connections with permessage-deflate). Returns how many got it.
   */
  broadcast(data: string | Buffer | ArrayBuffer | ArrayBufferView, options?: PublishOptions): number {
    const payload =
      typeof data === 'string'
        ? Buffer.from(data, 'utf8')
        : Buffer.isBuffer(data)
          ? data
          : ArrayBuffer.isView(data)
            ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
            : Buffer.from(data);
    const binary = options?.binary ?? typeof data !== 'string';
    const message = new SharedMessage(payload, binary, options?.compress !== false);
    let sent = 0;
    for (const ws of this.connections) if (ws.sendEncoded(message)) sent++;
    return sent;
  }

  /** What an operator needs to know, as plain numbers. */
  stats(): ServerStats {
    return { connections: this.connections.size, ...this.counters, ...this.pubsubStats() };
  }

  /** Topic figures for stats(); push/ fills them in. @internal */
  protected pubsubStats(): { topics: number; subscriptions: number } {
    return { topics: 0, subscriptions: 0 };
  }

  private stopAccepting(cb?: (err?: Error) => void): void {
    if (cb) {
      if (this.state === 'closed') {
        process.nextTick(cb, createError('WS_ERR_SERVER_NOT_RUNNING', 'The server is not running'));
        return;
      }
      this.once('close', () => cb());
    }
    if (this.state !== 'running') return;
    this.state = 'closing';
    this.detach?.();
    this.detach = undefined;
    const server = this.server;
    if (server && this.ownsServer) {
      server.close(() => {
        this.ownsServer = false;
        if (this.connectionCount === 0) this.finishClose();
      });
      // Keep-alive HTTP connections would hold close() open.
      server.closeIdleConnections();
      return;
    }
    if (this.connectionCount === 0) process.nextTick(() => this.finishClose());
  }

  /** A connection of this server closed. @internal */
  connectionClosed(ws: WebSocket): void {
    this.connectionCount--;
    this.connections.delete(ws);
    if (this.state === 'closing' && this.connectionCount === 0) this.finishClose();
  }

  private finishClose(): void {
    if (this.state === 'closed') return;
    if (this.ownsServer) return; // server.close callback will call again
    this.state = 'closed';
    this.sweep.stop();
    this.emit('close');
  }
}
