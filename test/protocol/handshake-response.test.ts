/**
 * Unit tests of the client's side of the opening handshake: the `protocols` argument of
 * `new WebSocket(url, protocols)` (WHATWG constructor steps) and the checks on the server's
 * response (RFC 6455 section 4.1, last set of steps; WHATWG "establish a WebSocket connection").
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkUpgradeResponse, normalizeProtocols } from '../../src/protocol/handshake-response.js';

// RFC 6455 section 1.3's worked example, written out here rather than computed by src.
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

type Headers = Record<string, string | string[] | undefined>;

function good(extra: Headers = {}): Headers {
  return { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': ACCEPT, ...extra };
}

describe('normalizeProtocols', () => {
  it('undefined is the empty list; a string is a list of one; a list is copied', () => {
    assert.deepEqual(normalizeProtocols(undefined), []);
    assert.deepEqual(normalizeProtocols([]), []);
    assert.deepEqual(normalizeProtocols('chat'), ['chat']);
    const input = ['chat', 'superchat', 'v1.json'];
    const out = normalizeProtocols(input);
    assert.deepEqual(out, input);
    assert.notEqual(out, input, "a copy, so later changes to the caller's array do not leak in");
  });

  it('accepts every RFC 7230 tchar', () => {
    const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    assert.deepEqual(normalizeProtocols(tchars), [tchars]);
    for (const c of tchars) assert.deepEqual(normalizeProtocols(c), [c], JSON.stringify(c));
  });

  it('rejects the empty string, separators, controls, DEL and non-ASCII', () => {
    const bad = ['', ' ', 'a b', 'a,b', 'a, b', ' chat', 'chat ', 'é', 'chat\u00e9', '\u{1F600}'];
    for (const c of '()<>@,;:\\"/[]?={}') bad.push(`x${c}y`);
    for (let code = 0; code <= 0x20; code++) bad.push(`x${String.fromCharCode(code)}y`);
    bad.push('x\x7fy');
    for (const p of bad) {
      assert.equal(normalizeProtocols(p), null, `string ${JSON.stringify(p)}`);
      assert.equal(normalizeProtocols(['ok', p]), null, `list with ${JSON.stringify(p)}`);
    }
  });

  it('rejects duplicates', () => {
    assert.equal(normalizeProtocols(['a', 'a']), null);
    assert.equal(normalizeProtocols(['a', 'b', 'c', 'b']), null);
    assert.deepEqual(normalizeProtocols(['a', 'b', 'c']), ['a', 'b', 'c']);
  });

  it('rejects duplicates that differ only in ASCII case (WPT Create-protocols-repeated-case-insensitive)', () => {
    // Browsers and undici throw SyntaxError for ["echo", "eCho"]; web-platform-tests checks it.
    assert.equal(normalizeProtocols(['echo', 'eCho']), null);
  });

  it('rejects non-strings in the list', () => {
    assert.equal(normalizeProtocols([1] as unknown as string[]), null);
    assert.equal(normalizeProtocols([null] as unknown as string[]), null);
  });
});

describe('checkUpgradeResponse', () => {
  it('accepts the RFC 6455 example response', () => {
    assert.deepEqual(checkUpgradeResponse(101, good(), KEY, [], []), { ok: true, protocol: '', extensions: '' });
  });

  it('status must be 101; the message names the status', () => {
    for (const status of [200, 204, 301, 302, 400, 401, 403, 404, 426, 500, 503]) {
      const r = checkUpgradeResponse(status, good(), KEY, [], []);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.code, 'WS_ERR_UNEXPECTED_RESPONSE');
        assert.match(r.message, new RegExp(String(status)));
      }
    }
  });

  it('Upgrade must contain websocket (ASCII case-insensitive)', () => {
    for (const upgrade of [undefined, '', 'h2c', 'websockets', 'web socket']) {
      const r = checkUpgradeResponse(101, good({ upgrade }), KEY, [], []);
      assert.equal(r.ok, false, JSON.stringify(upgrade));
      if (!r.ok) assert.equal(r.code, 'WS_ERR_INVALID_UPGRADE_HEADER');
    }
    for (const upgrade of ['WebSocket', 'WEBSOCKET', ' websocket ']) {
      assert.equal(checkUpgradeResponse(101, good({ upgrade }), KEY, [], []).ok, true, upgrade);
    }
  });

  it('Connection must contain the upgrade token (case-insensitive, in a list)', () => {
    for (const connection of [undefined, '', 'keep-alive', 'upgraded', 'close']) {
      const r = checkUpgradeResponse(101, good({ connection }), KEY, [], []);
      assert.equal(r.ok, false, JSON.stringify(connection));
      if (!r.ok) assert.equal(r.code, 'WS_ERR_INVALID_UPGRADE_HEADER');
    }
    for (const connection of ['upgrade', 'UPGRADE', 'keep-alive, Upgrade', 'Upgrade,keep-alive']) {
      assert.equal(checkUpgradeResponse(101, good({ connection }), KEY, [], []).ok, true, connection);
    }
  });

  it('Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)) for this key', () => {
    const otherKeysAccept = checkUpgradeResponse(101, good(), 'AQIDBAUGBwgJCgsMDQ4PEC==', [], []);
    assert.equal(otherKeysAccept.ok, false);
    for (const accept of [undefined, '', ACCEPT.toLowerCase(), ACCEPT.slice(0, -1), `${ACCEPT}x`, KEY]) {
      const r = checkUpgradeResponse(101, good({ 'sec-websocket-accept': accept }), KEY, [], []);
      assert.equal(r.ok, false, JSON.stringify(accept));
      if (!r.ok) assert.equal(r.code, 'WS_ERR_INVALID_ACCEPT');
    }
  });

  it('a subprotocol we offered is selected and reported', () => {
    const r = checkUpgradeResponse(
      101,
      good({ 'sec-websocket-protocol': 'superchat' }),
      KEY,
      ['chat', 'superchat'],
      [],
    );
    assert.deepEqual(r, { ok: true, protocol: 'superchat', extensions: '' });
  });

  it('a subprotocol we did not offer fails (RFC 6455 4.1)', () => {
    const cases: Array<[Headers, string[]]> = [
      [{ 'sec-websocket-protocol': 'other' }, ['chat']],
      [{ 'sec-websocket-protocol': 'chat' }, []],
      [{ 'sec-websocket-protocol': 'chat, superchat' }, ['chat', 'superchat']],
      [{ 'sec-websocket-protocol': ['chat', 'superchat'] }, ['chat', 'superchat']],
    ];
    for (const [headers, offered] of cases) {
      const r = checkUpgradeResponse(101, good(headers), KEY, offered, []);
      assert.equal(r.ok, false, JSON.stringify([headers, offered]));
      if (!r.ok) assert.equal(r.code, 'WS_ERR_UNEXPECTED_PROTOCOL');
    }
  });

  it('protocols offered but none selected fails (WHATWG establish a WebSocket connection)', () => {
    // "If protocols is not the empty list and extracting header list values given
    // `Sec-WebSocket-Protocol` ... results in null, failure, or the empty byte sequence, then
    // fail the WebSocket connection."
    assert.equal(checkUpgradeResponse(101, good(), KEY, ['chat'], []).ok, false, 'header absent');
    assert.equal(
      checkUpgradeResponse(101, good({ 'sec-websocket-protocol': '' }), KEY, ['chat'], []).ok,
      false,
      'header empty',
    );
  });

  it('an extension we did not offer fails', () => {
    for (const ext of [
      'permessage-deflate',
      'permessage-deflate; client_max_window_bits=10',
      'x-foo, permessage-deflate',
    ]) {
      const r = checkUpgradeResponse(101, good({ 'sec-websocket-extensions': ext }), KEY, [], []);
      assert.equal(r.ok, false, ext);
      if (!r.ok) assert.equal(r.code, 'WS_ERR_UNEXPECTED_EXTENSION');
    }
    const partly = checkUpgradeResponse(
      101,
      good({ 'sec-websocket-extensions': 'permessage-deflate, x-foo' }),
      KEY,
      [],
      ['permessage-deflate'],
    );
    assert.equal(partly.ok, false);
  });

  it('an extension we offered is accepted and reported as the header value', () => {
    const r = checkUpgradeResponse(
      101,
      good({ 'sec-websocket-extensions': ' permessage-deflate; server_no_context_takeover ' }),
      KEY,
      [],
      ['permessage-deflate'],
    );
    assert.deepEqual(r, { ok: true, protocol: '', extensions: 'permessage-deflate; server_no_context_takeover' });
  });

  it('a malformed Sec-WebSocket-Extensions header fails', () => {
    for (const ext of [';', 'permessage-deflate;', 'a b', 'permessage-deflate; x=', ',']) {
      const r = checkUpgradeResponse(101, good({ 'sec-websocket-extensions': ext }), KEY, [], ['permessage-deflate']);
      assert.equal(r.ok, false, ext);
    }
  });

  it('a header given as a list of lines is read as their comma-separated join', () => {
    const r = checkUpgradeResponse(
      101,
      good({
        upgrade: ['websocket'],
        connection: ['keep-alive', 'Upgrade'],
        'sec-websocket-extensions': ['x-foo', 'permessage-deflate'],
      }),
      KEY,
      [],
      ['x-foo', 'permessage-deflate'],
    );
    assert.deepEqual(r, { ok: true, protocol: '', extensions: 'x-foo, permessage-deflate' });
    const missing = checkUpgradeResponse(101, good({ connection: ['keep-alive', 'close'] }), KEY, [], []);
    assert.equal(missing.ok, false);
  });

  it('an empty Sec-WebSocket-Extensions header means no extensions', () => {
    assert.deepEqual(checkUpgradeResponse(101, good({ 'sec-websocket-extensions': '' }), KEY, [], []), {
      ok: true,
      protocol: '',
      extensions: '',
    });
  });
});
