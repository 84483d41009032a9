/**
 * The opening handshake (RFC 6455 sections 4.1, 4.2.1, 4.2.2, 9.1): checking a client's upgrade
 * request, parsing and formatting the Sec-WebSocket-* header values, and building the raw
 * response text. Sans-I/O: callers own the socket and write the strings we return.
 *
 * Why one file of ~450 lines: the request checks and the header-value parsers they use are one
 * rule set (section 4.2.1's list, read top to bottom); the response side is in
 * handshake-response.ts and the header-field rules in header-fields.ts.
 */
import * as crypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { createError } from './errors.js';
import {
  checkHeaderLine,
  headerFieldList,
  invalidHeaderError,
  isHeaderValueText,
  isToken,
  type HeaderFields,
} from './header-fields.js';

// The token rule lives with the other header-field rules; re-exported for existing importers.
export { isToken } from './header-fields.js';

/** Fixed GUID appended to the client's key before hashing (RFC 6455 section 1.3, 4.2.2). */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function computeAccept(key: string): string {
  // The key is hashed as the text the client sent; it is never base64-decoded (4.2.2 step 4).
  // crypto.hash (Node 20.12+) hashes in one call without a Hash object per handshake.
  if (oneShotHash !== undefined) return oneShotHash('sha1', key + WEBSOCKET_GUID, 'base64');
  /* c8 ignore next: Node 20.0-20.11 only (engines allows them); the suite runs on a newer Node */
  return createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
}

const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'base64') => string }).hash;

/** A new random Sec-WebSocket-Key (16 random bytes, base64) for clients. */
export function generateKey(): string {
  return randomBytes(16).toString('base64');
}

// 16 bytes encode to 22 base64 characters plus "==" padding. We do not insist that the unused
// low bits of the last character are zero: the ABNF (4.3) does not, and RFC 6455's own example
// key "AQIDBAUGBwgJCgsMDQ4PEC==" has them set.
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;

/**
 * True if `key` is base64 of exactly 16 bytes (24 chars, ends with '==', base64 alphabet).
 * Surrounding optional whitespace (SP / HTAB, as HTTP defines it) is ignored.
 */
export function isValidKey(key: string): boolean {
  return KEY_PATTERN.test(trimOws(key));
}

/**
 * True when a comma-separated header value (e.g. `Connection: keep-alive, Upgrade`) contains
 * `token`, ASCII case-insensitive, ignoring optional whitespace around elements.
 */
export function headerHasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  // Scanned in place (no split, no lower-cased copies): this runs several times per handshake.
  const length = value.length;
  let start = 0;
  while (start <= length) {
    let end = value.indexOf(',', start);
    if (end === -1) end = length;
    let a = start;
    let b = end;
    while (a < b && isOws(value.charCodeAt(a))) a++;
    while (b > a && isOws(value.charCodeAt(b - 1))) b--;
    if (sameAsciiIgnoringCase(value, a, b, token)) return true;
    start = end + 1;
  }
  return false;
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** `s.slice(start, end)` equals `token`, folding ASCII letters only (see asciiLower). */
function sameAsciiIgnoringCase(s: string, start: number, end: number, token: string): boolean {
  if (end - start !== token.length) return false;
  for (let i = 0; i < token.length; i++) {
    let a = s.charCodeAt(start + i);
    let b = token.charCodeAt(i);
    if (a >= 0x41 && a <= 0x5a) a += 32;
    if (b >= 0x41 && b <= 0x5a) b += 32;
    if (a !== b) return false;
  }
  return true;
}

/**
 * Parse Sec-WebSocket-Protocol (`1#token`, 4.1 step 10). Returns null if any element is not a
 * token, is empty, or repeats an earlier one, so the server can answer 400. Several header lines
 * joined with ', ' parse the same as one line.
 */
export function parseSubprotocols(value: string): string[] | null {
  const protocols: string[] = [];
  const seen = new Set<string>();
  for (const element of value.split(',')) {
    const protocol = trimOws(element);
    // Subprotocol names are compared exactly: the RFC asks for "unique strings", not tokens
    // folded to one case.
    if (!isToken(protocol) || seen.has(protocol)) return null;
    seen.add(protocol);
    protocols.push(protocol);
  }
  return protocols;
}

/** One element of a Sec-WebSocket-Extensions list. */
export interface ExtensionOffer {
  name: string;
  /** Parameter name to value; `true` for a parameter given without `=value`. */
  params: Map<string, string | true>;
  /**
   * A parameter name appeared more than once in this offer. The header is still well formed,
   * so parsing succeeds and `params` keeps the first value, but the extension's negotiator
   * will usually want to decline such an offer.
   */
  duplicateParams: boolean;
}

