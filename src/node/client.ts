/**
 * The client side of the opening handshake: the HTTP upgrade request (node:http / node:https,
 * so agents, TLS options and createConnection work as in any Node HTTP client; over a Unix
 * domain socket for ws+unix: URLs), credentials, the checks on the response, redirects when
 * asked, ws's `upgrade` / `unexpected-response` / `redirect` events, and the handshake
 * timeout. Once the server said 101, the socket goes to the shared connection class. The URL
 * and argument rules are client-url.ts; the options and their defaults client-options.ts.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import { acceptDeflateResponse, deflateOffer, PERMESSAGE_DEFLATE } from '../protocol/deflate-negotiation.js';
import { applicationThrew, createError, HandshakeError } from '../protocol/errors.js';
import { generateKey, parseExtensions } from '../protocol/handshake.js';
import { headerFieldList } from '../protocol/header-fields.js';
import { checkUpgradeResponse } from '../protocol/handshake-response.js';
import { CLIENT_DEFAULTS, type ClientOptions } from './client-options.js';
import {
  basicAuthorization,
  redirectKeepsCredentials,
  resolveRedirect,
  sameServer,
  urlCredentials,
  type WebSocketUrl,
} from './client-url.js';
import type { WebSocket } from './connection.js';
import type { CodedError, ConnectionOptions } from './connection-types.js';
import { deadlines } from './deadlines.js';
import { MessageDeflate, resolveDeflateSettings } from './deflate.js';

export { CLIENT_DEFAULTS, type ClientOptions } from './client-options.js';
export { parseProtocolsArgument, parseWebSocketUrl, type WebSocketUrl } from './client-url.js';

/** What the connection class offers the handshake code. */
export interface ClientTarget {
  url: string;
  protocol: string;
  extensions: string;
  readyState: number;
  listenerCount(event: string): number;
  /** @internal */ emitSafely(event: string, ...args: unknown[]): void;
  /** @internal */ attachClientSocket(
    socket: Duplex,
    head: Buffer,
    options: ConnectionOptions,
    deflate: MessageDeflate | undefined,
  ): void;
  /** @internal */ failHandshake(err: Error & { code: string }): void;
}

/**
 * Describe a network failure in one line (refused, DNS, TLS, reset). The error keeps the
 * system's code (ECONNREFUSED, ...), as ws passes it on, and the original as `cause`. The
 * URL's credentials never appear in it.
 */
function describeNetworkError(err: NodeJS.ErrnoException, target: WebSocketUrl): HandshakeError {
  const where = target.socketPath !== undefined ? `the Unix socket ${target.socketPath}` : target.url.host;
  let message: string;
  switch (err.code) {
    case 'ECONNREFUSED':
      message = `Connection refused by ${where}`;
      break;
    case 'ENOENT':
      message = `No such Unix socket: ${target.socketPath ?? target.url.host}`;
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      message = `Host not found: ${target.url.hostname}`;
      break;
    case 'ECONNRESET':
      message = `Connection reset by ${where} during the handshake`;
      break;
    default:
      message =
        err.code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(err.code)
          ? `TLS error with ${where}: ${err.message}`
          : `Could not connect to ${where}: ${err.message}`;
  }
  return new HandshakeError(err.code ?? 'WS_ERR_CONNECT', message, { cause: err });
}

/** Request headers a redirect to another server (or from wss: to ws:) does not carry along. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie']);

/** The error for a response other than 101: its status, and the start of its body when read. */
function unexpectedResponse(res: http.IncomingMessage, body: string): HandshakeError {
  const status = res.statusCode ?? 0;
  const text = body.trim().replace(/\s+/g, ' ').slice(0, 200);
  return createError(
    'WS_ERR_UNEXPECTED_RESPONSE',
    `Unexpected server response: ${status} ${res.statusMessage ?? ''}`.trim() + (text ? ` (${text})` : ''),
    { status },
  );
}

/**
 * Start the opening handshake for `target` to `first`; reports through `attachClientSocket` /
 * `failHandshake`, and ws's `upgrade`, `unexpected-response` and `redirect` events. Returns
 * the function that cancels it. Bad options throw before anything starts.
 */
