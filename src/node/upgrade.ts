/**
 * The server's opening handshake (RFC 6455 4.2), from the upgrade request to the open
 * connection: checking the request, the connection limit and the Origin, verifyClient, the
 * subprotocol and permessage-deflate, the `headers` event and the 101 answer; or a refusal
 * (an HTTP answer, or `wsClientError` when the application wants to answer itself).
 *
 * WebSocketServer (server.ts) keeps the server's lifecycle: the HTTP server it listens on,
 * its connections, the heartbeat sweep, counters, broadcast and shutdown. It holds one
 * UpgradeHandler, and this file knows the server only by the small UpgradeHost interface
 * (whether it is shutting down or full, and where a new connection goes), so imports run one way.
 *
 * Why one file of ~430 lines: the handshake is one path, read top to bottom (check the
 * request, verify, then answer 101 or refuse), and every step may end in the same refusal
 * helpers; the wire rules it applies live in protocol/handshake.ts.
 */
import type { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { acceptDeflateOffer, type DeflateOptions } from '../protocol/deflate-negotiation.js';
import { applicationThrew, createError, type DuetError, type HandshakeErrorCode } from '../protocol/errors.js';
import {
  acceptResponseLines,
  buildErrorResponse,
  checkUpgradeRequest,
  serializeResponseLines,
  type ExtensionOffer,
} from '../protocol/handshake.js';
import type { HeaderFields } from '../protocol/header-fields.js';
import type { WebSocket, ConnectionOptions } from './connection.js';
import { deadlines } from './deadlines.js';
import { MessageDeflate, type DeflateSettings } from './deflate.js';
import type { ResolvedServerOptions, VerifyClientInfo } from './server-options.js';

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

function socketOnHandshakeError(this: Duplex): void {
  this.destroy();
}

/** Marks a socket a handshake was started on: handleUpgrade must not take it twice. */
const kUpgradeStarted = Symbol('duetUpgradeStarted');
type UpgradeSocket = Duplex & { [kUpgradeStarted]?: true };

/** Whether a duet server already started a handshake on `socket`. */
export function upgradeStarted(socket: Duplex): boolean {
  return (socket as UpgradeSocket)[kUpgradeStarted] === true;
}

/** The error for a second handleUpgrade() with one socket (ws throws one too). */
export function upgradeTwiceError(): DuetError {
  return createError(
    'WS_ERR_UPGRADE_TWICE',
    'handleUpgrade() was called more than once with the same socket: two servers (or two calls) took one ' +
      'upgrade request. Give each server its own `path`, or route requests in shouldHandle or your upgrade listener',
  );
}

/** Normalize an origin for comparison: lower-case, no trailing slash. */
export function normalizeOrigin(origin: string): string {
  const s = origin.trim().toLowerCase();
  // A loop rather than /\/+$/, which backtracks quadratically on many slashes and then a letter.
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x2f) end--;
  return s.slice(0, end);
}

/**
 * A request that is not an upgrade reached duet's own server. A
 * WebSocket handshake gone wrong (it carries Sec-WebSocket-* headers but lacks a proper
 * Upgrade/Connection) is answered 400 as RFC 6455 4.2.1 asks; any other request gets 426
 * naming the protocol to upgrade to. Either way the connection is closed.
 */
