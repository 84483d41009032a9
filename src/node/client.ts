/**
 * The client side of the opening handshake: URL rules of the WHATWG standard, the HTTP
 * upgrade request (node:http / node:https, so agents, TLS options and createConnection work as
 * in any Node HTTP client), the checks on the response, redirects when asked, and the
 * handshake timeout. Once the server said 101, the socket goes to the shared connection class.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { isIP } from 'node:net';
import { acceptDeflateResponse, deflateOffer, PERMESSAGE_DEFLATE } from '../protocol/deflate-negotiation.js';
import { createError, HandshakeError } from '../protocol/errors.js';
import { generateKey, parseExtensions } from '../protocol/handshake.js';
import { headerFieldList, type HeaderFields } from '../protocol/header-fields.js';
import { checkUpgradeResponse, normalizeProtocols } from '../protocol/handshake-response.js';
import type { ConnectionOptions } from './connection-types.js';
import { deadlines } from './deadlines.js';
import { MessageDeflate, resolveDeflateSettings, type PerMessageDeflateOptions } from './deflate.js';
import { SERVER_DEFAULTS } from './server-options.js';

/** Node-only options: the third argument of `new WebSocket(url, protocols, options)`. */
export interface ClientOptions extends Pick<
  TlsOptions,
  | 'ca'
  | 'cert'
  | 'key'
  | 'pfx'
  | 'passphrase'
  | 'rejectUnauthorized'
  | 'servername'
  | 'ciphers'
  | 'minVersion'
  | 'maxVersion'
  | 'checkServerIdentity'