/**
 * Parse Sec-WebSocket-Extensions per the RFC 6455 section 9.1 grammar:
 *
 *   extension-list = 1#extension
 *   extension      = token *( ";" param )
 *   param          = token [ "=" (token | quoted-string) ]
 *
 * SP / HTAB may surround any separator. Quoted values are unescaped and must then be tokens.
 * Returns null on any syntax error (9.1: the recipient MUST fail the connection). Empty list
 * elements (`a,,b`) are rejected too, matching parseSubprotocols.
 */
export function parseExtensions(value: string): ExtensionOffer[] | null {
  const reader = new Reader(value);
  const offers: ExtensionOffer[] = [];
  for (;;) {
    reader.skipOws();
    const name = reader.readToken();
    if (name === null) return null;
    const offer: ExtensionOffer = { name, params: new Map(), duplicateParams: false };
    reader.skipOws();
    while (reader.consume(';')) {
      reader.skipOws();
      const paramName = reader.readToken();
      if (paramName === null) return null;
      reader.skipOws();
      let paramValue: string | true = true;
      if (reader.consume('=')) {
        reader.skipOws();
        const parsed = reader.peek() === '"' ? reader.readQuotedString() : reader.readToken();
        // 9.1: a quoted value, once unescaped, must still be a token (so also non-empty).
        if (parsed === null || !isToken(parsed)) return null;
        paramValue = parsed;
        reader.skipOws();
      }
      if (offer.params.has(paramName)) offer.duplicateParams = true;
      else offer.params.set(paramName, paramValue);
    }
    offers.push(offer);
    if (reader.atEnd()) return offers;
    if (!reader.consume(',')) return null;
  }
}

/**
 * Serialize offers back to a header value: `name; a=1; b, other`. Values that are not tokens
 * are sent as quoted-strings. Throws TypeError for names that are not tokens and for values
 * no quoted-string can carry (control characters such as CR / LF, which would split the header).
 */
export function formatExtensions(offers: ReadonlyArray<{ name: string; params: Map<string, string | true> }>): string {
  return offers
    .map((offer) => {
      if (!isToken(offer.name)) throw new TypeError(`Invalid extension name: ${JSON.stringify(offer.name)}`);
      const parts = [offer.name];
      for (const [name, value] of offer.params) {
        if (!isToken(name)) throw new TypeError(`Invalid extension parameter name: ${JSON.stringify(name)}`);
        parts.push(value === true ? name : `${name}=${formatParamValue(value)}`);
      }
      return parts.join('; ');
    })
    .join(', ');
}

/** Outcome of checking a client's opening handshake (RFC 6455 4.2.1). */
export type UpgradeCheck =
  | { ok: true; key: string; protocols: string[]; extensions: ExtensionOffer[] }
  | { ok: false; status: number; message: string; headers?: Record<string, string> };

/**
 * Check the request line and headers of an upgrade request (RFC 6455 4.2.1). `headers` keys are
 * lower-case as node:http gives them; array values (repeated header lines) are joined with ', '.
 * Checks run in this order, the first failure wins:
 *  - method not GET -> 405 with `Allow: GET`
 *  - HTTP version below 1.1 -> 400
 *  - Host missing, empty or repeated -> 400 (RFC 7230 5.4)
 *  - Upgrade lacking the token `websocket` -> 400
 *  - Connection lacking the token `upgrade` -> 400
 *  - Sec-WebSocket-Version missing or not `13` -> 426 with `Sec-WebSocket-Version: 13`
 *  - Sec-WebSocket-Key missing, repeated or invalid -> 400
 *  - Sec-WebSocket-Protocol present but malformed -> 400
 *  - Sec-WebSocket-Extensions present but malformed -> 400
 * On success the key is returned without surrounding whitespace, ready for computeAccept.
 */
