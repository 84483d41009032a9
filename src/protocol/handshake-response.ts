/**
 * The client's side of the opening handshake (RFC 6455 4.1): the request headers it sends
 * and the checks its gets to run on the server's response.
 */
import type { HandshakeErrorCode } from './errors.js';
import { computeAccept, headerHasToken, isToken, parseExtensions } from './handshake.js';

/**
 * Parse the `protocols` argument of `new WebSocket(url, protocols)`: a string or a list, each
 * a token, no duplicates. Returns null when the WHATWG standard says to throw SyntaxError.
 */
export function normalizeProtocols(protocols: string | readonly string[] | undefined): string[] | null {
  if (protocols === undefined) return [];
  const list = typeof protocols === 'string' ? [protocols] : [...protocols];
  // Duplicates are compared ignoring ASCII case, as browsers do.
  const seen = new Set<string>();
  for (const p of list) {
    if (typeof p !== 'string' || !isToken(p)) return null;
    const folded = p.replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (seen.has(folded)) return null;
    seen.add(folded);
  }
  return list;
}

/** Outcome of checking the server's response to our upgrade request. */
export type ResponseCheck =
  { ok: true; protocol: string; extensions: string } | { ok: false; code: HandshakeErrorCode; message: string };

/**
 * Check a `101 Switching Protocols` response: Upgrade and Connection headers, the
 * Sec-WebSocket-Accept value for our `key`, a subprotocol we offered (or none), and no
 * extension we did not offer. `headers` are lower-case keys as node:http gives them.
 */
export function checkUpgradeResponse(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  key: string,
  offeredProtocols: readonly string[],
  offeredExtensions: readonly string[],
): ResponseCheck {
  const get = (name: string): string | undefined => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  if (status !== 101)
    return { ok: false, code: 'WS_ERR_UNEXPECTED_RESPONSE', message: `Unexpected server response: ${status}` };
  if (!headerHasToken(get('upgrade'), 'websocket')) {
    return {
      ok: false,
      code: 'WS_ERR_INVALID_UPGRADE_HEADER',
      message: 'Invalid Upgrade header in the server response',
    };
  }
  if (!headerHasToken(get('connection'), 'upgrade')) {
    return {
      ok: false,
      code: 'WS_ERR_INVALID_UPGRADE_HEADER',
      message: 'Invalid Connection header in the server response',
    };
  }
  if (get('sec-websocket-accept')?.trim() !== computeAccept(key)) {
    return { ok: false, code: 'WS_ERR_INVALID_ACCEPT', message: 'Invalid Sec-WebSocket-Accept header' };
  }
  const protocolHeader = headers['sec-websocket-protocol'];
  let protocol = '';
  if (offeredProtocols.length > 0 && (protocolHeader === undefined || String(protocolHeader).trim() === '')) {
    // WHATWG Fetch, "establish a WebSocket connection": offering protocols and getting none back fails.
    return {
      ok: false,
      code: 'WS_ERR_UNEXPECTED_PROTOCOL',
      message: 'Server selected no subprotocol (one was required)',
    };
  }
  if (protocolHeader !== undefined) {
    const value = (Array.isArray(protocolHeader) ? protocolHeader.join(', ') : protocolHeader).trim();
    if (Array.isArray(protocolHeader) && protocolHeader.length > 1) {
      return { ok: false, code: 'WS_ERR_UNEXPECTED_PROTOCOL', message: 'Server selected more than one subprotocol' };
    }
    if (!offeredProtocols.includes(value)) {
      return {
        ok: false,
        code: 'WS_ERR_UNEXPECTED_PROTOCOL',
        message: `Server selected a subprotocol that was not offered: ${value}`,
      };
    }
    protocol = value;
  }
  const extensionHeader = get('sec-websocket-extensions');
  if (extensionHeader !== undefined && extensionHeader.trim() !== '') {
    const accepted = parseExtensions(extensionHeader);
    if (accepted === null)
      return { ok: false, code: 'WS_ERR_INVALID_EXTENSION', message: 'Invalid Sec-WebSocket-Extensions header' };
    const unexpected = accepted.find((e) => !offeredExtensions.includes(e.name));
    if (unexpected) {
      return {
        ok: false,
        code: 'WS_ERR_UNEXPECTED_EXTENSION',
        message: `Server accepted an extension that was not offered: ${unexpected.name}`,
      };
    }
    return { ok: true, protocol, extensions: extensionHeader.trim() };
  }
  return { ok: true, protocol, extensions: '' };
}