export function plainAnswer(req: http.IncomingMessage): [number, string, Record<string, string>] {
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

/** permessage-deflate as a server takes it: what we accept, and how we compress. */
export interface ServerDeflate {
  negotiation: DeflateOptions;
  settings: DeflateSettings;
}

/**
 * What the handshake needs of its server (WebSocketServer): its events (`headers`,
 * `wsClientError`, `error`), its options as they are now, whether it still takes connections,
 * and where a new connection goes.
 */
export interface UpgradeHost extends Pick<EventEmitter, 'emit' | 'listenerCount'> {
  readonly options: ResolvedServerOptions;
  /** True once `close()` or `closeAll()` has started. */
  readonly shuttingDown: boolean;
  /** `maxConnections` connections are open. */
  readonly atMaxConnections: boolean;
  /** Count, track and watch a connection whose handshake has just completed. */
  connectionOpened(ws: WebSocket): void;
}

/** Completes or refuses the upgrade requests of one server (one per server, none per handshake). */
export class UpgradeHandler {
  /** What every connection of this server is set up with: one object for all of them. */
  private connectionOptions: ConnectionOptions;

  /**
   * `deflate`: permessage-deflate, already checked (undefined: every offer declined).
   * `allowedOrigins`: the normalized `allowOrigins` list, when it is a list.
   */
  constructor(
    private readonly server: UpgradeHost,
    private readonly deflate: ServerDeflate | undefined,
    private readonly allowedOrigins: Set<string> | undefined,
  ) {
    const options = server.options;
    this.connectionOptions = Object.freeze({
      isServer: true,
      maxPayload: options.maxPayload,
      maxFragments: options.maxFragments,
      closeTimeout: options.closeTimeout,
      autoPong: options.autoPong,
      writeDelay: options.writeDelay,
    });
  }

  /**
   * WebSocketServer#handleUpgrade: check the request, ask verifyClient, then complete. Throws
   * (WS_ERR_UPGRADE_TWICE) when a handshake was already started on `socket`, by this server or
   * another, before touching it: a misconfiguration (two servers taking one request), as ws
   * reports it.
   */
  handle(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    cb: (ws: WebSocket, req: http.IncomingMessage) => void,
  ): void {
    if (upgradeStarted(socket)) throw upgradeTwiceError();
    (socket as UpgradeSocket)[kUpgradeStarted] = true;
    socket.on('error', socketOnHandshakeError);

    if (this.server.shuttingDown) {
      abortHandshake(socket, 503, 'The server is shutting down');
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
    if (this.server.atMaxConnections) {
      this.refuse(req, socket, 'WS_ERR_TOO_MANY_CONNECTIONS', 503, 'Too many connections', { 'Retry-After': '5' });
      return;
    }
    const origin = req.headers.origin;
    if (!this.originAllowed(origin, req)) {
      this.refuse(req, socket, 'WS_ERR_ORIGIN_NOT_ALLOWED', 403, 'Origin not allowed');
      return;
    }

    const verify = this.server.options.verifyClient;
    if (!verify) {
      this.complete(req, socket, head, check.key, check.protocols, check.extensions, cb);
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
          this.complete(req, socket, head, check.key, check.protocols, check.extensions, cb);
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
      this.applicationFault(req, socket, applicationThrew('verifyClient', thrown));
      return;
    }
    this.complete(req, socket, head, check.key, check.protocols, check.extensions, cb);
  }

  private originAllowed(origin: string | undefined, req: http.IncomingMessage): boolean {
    const rule = this.server.options.allowOrigins;
    if (rule === undefined) return true;
    if (typeof rule === 'function') return rule(origin, req);
    // Clients other than browsers send no Origin; the check protects browsers' users.
    if (origin === undefined) return true;
    return this.allowedOrigins!.has(normalizeOrigin(origin));
  }

  private complete(
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
    const server = this.server;
    if (server.shuttingDown) {
      abortHandshake(socket, 503, 'The server is shutting down');
      return;
    }
    if (server.atMaxConnections) {
      this.refuse(req, socket, 'WS_ERR_TOO_MANY_CONNECTIONS', 503, 'Too many connections', { 'Retry-After': '5' });
      return;
    }
    // As in ws 8: after verifyClient; without handleProtocols the first offered one is chosen.
    let protocol: string | undefined;
    if (offered.length > 0) {
      const options = server.options;
      let chosen: string | false;
      try {
        chosen = options.handleProtocols ? options.handleProtocols(new Set(offered), req) : offered[0];
      } catch (thrown) {
        // Like a verifyClient that throws: 500 for this handshake, reported, the process goes on.
        this.applicationFault(req, socket, applicationThrew('handleProtocols', thrown));
        return;
      }
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
      if (server.listenerCount('headers') > 0) server.emit('headers', lines, req);
    } catch (thrown) {
      this.applicationFault(req, socket, applicationThrew('a headers listener', thrown));
      return;
    }
    try {
      response = serializeResponseLines(lines);
    } catch (err) {
      // A line a headers listener added that cannot be sent (CR/LF, not "Name: value", ...).
      this.applicationFault(req, socket, err as Error);
      return;
    }
    // The application's class (the WebSocket option) is made before the 101 goes out, so a
    // constructor that throws is answered 500 like any other application fault.
    let ws: WebSocket;
    try {
      ws = new server.options.WebSocket();
    } catch (thrown) {
      this.applicationFault(req, socket, applicationThrew("the WebSocket class's constructor", thrown));
      return;
    }
    socket.write(response);
    socket.removeListener('error', socketOnHandshakeError);

    if (protocol !== undefined) ws.protocol = protocol;
    if (agreed) ws.extensions = agreed.response;
    ws.setSocket(
      socket,
      head,
      this.currentConnectionOptions(),
      agreed ? new MessageDeflate(agreed.params, this.deflate!.settings, true, server.options.maxPayload) : undefined,
    );
    server.connectionOpened(ws);
    ws.emitOpen();
    cb(ws, req);
  }

  /**
   * The shared options object for new connections; made again if the application changed
   * `wss.options` since (as in ws, such a change applies to connections made afterwards).
   */
  private currentConnectionOptions(): ConnectionOptions {
    const shared = this.connectionOptions;
    const { maxPayload, maxFragments, closeTimeout, autoPong, writeDelay } = this.server.options;
    if (
      shared.maxPayload === maxPayload &&
      shared.maxFragments === maxFragments &&
      shared.closeTimeout === closeTimeout &&
      shared.autoPong === autoPong &&
      shared.writeDelay === writeDelay
    )
      return shared;
    return (this.connectionOptions = Object.freeze({
      isServer: true,
      maxPayload,
      maxFragments,
      closeTimeout,
      autoPong,
      writeDelay,
    }));
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
    if (this.server.listenerCount('wsClientError') > 0) {
      const err = createError(code, message, headers === undefined ? { status } : { status, headers });
      this.server.emit('wsClientError', err, socket, req);
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
    const server = this.server;
    if (server.listenerCount('wsClientError') > 0) {
      const refusal = err as HandshakeRefusal;
      refusal.code ??= 'WS_ERR_HANDSHAKE';
      refusal.status = 500;
      server.emit('wsClientError', refusal, socket, req);
      return;
    }
    abortHandshake(socket, 500, http.STATUS_CODES[500]!);
    if (server.listenerCount('error') > 0) server.emit('error', err);
    else process.emitWarning(err);
  }
}
