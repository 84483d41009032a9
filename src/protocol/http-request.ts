/**
 * The head of an HTTP/1.x request (RFC 9112 sections 3 and 5), parsed strictly enough for a
 * WebSocket server that answers nothing but upgrades: request line, header fields, no body.
 * Sans-I/O: bytes in, fields out. duet's own server (`port` mode) uses it instead of node:http,
 * which builds request and response objects a WebSocket handshake never needs.
 */

import { trimOws } from './handshake.js';

/** A parsed request head. Header names are lower-case, as node:http gives them. */
export interface RequestHead {
  method: string;
  target: string;
  /** '1.1', '1.0', ... */
  version: string;
  /** [name, value, name, value, ...] as received (names in their original case). */
  rawHeaders: string[];
}

export type RequestHeadResult = { ok: true; head: RequestHead } | { ok: false; status: number; message: string };

const END = Buffer.from('\r\n\r\n');

/**
 * Where the head ends in `buf` (the index just past CRLF CRLF), or -1. `from` lets a caller
 * that appends chunks resume the search without rescanning.
 */
export function findHeadEnd(buf: Buffer, from = 0): number {
  const i = buf.indexOf(END, Math.max(0, from - 3));
  return i === -1 ? -1 : i + 4;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP\/(\d\.\d)$/;
// Field values: visible characters, obs-text, spaces and tabs; no other control characters.
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Parse `head` (the bytes up to and including CRLF CRLF), decoded as latin1. */
export function parseRequestHead(head: Buffer): RequestHeadResult {
  const text = head.toString('latin1', 0, head.length - 4);
  const lines = text.split('\r\n');
  const match = REQUEST_LINE.exec(lines[0]);
  if (match === null) return { ok: false, status: 400, message: 'Malformed request line' };
  const rawHeaders: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    // RFC 9112 5.1/5.2: no whitespace before the colon, and obsolete line folding is refused.
    if (colon <= 0) return { ok: false, status: 400, message: 'Malformed header line' };
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return { ok: false, status: 400, message: 'Invalid header name' };
    const value = trimOws(line.slice(colon + 1));
    if (BAD_VALUE.test(value)) return { ok: false, status: 400, message: 'Invalid character in a header value' };
    rawHeaders.push(name, value);
  }
  return { ok: true, head: { method: match[1], target: match[2], version: match[3], rawHeaders } };
}

// node:http keeps only the first of these when repeated (and so does duet).
const SINGLE = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/**
 * Header fields the way node:http's `req.headers` has them: lower-case names, repeated fields
 * joined with ', ' (cookie with '; '), set-cookie as an array, single-valued fields first-wins.
 */
export function joinHeaders(rawHeaders: readonly string[]): Record<string, string | string[]> {
  // A plain object, as node:http gives (hasOwnProperty and friends work); a field named
  // __proto__ is dropped rather than allowed to replace the prototype.
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (name === '__proto__') continue;
    const value = rawHeaders[i + 1];
    const prev = Object.hasOwn(out, name) ? out[name] : undefined;
    if (prev === undefined) {
      out[name] = name === 'set-cookie' ? [value] : value;
    } else if (name === 'set-cookie') {
      (prev as string[]).push(value);
    } else if (!SINGLE.has(name)) {
      out[name] = `${prev as string}${name === 'cookie' ? '; ' : ', '}${value}`;
    }
  }
  return out;
}

/** Every value of every field, by lower-case name (node:http's `req.headersDistinct`). */
export function distinctHeaders(rawHeaders: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (name === '__proto__') continue;
    (Object.hasOwn(out, name) ? out[name] : (out[name] = [])).push(rawHeaders[i + 1]);
  }
  return out;
}
