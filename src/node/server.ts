/**
 * WebSocketServer: accepts RFC 6455 opening handshakes on a node:http(s) server (its own, a
 * user's, or none with `noServer` + `handleUpgrade`) and hands out WebSocket connections.
 * The API follows `ws`'s server, so switching is a one-line import change.
 *
 * This file is the server's lifecycle: the HTTP server it listens on (or attaches to), its
 * connections, the heartbeat sweep, counters and stats, broadcast and shutdown. The opening
 * handshake itself (checks, verifyClient, subprotocol, permessage-deflate, the 101 answer,
 * refusals) is upgrade.ts, one UpgradeHandler per server.
 */
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode, closeCodeIsSendable } from '../protocol/close-codes.js';
import { acceptDeflateOffer } from '../protocol/deflate-negotiation.js';
import { createError } from '../protocol/errors.js';
import { WebSocket } from './connection.js';
import { resolveDeflateSettings } from './deflate.js';
import { newCounters, type PubSub, type PublishOptions, type ServerCounters, type SlowConsumerPolicy } from './host.js';
import { SERVER_DEFAULTS, type ResolvedServerOptions, type ServerOptions } from './server-options.js';
import { SharedMessage } from './shared-message.js';
import { StandaloneServer } from './standalone.js';
import { Sweep } from './sweep.js';
import {
  abortHandshake,
  normalizeOrigin,
  plainAnswer,
  UpgradeHandler,
  upgradeStarted,
  upgradeTwiceError,
  type HandshakeRefusal,
  type ServerDeflate,
} from './upgrade.js';

export type { ServerOptions, VerifyClientInfo, VerifyClientAsync, VerifyClientDone } from './server-options.js';
export { abortHandshake, type HandshakeRefusal } from './upgrade.js';

/** An HTTP server duet attaches to (http.Server or https.Server), or its own StandaloneServer. */
type HttpServerLike = http.Server | StandaloneServer;

// Connections find their server through a symbol: one shared close listener, no closure each.
const kServer = Symbol('duetServer');
type TrackedSocket = WebSocket & { [kServer]?: WebSocketServer };

function clientOnClose(this: TrackedSocket): void {
  this[kServer]?.connectionClosed(this);
}

/** The duet servers attached to each HTTP server, in the order they were attached. */
const attached = new WeakMap<HttpServerLike, WebSocketServer[]>();

/** The numbers `stats()` returns. */
export interface ServerStats extends ServerCounters {
  /** Open connections. */
  connections: number;
  /** Topics with at least one subscriber. */
  topics: number;
  /** Subscriptions over all topics. */
  subscriptions: number;
}

/**
 * The events of a WebSocketServer and the arguments their listeners get (`W`: the class of its
 * connections, the `WebSocket` option).
 */
export interface ServerEvents<W extends WebSocket = WebSocket> {
  /** A handshake completed: `ws` is open; `req` is the upgrade request. */
  connection: [ws: W, req: http.IncomingMessage];
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
type ServerListener<S, A extends unknown[]> = (this: S, ...args: A) => void;
type Events<T extends typeof WebSocket> = ServerEvents<InstanceType<T>>;

// Typed overloads for the server's events (merged into the class below). Other event names
// take a listener of any arguments, without `any`: an unannotated parameter is `unknown`.
export interface WebSocketServer<T extends typeof WebSocket = typeof WebSocket> {
  on<K extends keyof ServerEvents>(event: K, listener: ServerListener<this, Events<T>[K]>): this;
  on<A extends unknown[]>(event: string | symbol, listener: ServerListener<this, A>): this;
  once<K extends keyof ServerEvents>(event: K, listener: ServerListener<this, Events<T>[K]>): this;
  once<A extends unknown[]>(event: string | symbol, listener: ServerListener<this, A>): this;
  off<K extends keyof ServerEvents>(event: K, listener: ServerListener<this, Events<T>[K]>): this;
  off<A extends unknown[]>(event: string | symbol, listener: ServerListener<this, A>): this;
  addListener<K extends keyof ServerEvents>(event: K, listener: ServerListener<this, Events<T>[K]>): this;
  addListener<A extends unknown[]>(event: string | symbol, listener: ServerListener<this, A>): this;
  removeListener<K extends keyof ServerEvents>(event: K, listener: ServerListener<this, Events<T>[K]>): this;
  removeListener<A extends unknown[]>(event: string | symbol, listener: ServerListener<this, A>): this;
}

/**
 * The server side of node/: the opening handshake (on its own HTTP server, one it is given,
 * or `handleUpgrade` from any framework), its connections, heartbeat, slow consumers and a
 * graceful shutdown. Applications import push/'s subclass (`duet`'s WebSocketServer), which
 * adds topics, history and timed jobs. Options and events: docs/server.md. `T` is the class
 * of its connections (the `WebSocket` option).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- on purpose: the event overloads
export class WebSocketServer<T extends typeof WebSocket = typeof WebSocket> extends EventEmitter {
  /**
   * Open connections, when `clientTracking` is on (the default); undefined when it is off. Typed
   * as a Set, as ws's types declare it, so that ws code (`wss.clients.forEach(...)`) compiles.
   */
  readonly clients: Set<InstanceType<T>>;
  /** The resolved options, defaults filled in. */
  readonly options: ResolvedServerOptions<T>;
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
  private detach: (() => void) | undefined;
  /** The opening handshake: checks, verifyClient, the 101 answer, refusals (upgrade.ts). */
  private readonly upgradeHandler: UpgradeHandler;