export function checkUpgradeRequest(
  method: string,
  httpVersion: string,
  headers: Record<string, string | string[] | undefined>,
): UpgradeCheck {
  // Methods are case-sensitive (RFC 7231 4.1), so "get" is not GET.
  if (method !== 'GET') {
    return fail(405, 'Method must be GET', { Allow: 'GET' });
  }
  if (!isHttp11OrLater(httpVersion)) {
    return fail(400, 'HTTP/1.1 or later required');
  }

  // RFC 7230 5.4: no Host, or more than one, is a 400. An empty Host names no authority,
  // which 4.2.1 item 2 requires.
  const host = headers['host'];
  const hostValue = Array.isArray(host) ? (host.length === 1 ? host[0] : undefined) : host;
  if (hostValue === undefined || trimOws(hostValue) === '') {
    return fail(400, 'Missing or invalid Host header');
  }
  if (!headerHasToken(joinHeader(headers['upgrade']), 'websocket')) {
    return fail(400, 'Missing or invalid Upgrade header');
  }
  if (!headerHasToken(joinHeader(headers['connection']), 'upgrade')) {
    return fail(400, 'Missing or invalid Connection header');
  }

  // 4.2.2: an unsupported version gets 426 plus the versions we do speak, so the client can retry.
  const version = joinHeader(headers['sec-websocket-version']);
  if (version === undefined || trimOws(version) !== '13') {
    return fail(426, 'Unsupported WebSocket version', { 'Sec-WebSocket-Version': '13' });
  }

  // A repeated key (forbidden by 11.3.1) joins into a longer string and so fails isValidKey.
  const key = joinHeader(headers['sec-websocket-key']);
  if (key === undefined || !isValidKey(key)) {
    return fail(400, 'Missing or invalid Sec-WebSocket-Key header');
  }

  let protocols: string[] = [];
  const protocolHeader = joinHeader(headers['sec-websocket-protocol']);
  if (protocolHeader !== undefined) {
    const parsed = parseSubprotocols(protocolHeader);
    if (parsed === null) return fail(400, 'Invalid Sec-WebSocket-Protocol header');
    protocols = parsed;
  }

  let extensions: ExtensionOffer[] = [];
  const extensionHeader = joinHeader(headers['sec-websocket-extensions']);
  if (extensionHeader !== undefined) {
    const parsed = parseExtensions(extensionHeader);
    if (parsed === null) return fail(400, 'Invalid Sec-WebSocket-Extensions header');
    extensions = parsed;
  }

  return { ok: true, key: trimOws(key), protocols, extensions };
}

/**
 * Build the raw `HTTP/1.1 101 Switching Protocols` response (CRLF line endings, ending with the
 * blank line). `extraHeaders` are already formatted 'Name: value' lines appended after ours.
 * Throws TypeError for anything that could inject extra header lines: an extra line or the
 * extensions value containing CR or LF, or a protocol that is not a token (4.2.2 ABNF).
 */
export function buildAcceptResponse(
  key: string,
  protocol: string | undefined,
  extensions: string | undefined,
  extraHeaders: readonly string[],
): string {
  return serializeResponseLines([...acceptResponseLines(key, protocol, extensions), ...extraHeaders]);
}

/**
 * The status line and headers of a `101 Switching Protocols` response, one string per line,
 * so a server can let applications add headers (the `headers` event) before serializing.
 */
export function acceptResponseLines(
  key: string,
  protocol: string | undefined,
  extensions: string | undefined,
): string[] {
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${computeAccept(key)}`,
  ];
  if (protocol !== undefined) {
    // The empty string is not the same as "no subprotocol" and is not legal here (4.2.2).
    if (!isToken(protocol)) throw new TypeError(`Invalid subprotocol: ${JSON.stringify(protocol)}`);
    lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  }
  if (extensions !== undefined) {
    if (hasLineBreak(extensions)) throw new TypeError('Sec-WebSocket-Extensions value contains CR or LF');
    lines.push(`Sec-WebSocket-Extensions: ${extensions}`);
  }
  return lines;
}

/**
 * Join response lines into the text of a response head: the status line, then `Name: value`
 * header lines (as the server's `headers` event lets applications add them). Throws a TypeError
 * with `code` `WS_ERR_INVALID_HEADER` for a line that is not a string, a status line with a
 * control character, or a header line that is not a token, a colon and a value of visible ASCII,
 * spaces and tabs (see header-fields.ts): no line can carry CR or LF into the response.
 */
export function serializeResponseLines(lines: readonly string[]): string {
  const [statusLine, ...headerLines] = lines;
  if (typeof statusLine !== 'string' || !isHeaderValueText(statusLine)) {
    throw invalidHeaderError(`Invalid status line: ${JSON.stringify(statusLine) ?? String(statusLine)}`);
  }
  for (const line of headerLines) checkHeaderLine(line);
  return lines.join('\r\n') + '\r\n\r\n';
}

/**
 * Build a complete HTTP/1.1 error response: status line (reason phrase from node:http's
 * STATUS_CODES), `Connection: close`, `Content-Type: text/plain; charset=utf-8`, a
 * `Content-Length` counting UTF-8 bytes (so write the result as UTF-8), `headers`, then
 * `message` as the body. An entry in `headers` replaces a default of the same name
 * (case-insensitive), except Connection and Content-Length, which frame the response and so
 * cannot be overridden (TypeError). Values are stringified as node:http does (a number as
 * `String(n)`, a list as one line per element, an empty list as none); a name that is not a
 * token or a value that cannot be sent (CR, LF, NUL, ...) throws a TypeError with `code`
 * `WS_ERR_INVALID_HEADER` (see header-fields.ts). A status that is not an integer from 100 to
 * 999 throws a RangeError with `code` `WS_ERR_INVALID_STATUS`.
 */
export function buildErrorResponse(status: number, message: string, headers?: HeaderFields): string {
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw createError('WS_ERR_INVALID_STATUS', `Invalid HTTP status code: ${String(status)}`);
  }
  if (typeof message !== 'string') throw new TypeError(`The response body must be a string, got ${typeof message}`);
  // An unknown code gets an empty reason phrase, which the status-line grammar allows.
  const statusLine = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`;

  const fields = new Map<string, string>([
    ['connection', 'Connection: close'],
    ['content-type', 'Content-Type: text/plain; charset=utf-8'],
    ['content-length', `Content-Length: ${Buffer.byteLength(message, 'utf8')}`],
  ]);
  for (const [name, values] of headerFieldList(headers)) {
    const lower = asciiLower(name);
    if (lower === 'connection' || lower === 'content-length') {
      throw new TypeError(`Header ${name} is set by buildErrorResponse and cannot be overridden`);
    }
    // As node:http's setHeader: the last value given for a name wins; an empty list sends none.
    if (values.length === 0) fields.delete(lower);
    else fields.set(lower, values.map((value) => `${name}: ${value}`).join('\r\n'));
  }
  return [statusLine, ...fields.values()].join('\r\n') + '\r\n\r\n' + message;
}

