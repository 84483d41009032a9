/**
 * The client's options (`new WebSocket(url, options)` / `new WebSocket(url, protocols,
 * options)`): what each means, and every default stated once with the reason for it.
 */
import type * as http from 'node:http';
import type { LookupFunction } from 'node:net';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { HeaderFields } from '../protocol/header-fields.js';
import type { WebSocket } from './connection.js';
import type { PerMessageDeflateOptions } from './deflate-options.js';
import { SERVER_DEFAULTS } from './server-options.js';

/**
 * The client's Node options: the second argument of `new WebSocket(url, options)` (as in ws)
 * or the third of `new WebSocket(url, protocols, options)`.
 */
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
   * The subprotocols to offer, when the `protocols` argument is not given (ws's option of that
   * name): a string or a list, checked as the argument is.
   */
  protocols?: string | readonly string[];
  /**
   * Extra request headers (for example `Authorization` or `Cookie`). Values may be strings,
   * finite numbers (sent as `String(n)`) or arrays of them (one header line per element), as
   * node:http's `setHeader` takes them. A name that is not an HTTP token, or a value that is
   * undefined, null, an object, or holds CR, LF, NUL, another control character or non-ASCII
   * text, makes the constructor throw a TypeError with `code` `WS_ERR_INVALID_HEADER` (nothing
   * is sent).
   */
  headers?: HeaderFields;
  /**
   * Basic authentication, `'user:password'`: sent as `Authorization: Basic ...` (as node:http's
   * option of that name). Credentials in the URL (`ws://user:pass@host/`) take precedence, and
   * an `Authorization` header in `headers` over both.
   */
  auth?: string;
  /** The `Origin` header to send (browsers always send one; Node sends none by default). Checked as `headers` are. */
  origin?: string;
  /** Milliseconds for the whole opening handshake, connect included (default 30000; 0: no timeout, as in ws). */
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
  /** The local address to connect from (as http.request's option). */
  localAddress?: string;
  /** The IP family to resolve the host to, 4 or 6 (as http.request's option; default both). */
  family?: number;
  /** A custom DNS lookup (as http.request's option; default `dns.lookup`). */
  lookup?: LookupFunction;
  /** Abort the connection attempt when this signal aborts (an open connection is not affected). */
  signal?: AbortSignal;
  /**
   * Follow HTTP redirects during the handshake (default false, as browsers do not). Across
   * hosts, or from wss: to ws:, `Authorization`, `Cookie` and `Host` headers and credentials
   * are left behind, unless a `redirect` listener is there to decide (as in ws).
   */
  followRedirects?: boolean;
  /** Most redirects to follow (default 10). */
  maxRedirects?: number;
  /**
   * Called with each handshake request (the first and every redirect's) instead of
   * `request.end()`: set headers on it, then end it yourself (ws's option of that name).
   */
  finishRequest?: (request: http.ClientRequest, websocket: WebSocket) => void;
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
  // As browsers (which never follow a WebSocket redirect) and ws: a redirect is an error
  // unless asked for.
  followRedirects: false,
  // As ws: more than any real chain needs, few enough that a redirect loop ends at once.
  maxRedirects: 10,
  // As browsers: offer compression; the server decides.
  perMessageDeflate: true as boolean | PerMessageDeflateOptions,
} as const;