> {
  /**
   * Extra request headers (for example `Authorization` or `Cookie`). Values may be strings,
   * finite numbers (sent as `String(n)`) or arrays of them (one header line per element), as
   * node:http's `setHeader` takes them. A name that is not an HTTP token, or a value that is
   * undefined, null, an object, or holds CR, LF, NUL, another control character or non-ASCII
   * text, makes the constructor throw a TypeError with `code` `WS_ERR_INVALID_HEADER` (nothing
   * is sent).
   */
  headers?: HeaderFields;
  /** The `Origin` header to send (browsers always send one; Node sends none by default). Checked as `headers` are. */
  origin?: string;
  /** Milliseconds for the whole opening handshake, connect included (default 30000). */
  handshakeTimeout?: number;
  /** Largest incoming message in bytes; larger ones close the connection with 1009 (default 100 MiB). */
  maxPayload?: number;
  /**
   * Most frames one incoming message may arrive in (empty continuation frames too); the frame
   * over it closes the connection with 1009 (default 131072, as the server; 0 = no limit).
   */
  maxFragments?: number;
  /** Milliseconds to wait for the server to close TCP after the close handshake (default 30000). */
  closeTimeout?: number;
  /** An http(s).Agent for the request (proxies, keep-alive pools). */
  agent?: http.Agent;
  /** Make the socket yourself (as http.request's `createConnection`). */
  createConnection?: http.RequestOptions['createConnection'];
  /** Abort the connection attempt when this signal aborts (an open connection is not affected). */
  signal?: AbortSignal;
  /** Follow HTTP redirects during the handshake (default false, as browsers do not). */
  followRedirects?: boolean;
  /** Most redirects to follow (default 10). */
  maxRedirects?: number;
  /** Answer pings with pongs automatically (default true). */
  autoPong?: boolean;
  /**
   * permessage-deflate (RFC 7692): offered by default, as browsers do (`true`); an object tunes
   * it (see docs/compression.md); `false` offers nothing.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}

export const CLIENT_DEFAULTS = {
  // Browsers rely on TCP's own timeouts (minutes); a library should give up sooner.
  handshakeTimeout: 30_000,
  // As the server (and ws): a peer cannot make us buffer more than this per message.
  maxPayload: 100 * 1024 * 1024,
  // As the server (the reasons are given there).
  maxFragments: SERVER_DEFAULTS.maxFragments,
  closeTimeout: 30_000,
  maxRedirects: 10,
  // As browsers: offer compression; the server decides.
  perMessageDeflate: true as boolean | PerMessageDeflateOptions,
} as const;

/** What the connection class offers the handshake code. */
export interface ClientTarget {
  url: string;
  protocol: string;
  extensions: string;
  readyState: number;
  /** @internal */ attachClientSocket(
    socket: Duplex,
    head: Buffer,
    options: ConnectionOptions,
    deflate: MessageDeflate | undefined,
  ): void;
  /** @internal */ failHandshake(err: Error & { code: string }): void;
}

/** A parsed, checked WebSocket URL. */
export interface WebSocketUrl {
  url: URL;
  secure: boolean;
}

/**
 * Apply the WHATWG URL rules of `new WebSocket(url)`: parse, map http(s) to ws(s), refuse
 * other schemes and any fragment. Throws a `SyntaxError` DOMException.
 */
export function parseWebSocketUrl(input: string | URL, base?: string): WebSocketUrl {
  let url: URL;
  try {
    url = new URL(String(input), base);
  } catch {
    throw new DOMException(`Invalid URL: ${String(input)}`, 'SyntaxError');
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new DOMException(
      `The URL's scheme must be "ws", "wss", "http" or "https", not "${url.protocol.slice(0, -1)}"`,
      'SyntaxError',
    );
  }
  if (url.href.includes('#')) {
    throw new DOMException('The URL must not contain a fragment', 'SyntaxError');
  }
  return { url, secure: url.protocol === 'wss:' };
}

/** Check the `protocols` argument; throws a `SyntaxError` DOMException. */
export function parseProtocolsArgument(protocols: string | readonly string[] | undefined): string[] {
  const list = normalizeProtocols(protocols);
  if (list === null) {
    throw new DOMException('Subprotocols must be unique tokens (RFC 7230 token characters)', 'SyntaxError');
  }
  return list;
}

/**
 * Describe a network failure in one line (refused, DNS, TLS, reset). The error keeps the
 * system's code (ECONNREFUSED, ...), as ws passes it on, and the original as `cause`.
 */
function describeNetworkError(err: NodeJS.ErrnoException, url: URL): HandshakeError {
  const where = url.host;
  let message: string;
  switch (err.code) {
    case 'ECONNREFUSED':
      message = `Connection refused by ${where}`;
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      message = `Host not found: ${url.hostname}`;
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

/** Start the opening handshake for `target`; reports through `attachClientSocket` / `failHandshake`. */
export function openClient(
  target: ClientTarget,
  parsed: WebSocketUrl,
  protocols: string[],
  options: ClientOptions,
): () => void {
  const opts = { ...CLIENT_DEFAULTS, ...options };
  // Checked before anything starts, so a bad header throws from the constructor (as in ws,
  // where node:http throws) and no request, timer or listener is left behind.
  let userHeaders = headerFieldList(opts.headers);
  if (opts.origin !== undefined) headerFieldList({ Origin: opts.origin });
  // Resolved first, so bad options throw from the constructor.
  const pmd = opts.perMessageDeflate ? (opts.perMessageDeflate === true ? {} : opts.perMessageDeflate) : undefined;
  const offer = pmd !== undefined ? deflateOffer(pmd) : undefined;
  const deflateSettings = pmd !== undefined ? resolveDeflateSettings(pmd) : undefined;
  let redirects = 0;
  let request: http.ClientRequest | undefined;
  let finished = false;

  const timer = {
    expire(): void {
      fail(createError('WS_ERR_HANDSHAKE_TIMEOUT', `Opening handshake timed out after ${opts.handshakeTimeout} ms`));
    },
  };
  deadlines.add(timer, opts.handshakeTimeout);

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

  function fail(err: HandshakeError): void {
    if (finished) return;
    cleanup();
    request?.destroy();
    target.failHandshake(err);
  }

  function send(url: URL, secure: boolean): void {
    const key = generateKey();
    const headers: Record<string, string | string[]> = {
      ...Object.fromEntries(userHeaders),
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Version': '13',
    };
    if (protocols.length > 0) headers['Sec-WebSocket-Protocol'] = protocols.join(', ');
    if (offer !== undefined) headers['Sec-WebSocket-Extensions'] = offer;
    if (opts.origin !== undefined) headers.Origin = opts.origin;
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const requestOptions: https.RequestOptions = {
      host: hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      path: url.pathname + url.search,
      method: 'GET',
      headers,
      agent: opts.agent,
      createConnection: opts.createConnection,
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
    // Without an agent, node:http uses its global one; a fresh connection is what we want.
    if (opts.agent === undefined && opts.createConnection === undefined) requestOptions.agent = false;
    for (const k of Object.keys(requestOptions) as Array<keyof https.RequestOptions>) {
      if (requestOptions[k] === undefined) delete requestOptions[k];
    }
    const req = (secure ? https.request : http.request)(requestOptions);
    request = req;

    req.on('error', (err: NodeJS.ErrnoException) => fail(describeNetworkError(err, url)));

    req.on('response', (res) => {
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
        if (++redirects > opts.maxRedirects) {
          fail(createError('WS_ERR_TOO_MANY_REDIRECTS', `More than ${opts.maxRedirects} redirects`));
          return;
        }
        let next: WebSocketUrl;
        try {
          next = parseWebSocketUrl(location, url.href);
        } catch (err) {
          fail(createError('WS_ERR_INVALID_REDIRECT', `Invalid redirect location: ${location}`));
          return;
        }
        // Credentials and cookies set by the caller are for the original host only.
        if (next.url.host !== url.host) {
          const dropped = new Set(['authorization', 'cookie']);
          userHeaders = userHeaders.filter(([n]) => !dropped.has(n.toLowerCase()));
        }
        target.url = next.url.href;
        send(next.url, next.secure);
        return;
      }
      // Keep the first part of the server's explanation for the error message.
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 200) body += chunk;
      });
      const report = (): void => {
        const text = body.trim().replace(/\s+/g, ' ').slice(0, 200);
        fail(
          createError(
            'WS_ERR_UNEXPECTED_RESPONSE',
            `Unexpected server response: ${status} ${res.statusMessage ?? ''}`.trim() + (text ? ` (${text})` : ''),
            { status },
          ),
        );
      };
      res.on('end', report);
      res.on('error', report);
      res.on('close', report);
    });

    req.on('upgrade', (res, socket: Duplex, head: Buffer) => {
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
    });

    req.end();
  }

  send(parsed.url, parsed.secure);
  return () =>
    fail(createError('WS_ERR_CLOSED_BEFORE_OPEN', 'WebSocket was closed before the connection was established'));
}