// ---------------------------------------------------------------------------------------------

function fail(status: number, message: string, headers?: Record<string, string>): UpgradeCheck {
  return headers === undefined ? { ok: false, status, message } : { ok: false, status, message, headers };
}

/** Repeated header lines are one comma-separated list (RFC 7230 3.2.2). */
function joinHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** True for "1.1", "1.2", "2.0", ...; false for "1.0", "0.9" and anything malformed. */
function isHttp11OrLater(version: string): boolean {
  const match = /^(\d+)\.(\d+)$/.exec(version);
  if (match === null) return false;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  return major > 1 || (major === 1 && minor >= 1);
}

/**
 * Strip HTTP optional whitespace (SP / HTAB only, RFC 7230 3.2.3). A loop, not a regular
 * expression: /[ \t]+$/ backtracks quadratically on a long run of spaces followed by another
 * character, which a client controls.
 */
export function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 0x20 || s.charCodeAt(start) === 0x09)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 0x20 || s.charCodeAt(end - 1) === 0x09)) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

// String#toLowerCase folds some non-ASCII letters onto ASCII ones (U+212A KELVIN SIGN becomes
// "k"), which would let "websoc\u212Aet" pass as "websocket". HTTP wants ASCII-only folding.
function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32)) : s;
}

function hasLineBreak(s: string): boolean {
  return s.includes('\r') || s.includes('\n');
}

/** A parameter value as a token if it is one, otherwise as a quoted-string. */
function formatParamValue(value: string): string {
  if (isToken(value)) return value;
  // quoted-pair can carry HTAB, SP, VCHAR and obs-text; other control characters cannot appear.
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) {
    throw new TypeError(`Extension parameter value cannot be quoted: ${JSON.stringify(value)}`);
  }
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** Cursor over a header value for the Sec-WebSocket-Extensions parser. */
class Reader {
  private pos = 0;

  constructor(private readonly text: string) {}

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string | undefined {
    return this.text[this.pos];
  }

  /** Advance past `char` if it is next. */
  consume(char: string): boolean {
    if (this.text[this.pos] !== char) return false;
    this.pos++;
    return true;
  }

  skipOws(): void {
    while (this.text[this.pos] === ' ' || this.text[this.pos] === '\t') this.pos++;
  }

  /** The longest run of tchars here, or null if there is none. */
  readToken(): string | null {
    const start = this.pos;
    while (this.pos < this.text.length && isToken(this.text[this.pos])) this.pos++;
    return this.pos > start ? this.text.slice(start, this.pos) : null;
  }

  /**
   * An RFC 7230 quoted-string starting at the opening quote (the caller has seen it), unescaped;
   * null if it is unterminated or holds a character the grammar forbids (control characters
   * other than HTAB).
   */
  readQuotedString(): string | null {
    this.pos++;
    let out = '';
    while (this.pos < this.text.length) {
      const char = this.text[this.pos++];
      if (char === '"') return out;
      if (char === '\\') {
        // quoted-pair: the backslash escapes exactly one following character.
        if (this.pos >= this.text.length) return null;
        const escaped = this.text[this.pos++];
        if (isForbiddenInQuotes(escaped)) return null;
        out += escaped;
      } else if (isForbiddenInQuotes(char)) {
        return null;
      } else {
        out += char;
      }
    }
    return null;
  }
}

/** qdtext and quoted-pair allow HTAB, SP, visible ASCII and obs-text; not other controls or DEL. */
function isForbiddenInQuotes(char: string): boolean {
  const code = char.charCodeAt(0);
  return (code < 0x20 && code !== 0x09) || code === 0x7f;
}