  /**
   * Exactly one of `port` (duet creates the HTTP server), `server` (attach to yours) or
   * `noServer` (call `handleUpgrade` yourself). `callback` runs once a created server listens.
   */
  constructor(options: ServerOptions<T> = {}, callback?: () => void) {
    super();
    const modes = [options.port !== undefined, options.server !== undefined, options.noServer === true].filter(
      Boolean,
    ).length;
    if (modes !== 1) {
      throw new TypeError('One and only one of the "port", "server", or "noServer" options must be specified');
    }
    const connectionClass = options.WebSocket ?? WebSocket;
    if (
      connectionClass !== WebSocket &&
      !(typeof connectionClass === 'function' && connectionClass.prototype instanceof WebSocket)
    ) {
      throw new TypeError("The WebSocket option must be duet's WebSocket class or a subclass of it");
    }
    this.options = { ...SERVER_DEFAULTS, ...options, WebSocket: connectionClass as T };
    const writeDelay = this.options.writeDelay ?? 0;
    if (!(Number.isInteger(writeDelay) && writeDelay >= 0 && writeDelay <= 1000))
      throw new RangeError(
        `writeDelay must be a whole number of milliseconds from 0 to 1000, got ${String(writeDelay)}`,
      );
    // As ws: no Set without clientTracking (the declared type is ws's, see above).
    this.clients = this.options.clientTracking
      ? (this.connections as Set<InstanceType<T>>)
      : (undefined as unknown as Set<InstanceType<T>>);
    this.maxBufferedAmount = this.options.maxBufferedAmount;
    this.slowConsumer = this.options.slowConsumer;
    // permessage-deflate: what we accept, and how we compress (undefined: declined).
    let deflate: ServerDeflate | undefined;
    const pmd = this.options.perMessageDeflate;
    if (pmd) {
      const negotiation = pmd === true ? {} : pmd;
      // Checked now, so a bad option throws here rather than at the first handshake.
      acceptDeflateOffer([], negotiation);
      deflate = { negotiation, settings: resolveDeflateSettings(negotiation) };
    }
    this.sweep = new Sweep(this.connections, this.counters, {
      heartbeat: this.options.heartbeat,
      idleTimeout: this.options.idleTimeout,
      assemblyTimeout: this.options.assemblyTimeout,
    });
    let allowedOrigins: Set<string> | undefined;
    if (Array.isArray(options.allowOrigins)) {
      allowedOrigins = new Set(options.allowOrigins.map(normalizeOrigin));
    }
    this.upgradeHandler = new UpgradeHandler(this, deflate, allowedOrigins);

    if (options.port !== undefined) {
      // Our own listener reads request heads itself (standalone.ts): a client that never
      // finishes its request head is answered 408 and dropped.
      const server = new StandaloneServer({
        maxHeaderSize: options.maxHeaderSize ?? http.maxHeaderSize,
        handshakeTimeout: this.options.handshakeTimeout,
        answerPlain: plainAnswer,
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
          abortHandshake(socket, 404, 'No WebSocket endpoint at this path');
          return;
        }
        if (upgradeStarted(socket)) {
          // Another server on this HTTP server took the request first. handleUpgrade would
          // throw WS_ERR_UPGRADE_TWICE to its caller, as ws does; here the caller is the HTTP
          // server's event, where a throw would crash the process at a client's request: the
          // misconfiguration is reported instead, and the first server keeps the socket.
          const err = upgradeTwiceError();
          if (this.listenerCount('error') > 0) this.emit('error', err);
          else process.emitWarning(err);
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

  private readonly emitConnection = (ws: InstanceType<T>, req: http.IncomingMessage): void => {
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
    cb: (ws: InstanceType<T>, req: http.IncomingMessage) => void,
  ): void {
    this.upgradeHandler.handle(req, socket, head, cb as (ws: WebSocket, req: http.IncomingMessage) => void);
  }

  /** Whether `close()` or `closeAll()` has started: no new connections. @internal */
  get shuttingDown(): boolean {
    return this.state !== 'running';
  }

  /** Whether `maxConnections` connections are open. @internal */
  get atMaxConnections(): boolean {
    return this.connectionCount >= this.options.maxConnections;
  }

  /** A handshake of this server completed: count, track and watch `ws`. @internal */
  connectionOpened(ws: WebSocket): void {
    this.connectionCount++;
    this.connections.add(ws);
    ws.host = this;
    this.sweep.add(ws);
    (ws as TrackedSocket)[kServer] = this;
    ws.on('close', clientOnClose);
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