export function openClient(
  target: ClientTarget,
  first: WebSocketUrl,
  protocols: string[],
  options: ClientOptions,
): () => void {
  const opts = { ...CLIENT_DEFAULTS, ...options };
  // undefined: the default; 0: no timeout (as in ws); anything else must be a duration.
  const handshakeTimeout = opts.handshakeTimeout ?? CLIENT_DEFAULTS.handshakeTimeout;
  if (typeof handshakeTimeout !== 'number' || !(handshakeTimeout >= 0) || !Number.isFinite(handshakeTimeout)) {
    throw new RangeError(
      `handshakeTimeout must be a number of milliseconds >= 0 (0: no timeout), got ${String(handshakeTimeout)}`,
    );
  }
  // Checked before anything starts, so a bad header throws from the constructor (as in ws,
  // where node:http throws) and no request, timer or listener is left behind.
  const userHeaders = headerFieldList(opts.headers);
  if (opts.origin !== undefined) headerFieldList({ Origin: opts.origin });
  if (opts.auth !== undefined && typeof opts.auth !== 'string') {
    throw new TypeError(`The auth option must be a string 'user:password', got ${typeof opts.auth}`);
  }
  // The URL's own credentials win over the option, as in ws.
  const credentials = urlCredentials(first.url) ?? opts.auth;
  // Resolved first, so bad options throw from the constructor.
  const pmd = opts.perMessageDeflate ? (opts.perMessageDeflate === true ? {} : opts.perMessageDeflate) : undefined;
  const offer = pmd !== undefined ? deflateOffer(pmd) : undefined;
  const deflateSettings = pmd !== undefined ? resolveDeflateSettings(pmd) : undefined;
  let redirects = 0;
  let request: http.ClientRequest | undefined;
  let finished = false;

  const timer = {
    expire(): void {
      fail(createError('WS_ERR_HANDSHAKE_TIMEOUT', `Opening handshake timed out after ${handshakeTimeout} ms`));
    },
  };
  if (handshakeTimeout > 0) deadlines.add(timer, handshakeTimeout);

  const onAbort = (): void => fail(createError('ABORT_ERR', 'The connection attempt was aborted'));
  if (opts.signal) {
    if (opts.signal.aborted) {
      queueMicrotask(onAbort);
    } else {
      opts.signal.addEventListener('abort', onAbort, { once: true });
    }
  }

  function cleanup(): void {
    finished = true;
    deadlines.delete(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }

  function fail(err: CodedError): void {
    if (finished) return;
    cleanup();
    request?.destroy();
    target.failHandshake(err);
  }

  /** The request headers for `hop`: the application's (less what a redirect leaves behind), then ours. */
  function requestHeaders(hop: WebSocketUrl, key: string): Record<string, string | string[]> {
    // After a redirect to another server (or down to ws:), credentials and cookies stay behind
    // and so does a Host header of the application's: unless a `redirect` listener is there to
    // decide for itself (ws's rule).
    const trusted = redirects === 0 || target.listenerCount('redirect') > 0 || redirectKeepsCredentials(first, hop);
    const crossHost = redirects > 0 && target.listenerCount('redirect') === 0 && !sameServer(first, hop);
    const headers: Record<string, string | string[]> = {};
    let authorization = false;
    for (const [name, values] of userHeaders) {
      const lower = name.toLowerCase();
      if (!trusted && CREDENTIAL_HEADERS.has(lower)) continue;
      if (crossHost && lower === 'host') continue;
      if (lower === 'authorization') authorization = true;
      // One value as a string, so that `request.getHeader()` reads as it does in node:http.
      headers[name] = values.length === 1 ? values[0] : values;
    }
    // An Authorization header of the application's wins over credentials (as in node:http);
    // a redirect's own credentials over the first URL's.
    const basic = trusted ? (urlCredentials(hop.url) ?? credentials) : undefined;
    if (basic !== undefined && !authorization) headers.Authorization = basicAuthorization(basic);
    headers.Connection = 'Upgrade';
    headers.Upgrade = 'websocket';
    headers['Sec-WebSocket-Key'] = key;
    headers['Sec-WebSocket-Version'] = '13';
    if (protocols.length > 0) headers['Sec-WebSocket-Protocol'] = protocols.join(', ');
    if (offer !== undefined) headers['Sec-WebSocket-Extensions'] = offer;
    if (opts.origin !== undefined) headers.Origin = opts.origin;
    return headers;
  }

  function requestOptions(hop: WebSocketUrl, key: string): https.RequestOptions {
    const headers = requestHeaders(hop, key);
    let result: https.RequestOptions;
    if (hop.socketPath !== undefined) {
      result = { socketPath: hop.socketPath, path: hop.path, method: 'GET', headers };
    } else {
      const hostname = hop.url.hostname.startsWith('[') ? hop.url.hostname.slice(1, -1) : hop.url.hostname;
      result = {
        host: hostname,
        port: hop.url.port === '' ? (hop.secure ? 443 : 80) : Number(hop.url.port),
        path: hop.path,
        method: 'GET',
        headers,
        localAddress: opts.localAddress,
        family: opts.family,
        lookup: opts.lookup,
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        pfx: opts.pfx,
        passphrase: opts.passphrase,
        ciphers: opts.ciphers,
        minVersion: opts.minVersion,
        maxVersion: opts.maxVersion,
        checkServerIdentity: opts.checkServerIdentity,
        rejectUnauthorized: opts.rejectUnauthorized,
        servername: opts.servername ?? (isIP(hostname) ? undefined : hostname),
      };
    }
    result.agent = opts.agent;
    result.createConnection = opts.createConnection;
    // Without an agent, node:http uses its global one; a fresh connection is what we want.
    if (opts.agent === undefined && opts.createConnection === undefined) result.agent = false;
    for (const k of Object.keys(result) as Array<keyof https.RequestOptions>) {
      if (result[k] === undefined) delete result[k];
    }
    return result;
  }

  function send(hop: WebSocketUrl): void {
    const key = generateKey();
    let req: http.ClientRequest;
    try {
      req = (hop.secure ? https.request : http.request)(requestOptions(hop, key));
    } catch (err) {
      // node:http refused the request (after a redirect: a Location it cannot use).
      fail(createError('WS_ERR_CONNECT', `Could not make the request: ${(err as Error).message}`, { cause: err }));
      return;
    }
    request = req;
    req.on('error', (err: NodeJS.ErrnoException) => fail(describeNetworkError(err, hop)));
    req.on('response', (res) => onResponse(req, res, hop));
    req.on('upgrade', (res, socket: Duplex, head: Buffer) => onUpgrade(res, socket, head, key));
    // ws's event: the next request of a redirect, its headers still open to change.
    if (redirects > 0) target.emitSafely('redirect', target.url, req);
    // A `redirect` listener may have closed the connection.
    if (finished) return;
    if (opts.finishRequest === undefined) {
      req.end();
      return;
    }
    try {
      opts.finishRequest(req, target as unknown as WebSocket);
    } catch (thrown) {
      fail(applicationThrew('finishRequest', thrown));
    }
  }

  function onResponse(req: http.ClientRequest, res: http.IncomingMessage, hop: WebSocketUrl): void {
    const status = res.statusCode ?? 0;
    if (status === 101) {
      // node:http treats a 101 without a proper Upgrade/Connection pair as a plain response.
      res.resume();
      req.destroy();
      fail(
        createError(
          'WS_ERR_INVALID_UPGRADE_HEADER',
          'The server answered 101 without both Upgrade: websocket and Connection: Upgrade',
        ),
      );
      return;
    }
    const location = res.headers.location;
    if (opts.followRedirects && status >= 300 && status < 400 && location !== undefined) {
      res.resume();
      req.destroy();
      redirect(location, hop);
      return;
    }
    if (target.listenerCount('unexpected-response') > 0) {
      // ws's event: the application reads the response (and may abort the request, or close
      // the WebSocket). Once the response is over, the connection fails as it would have.
      target.emitSafely('unexpected-response', req, res);
      const over = (): void => fail(unexpectedResponse(res, ''));
      res.on('end', over);
      res.on('close', over);
      res.on('error', over);
      req.on('close', over);
      return;
    }
    // Keep the first part of the server's explanation for the error message.
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (body.length < 200) body += chunk;
    });
    const report = (): void => fail(unexpectedResponse(res, body));
    res.on('end', report);
    res.on('error', report);
    res.on('close', report);
  }

  function redirect(location: string, hop: WebSocketUrl): void {
    if (++redirects > opts.maxRedirects) {
      fail(createError('WS_ERR_TOO_MANY_REDIRECTS', `More than ${opts.maxRedirects} redirects`));
      return;
    }
    let next: WebSocketUrl;
    try {
      next = resolveRedirect(location, hop);
    } catch {
      fail(createError('WS_ERR_INVALID_REDIRECT', `Invalid redirect location: ${location}`));
      return;
    }
    // A server on the network must not point the client at a local socket.
    if (next.socketPath !== undefined && hop.socketPath === undefined) {
      fail(createError('WS_ERR_INVALID_REDIRECT', `A redirect from a network URL to a ws+unix: URL: ${location}`));
      return;
    }
    target.url = next.url.href;
    send(next);
  }

  function onUpgrade(res: http.IncomingMessage, socket: Duplex, head: Buffer, key: string): void {
    if (finished) {
      socket.destroy();
      return;
    }
    // ws's event: the 101 response, before it is checked (its headers: Set-Cookie, ...).
    target.emitSafely('upgrade', res);
    // An `upgrade` listener may have closed the connection.
    if (finished) {
      socket.destroy();
      return;
    }
    const check = checkUpgradeResponse(
      res.statusCode ?? 0,
      res.headers,
      key,
      protocols,
      offer !== undefined ? [PERMESSAGE_DEFLATE] : [],
    );
    if (!check.ok) {
      socket.destroy();
      fail(createError(check.code, check.message));
      return;
    }
    let deflate: MessageDeflate | undefined;
    if (offer !== undefined && check.extensions !== '') {
      // RFC 7692 section 7: a response we cannot live with fails the connection.
      const agreed = acceptDeflateResponse(parseExtensions(check.extensions) ?? [], pmd);
      if (agreed !== null && 'error' in agreed) {
        socket.destroy();
        fail(createError('WS_ERR_INVALID_EXTENSION', `Invalid permessage-deflate response: ${agreed.error}`));
        return;
      }
      if (agreed !== null) deflate = new MessageDeflate(agreed, deflateSettings!, false, opts.maxPayload);
    }
    cleanup();
    target.protocol = check.protocol;
    target.extensions = check.extensions;
    const options: ConnectionOptions = {
      isServer: false,
      maxPayload: opts.maxPayload,
      maxFragments: opts.maxFragments,
      closeTimeout: opts.closeTimeout,
      autoPong: opts.autoPong ?? true,
    };
    target.attachClientSocket(socket, head, options, deflate);
  }

  send(first);
  return () =>
    fail(createError('WS_ERR_CLOSED_BEFORE_OPEN', 'WebSocket was closed before the connection was established'));
}
