/**
 * What `new WebSocket(...)` is given, checked before anything starts: the URL (the WHATWG
 * rules, plus ws's `ws+unix:` form for Unix domain sockets), the argument shapes (the
 * browsers' `(url, protocols)` and ws's `(url, options)` / `(url, protocols, options)`), the
 * credentials a URL or the `auth` option carries, and where a redirect may take them.
 */
import { unescape as percentDecode } from 'node:querystring';
import { normalizeProtocols } from '../protocol/handshake-response.js';
import type { ClientOptions } from './client-options.js';

/** A parsed, checked WebSocket URL, and where it says to connect. */
export interface WebSocketUrl {
  url: URL;
  secure: boolean;
  /** `ws+unix:` URLs: the Unix domain socket to connect to. */
  socketPath?: string;
  /** The request target: path and query (for `ws+unix:`, what follows the socket path's `:`). */
  path: string;
}

const UNIX_SCHEME = 'ws+unix:';

function syntaxError(message: string): DOMException {
  return new DOMException(message, 'SyntaxError');
}

/**
 * Apply the WHATWG URL rules of `new WebSocket(url)`: parse, map http(s) to ws(s), refuse
 * other schemes and any fragment. `ws+unix:/path/to/socket:/request/path` (ws's form) is a
 * Node extra: the request goes over the Unix domain socket at the path before the first `:`
 * (percent-decoded), for the request path after it. Throws a `SyntaxError` DOMException.
 */
export function parseWebSocketUrl(input: string | URL, base?: string): WebSocketUrl {
  let url: URL;
  try {
    url = new URL(String(input), base);
  } catch {
    // Credentials in a URL that does not parse are still credentials: not in the message.
    throw syntaxError(`Invalid URL: ${String(input).replace(/\/\/[^/?#@]*@/, '//***@')}`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:' && url.protocol !== UNIX_SCHEME) {
    throw syntaxError(
      `The URL's scheme must be "ws", "wss", "http", "https" or "ws+unix", not "${url.protocol.slice(0, -1)}"`,
    );
  }
  if (url.href.includes('#')) throw syntaxError('The URL must not contain a fragment');
  if (url.protocol !== UNIX_SCHEME) return { url, secure: url.protocol === 'wss:', path: url.pathname + url.search };
  // A host here would be silently ignored (ws's reading); it is more likely a slash too few.
  if (url.host !== '') {
    throw syntaxError('A ws+unix: URL names a socket path, not a host: ws+unix:/path/to/socket:/request/path');
  }
  const [socket, rest] = splitUnixTarget(url);
  // Percent-decoded (a malformed `%` sequence is kept as it is), so a path with spaces works.
  const socketPath = percentDecode(socket);
  if (socketPath === '') throw syntaxError('A ws+unix: URL must name a socket path');
  return { url, secure: false, socketPath, path: rest.startsWith('/') ? rest : `/${rest}` };
}

/** A ws+unix: URL's path and query split at the first `:`: the socket (still encoded), the request target. */
function splitUnixTarget(url: URL): [socket: string, rest: string] {
  const target = url.pathname + url.search;
  const colon = target.indexOf(':');
  return colon === -1 ? [target, ''] : [target.slice(0, colon), target.slice(colon + 1)];
}

/**
 * Where a redirect's `Location` leads. For a `ws+unix:` request a relative location stays on
 * the same socket (resolved against the request path); anything else resolves as a URL does.
 */
export function resolveRedirect(location: string, from: WebSocketUrl): WebSocketUrl {
  if (from.socketPath !== undefined && !URL.canParse(location)) {
    let resolved: URL;
    try {
      resolved = new URL(location, `http://socket${from.path}`);
    } catch {
      throw syntaxError(`Invalid URL: ${location}`);
    }
    if (resolved.hash !== '' || location.includes('#')) throw syntaxError('The URL must not contain a fragment');
    return parseWebSocketUrl(`${UNIX_SCHEME}${splitUnixTarget(from.url)[0]}:${resolved.pathname}${resolved.search}`);
  }
  return parseWebSocketUrl(location, from.url.href);
}

/** Whether `value` is a WebIDL sequence (an object with an iterator), not ws's options object. */
function isIterable(value: object): value is Iterable<unknown> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

/** WebIDL's conversion to DOMString: anything but a Symbol becomes its string form. */
function toDOMString(value: unknown): string {
  if (typeof value === 'symbol') throw new TypeError('Cannot convert a Symbol value to a string');
  return String(value);
}

/**
 * The `protocols` argument as WebIDL converts `(DOMString or sequence<DOMString>)`: an
 * iterable object is a list, each element converted to a string; anything else (`null` and
 * numbers included) is one string. Then the WHATWG checks: tokens, no repeats (case
 * ignored); otherwise a `SyntaxError` DOMException.
 */
export function parseProtocolsArgument(protocols: unknown): string[] {
  if (protocols === undefined) return [];
  const list =
    (typeof protocols === 'object' || typeof protocols === 'function') && protocols !== null && isIterable(protocols)
      ? Array.from(protocols, toDOMString)
      : [toDOMString(protocols)];
  const checked = normalizeProtocols(list);
  if (checked === null) {
    throw syntaxError('Subprotocols must be unique tokens (RFC 7230 token characters)');
  }
  return checked;
}

/**
 * Sort out the arguments after the URL: `(protocols?, options?)` as in browsers and ws, or
 * `(options)` as in ws, where an object that is not iterable is the options. The options'
 * `protocols` apply when no protocols argument is given. Throws a TypeError for options
 * that are not an object, or given twice.
 */
export function clientArguments(second: unknown, third: unknown): { protocols: string[]; options: ClientOptions } {
  let protocols: unknown = second;
  let options: unknown = third;
  if (typeof second === 'object' && second !== null && !isIterable(second)) {
    if (third !== undefined && third !== null) {
      throw new TypeError(
        'The options were given twice: pass new WebSocket(url, options) or new WebSocket(url, protocols, options)',
      );
    }
    options = second;
    protocols = undefined;
  }
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') {
    throw new TypeError(`The options argument must be an object, got ${typeof options}`);
  }
  const opts = options as ClientOptions;
  return { protocols: parseProtocolsArgument(protocols === undefined ? opts.protocols : protocols), options: opts };
}

/** The `user:password` a URL carries, percent-decoded (as ws and node:http read it), if any. */
export function urlCredentials(url: URL): string | undefined {
  if (url.username === '' && url.password === '') return undefined;
  return `${percentDecode(url.username)}:${percentDecode(url.password)}`;
}

/** The `Authorization` value for Basic authentication with `user:password`. */
export function basicAuthorization(credentials: string): string {
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

/**
 * Whether a redirect from `first` (the URL the application asked for) to `next` may take the
 * application's credentials along: the same host and port (or the same Unix socket), and not
 * from wss: down to ws:. As ws (and curl) decide it.
 */
export function redirectKeepsCredentials(first: WebSocketUrl, next: WebSocketUrl): boolean {
  return sameServer(first, next) && !(first.secure && !next.secure);
}

/** Whether two URLs lead to the same server: host and port, or the same Unix socket. */
export function sameServer(a: WebSocketUrl, b: WebSocketUrl): boolean {
  if (a.socketPath !== undefined || b.socketPath !== undefined) return a.socketPath === b.socketPath;
  return a.url.host === b.url.host;
}
