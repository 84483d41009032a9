/**
 * HTTP header fields that an application hands to duet (verifyClient's refusal headers, the
 * `headers` event, the client's `headers` option): which names and values can be sent, and how
 * values that are not strings become text, as node:http does. Everything that could split a
 * header line or the response (CR, LF, NUL, other control characters) is refused here, so no
 * caller can inject a header or a body.
 */
import { createError } from './errors.js';

/**
 * One header value: a string, a number (sent as `String(n)`, as node:http does: `120` is sent
 * as `120`), or a list of them, sent as one header line per element (as node:http's
 * `setHeader(name, [...])`; an empty list sends no line).
 */
export type HeaderValue = string | number | readonly (string | number)[];

/** Header fields by name. Names are HTTP tokens; a later name that differs only in case wins. */
export type HeaderFields = Readonly<Record<string, HeaderValue>>;

/** The `code` of the TypeError thrown for a header name or value that cannot be sent. */
export const INVALID_HEADER = 'WS_ERR_INVALID_HEADER';

/** A TypeError with `code: 'WS_ERR_INVALID_HEADER'`. */
export type InvalidHeaderError = TypeError & { code: typeof INVALID_HEADER };

// RFC 7230 section 3.2.6: token = 1*tchar, tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" /
// "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
const TOKEN_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** RFC 7230 token check (tchar set, at least one character): header names, subprotocols, ... */
export function isToken(s: string): boolean {
  return TOKEN_PATTERN.test(s);
}

// RFC 9110 section 5.5: field-value = *field-content, made of VCHAR, SP and HTAB. Unlike
// node:http we also refuse obs-text (bytes 0x80-0xFF): node:http writes such characters as
// Latin-1 bytes and ws as UTF-8, so a receiver cannot know which was meant; RFC 9110 asks
// senders to use US-ASCII. Characters above U+00FF, which node:http refuses, are refused too.
const VALUE_PATTERN = /^[\t\x20-\x7e]*$/;

/** True when `value` can be sent as a header field value: HTAB, space and visible ASCII only. */
export function isHeaderValueText(value: string): boolean {
  return VALUE_PATTERN.test(value);
}

/** A TypeError with `code` `WS_ERR_INVALID_HEADER` saying `message` (see errors.ts). */
export function invalidHeaderError(message: string): InvalidHeaderError {
  return createError(INVALID_HEADER, message);
}

function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a nested array';
  return typeof value === 'number' ? String(value) : `a value of type ${typeof value}`;
}

/** One element of a header value as text; throws for anything node:http would not send as is. */
function valueText(name: string, value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
  else {
    throw invalidHeaderError(
      `Invalid value for header "${name}": expected a string, a finite number or an array of them, got ${shown(value)}`,
    );
  }
  if (!isHeaderValueText(text)) {
    // Where and which character, not the value: it may be a token (Authorization, Cookie).
    // (The loop always finds one: the text failed the same test.)
    let at = 0;
    let code = 0;
    for (const c of text) {
      at++;
      if (!isHeaderValueText(c)) {
        code = c.codePointAt(0) as number;
        break;
      }
    }
    throw invalidHeaderError(
      `Invalid value for header "${name}": its character ${at} (U+${code.toString(16).toUpperCase().padStart(4, '0')}) cannot be sent ` +
        '(CR, LF, NUL and other control characters, and non-ASCII characters, are refused)',
    );
  }
  return text;
}

/**
 * Check `headers` (an object of {@link HeaderFields}, or undefined for none) and return each
 * field as its name and its values as text, in the object's order: a number becomes
 * `String(n)`, a list gives one value per element (an empty list none). Throws a TypeError with
 * `code` `WS_ERR_INVALID_HEADER` for a name that is not an HTTP token (spaces, colons, ...), a
 * value that is not a string, finite number or list of them (undefined, null, an object, a
 * boolean, NaN), or a value holding CR, LF, NUL, another control character or non-ASCII text.
 */
export function headerFieldList(headers: unknown): Array<[name: string, values: string[]]> {
  if (headers === undefined) return [];
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw invalidHeaderError(`Headers must be an object of names to values, got ${shown(headers)}`);
  }
  const fields: Array<[string, string[]]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (!isToken(name))
      throw invalidHeaderError(
        `Invalid header name ${shown(name)}: it must be an HTTP token (no spaces, colons or control characters)`,
      );
    const values = Array.isArray(value)
      ? value.map((element: unknown) => valueText(name, element))
      : [valueText(name, value)];
    fields.push([name, values]);
  }
  return fields;
}

/** `headers` as `Name: value` lines, one per value (see {@link headerFieldList}, which checks them). */
export function headerLines(headers: unknown): string[] {
  const lines: string[] = [];
  for (const [name, values] of headerFieldList(headers)) for (const value of values) lines.push(`${name}: ${value}`);
  return lines;
}

/**
 * Check one `Name: value` line written by hand (the server's `headers` event): a token, a
 * colon, then a value as {@link isHeaderValueText} allows. Throws the same TypeError as
 * {@link headerFieldList} otherwise (a non-string, no colon, a space before the colon, CR/LF).
 */
export function checkHeaderLine(line: unknown): void {
  if (typeof line !== 'string')
    throw invalidHeaderError(`A header line must be a string "Name: value", got ${shown(line)}`);
  const colon = line.indexOf(':');
  const name = colon === -1 ? line : line.slice(0, colon);
  if (colon === -1 || !isToken(name)) {
    throw invalidHeaderError(
      `Invalid header line ${shown(line)}: it must be "Name: value" with an HTTP token as the name`,
    );
  }
  valueText(name, line.slice(colon + 1));
}
