import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  WEBSOCKET_GUID,
  buildAcceptResponse,
  buildErrorResponse,
  checkUpgradeRequest,
  computeAccept,
  formatExtensions,
  generateKey,
  headerHasToken,
  isToken,
  isValidKey,
  parseExtensions,
  parseSubprotocols,
  type ExtensionOffer,
  type UpgradeCheck,
} from '../../src/protocol/handshake.js';

/** Plain-object view of offers so deepEqual failures print readably. */
function plain(offers: ExtensionOffer[] | null) {
  return offers?.map((o) => ({ name: o.name, params: Object.fromEntries(o.params), dup: o.duplicateParams })) ?? null;
}

describe('computeAccept', () => {
  it('matches the RFC 6455 section 4.2.2 example', () => {
    assert.equal(computeAccept('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('hashes the key text plus the GUID', () => {
    assert.equal(WEBSOCKET_GUID, '258EAFA5-E914-47DA-95CA-C5AB0DC85B11');
    const key = 'AQIDBAUGBwgJCgsMDQ4PEA==';
    const expected = createHash('sha1')
      .update(key + WEBSOCKET_GUID)
      .digest('base64');
    assert.equal(computeAccept(key), expected);
    assert.notEqual(computeAccept(key), computeAccept('dGhlIHNhbXBsZSBub25jZQ=='));
  });
});

describe('generateKey', () => {
  it('returns base64 of 16 bytes that isValidKey accepts', () => {
    const key = generateKey();
    assert.equal(key.length, 24);
    assert.equal(Buffer.from(key, 'base64').length, 16);
    assert.ok(isValidKey(key));
  });

  it('is random per call', () => {
    const keys = new Set(Array.from({ length: 50 }, generateKey));
    assert.equal(keys.size, 50);
  });
});

describe('isValidKey', () => {
  it('accepts the RFC example keys', () => {
    assert.ok(isValidKey('dGhlIHNhbXBsZSBub25jZQ=='));
    // 4.1's example has non-zero padding bits; it still matches the base64 ABNF.
    assert.ok(isValidKey('AQIDBAUGBwgJCgsMDQ4PEC=='));
    assert.ok(isValidKey('++++//////////AAAAzz99=='));
  });

  it('ignores surrounding SP and HTAB', () => {
    assert.ok(isValidKey('  dGhlIHNhbXBsZSBub25jZQ==\t'));
  });

  it('rejects wrong lengths and padding', () => {
    assert.equal(isValidKey(''), false);
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25jZQ='), false); // 23 chars
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25jZQ==='), false); // 25 chars
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25jZQAA'), false); // no padding: 18 bytes
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25jZQA='), false); // 17 bytes
    assert.equal(isValidKey(Buffer.alloc(32).toString('base64')), false);
  });

  it('rejects characters outside the base64 alphabet', () => {
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25jZ-=='), false); // base64url
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25jZ_=='), false);
    assert.equal(isValidKey('dGhlIHNhbXBsZSBu b25jZQ=='), false); // inner space
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25j=Q=='), false); // '=' inside
    assert.equal(isValidKey('dGhlIHNhbXBsZSBub25jZ\u00e9=='), false);
  });
});

describe('headerHasToken', () => {
  it('finds a token in a comma-separated list, ASCII case-insensitive', () => {
    assert.ok(headerHasToken('Upgrade', 'upgrade'));
    assert.ok(headerHasToken('keep-alive, Upgrade', 'upgrade'));
    assert.ok(headerHasToken('keep-alive,UPGRADE', 'upgrade'));
    assert.ok(headerHasToken(' \tupgrade\t , close', 'Upgrade'));
    assert.ok(headerHasToken('WebSocket', 'websocket'));
  });

  it('does not match substrings, absent values or non-ASCII case folds', () => {
    assert.equal(headerHasToken(undefined, 'upgrade'), false);
    assert.equal(headerHasToken('', 'upgrade'), false);
    assert.equal(headerHasToken('keep-alive', 'upgrade'), false);
    assert.equal(headerHasToken('upgraded', 'upgrade'), false);
    assert.equal(headerHasToken('no-upgrade', 'upgrade'), false);
    assert.equal(headerHasToken('up grade', 'upgrade'), false);
    // U+212A KELVIN SIGN lower-cases to "k" with String#toLowerCase.
    assert.equal(headerHasToken('websoc\u212Aet', 'websocket'), false);
  });
});

describe('isToken', () => {
  it('accepts tchars', () => {
    assert.ok(isToken('chat'));
    assert.ok(isToken("!#$%&'*+-.^_`|~09azAZ"));
    assert.ok(isToken('permessage-deflate'));
  });

  it('rejects empty strings, separators, whitespace, controls and non-ASCII', () => {
    for (const bad of [
      '',
      'a b',
      'a,b',
      'a;b',
      'a=b',
      '"a"',
      'a/b',
      '(a)',
      'a:b',
      'a@b',
      'a{b}',
      'a\tb',
      'a\x7f',
      'a\u00e9',
    ]) {
      assert.equal(isToken(bad), false, JSON.stringify(bad));
    }
  });
});

describe('parseSubprotocols', () => {
  it('parses a list of tokens in order', () => {
    assert.deepEqual(parseSubprotocols('chat'), ['chat']);
    assert.deepEqual(parseSubprotocols('chat, superchat'), ['chat', 'superchat']);
    assert.deepEqual(parseSubprotocols(' v2.json ,\tv1.json '), ['v2.json', 'v1.json']);
  });

  it('treats joined header lines like a single line', () => {
    assert.deepEqual(parseSubprotocols(['a', 'b, c'].join(', ')), ['a', 'b', 'c']);
  });

  it('keeps names case-sensitive', () => {
    assert.deepEqual(parseSubprotocols('Chat, chat'), ['Chat', 'chat']);
  });

  it('rejects empty values and empty elements', () => {
    assert.equal(parseSubprotocols(''), null);
    assert.equal(parseSubprotocols('  '), null);
    assert.equal(parseSubprotocols('a,,b'), null);
    assert.equal(parseSubprotocols('a, '), null);
    assert.equal(parseSubprotocols(',a'), null);
  });

  it('rejects duplicates', () => {
    assert.equal(parseSubprotocols('chat, chat'), null);
    assert.equal(parseSubprotocols('a, b, a'), null);
  });

  it('rejects elements that are not tokens', () => {
    assert.equal(parseSubprotocols('a b'), null);
    assert.equal(parseSubprotocols('chat/1'), null);
    assert.equal(parseSubprotocols('"chat"'), null);
    assert.equal(parseSubprotocols('chat;v=1'), null);
    assert.equal(parseSubprotocols('ch\u00e4t'), null);
  });
});

describe('parseExtensions', () => {
  it('parses a bare permessage-deflate offer', () => {
    assert.deepEqual(plain(parseExtensions('permessage-deflate')), [
      { name: 'permessage-deflate', params: {}, dup: false },
    ]);
  });

  it('parses parameters with and without values', () => {
    assert.deepEqual(plain(parseExtensions('permessage-deflate; client_max_window_bits; server_max_window_bits=10')), [
      {
        name: 'permessage-deflate',
        params: { client_max_window_bits: true, server_max_window_bits: '10' },
        dup: false,
      },
    ]);
  });

  it('allows SP / HTAB around every separator', () => {
    assert.deepEqual(plain(parseExtensions(' \tfoo \t; a \t= \t1\t;b ,\tbar ')), [
      { name: 'foo', params: { a: '1', b: true }, dup: false },
      { name: 'bar', params: {}, dup: false },
    ]);
    assert.deepEqual(plain(parseExtensions('foo;a=1;b')), [{ name: 'foo', params: { a: '1', b: true }, dup: false }]);
  });

  it('unquotes quoted-string values, honouring backslash escapes', () => {
    assert.deepEqual(plain(parseExtensions('foo; a="10"; b="x\\y"; c="\\1\\5"')), [
      { name: 'foo', params: { a: '10', b: 'xy', c: '15' }, dup: false },
    ]);
  });

  it('parses several offers in order, including joined header lines', () => {
    const value = ['permessage-deflate; client_max_window_bits', 'permessage-deflate', 'x-custom; mode=fast'].join(
      ', ',
    );
    assert.deepEqual(plain(parseExtensions(value)), [
      { name: 'permessage-deflate', params: { client_max_window_bits: true }, dup: false },
      { name: 'permessage-deflate', params: {}, dup: false },
      { name: 'x-custom', params: { mode: 'fast' }, dup: false },
    ]);
    // The RFC 9.1 example.
    assert.deepEqual(plain(parseExtensions('mux; max-channels=4; flow-control, deflate-stream')), [
      { name: 'mux', params: { 'max-channels': '4', 'flow-control': true }, dup: false },
      { name: 'deflate-stream', params: {}, dup: false },
    ]);
  });

  it('flags a repeated parameter and keeps its first value', () => {
    const offers = parseExtensions('permessage-deflate; server_max_window_bits=10; server_max_window_bits=12, foo; a');
    assert.deepEqual(plain(offers), [
      { name: 'permessage-deflate', params: { server_max_window_bits: '10' }, dup: true },
      { name: 'foo', params: { a: true }, dup: false },
    ]);
    assert.deepEqual(plain(parseExtensions('foo; a; a=1')), [{ name: 'foo', params: { a: true }, dup: true }]);
  });

  const malformed: Array<[string, string]> = [
    ['empty value', ''],
    ['only whitespace', ' \t '],
    ['trailing ;', 'permessage-deflate;'],
    ['trailing ; and space', 'permessage-deflate; '],
    ['double ;', 'foo;;a'],
    ['= without value', 'permessage-deflate; server_max_window_bits='],
    ['= without value before next param', 'foo; a=; b'],
    ['= without name', 'foo; =1'],
    ['unterminated quote', 'foo; a="10'],
    ['unterminated quote after escape', 'foo; a="10\\"'],
    ['backslash at end', 'foo; a="1\\'],
    ['non-token quoted value', 'foo; a="1 0"'],
    ['quoted value with separator', 'foo; a="x,y"'],
    ['empty quoted value', 'foo; a=""'],
    ['control char in quotes', 'foo; a="1\x01"'],
    ['escaped control char in quotes', 'foo; a="1\\\x01"'],
    ['quoted extension name', '"foo"'],
    ['quoted parameter name', 'foo; "a"=1'],
    ['trailing ,', 'foo,'],
    ['leading ,', ', foo'],
    ['empty element', 'foo,,bar'],
    ['space inside name', 'foo bar'],
    ['space inside value', 'foo; a=1 2'],
    ['separator in token value', 'foo; a=x/y'],
    ['two values', 'foo; a=1=2'],
    ['text after quoted value', 'foo; a="1"x'],
    ['non-ASCII name', 'f\u00f6o'],
  ];
  for (const [label, value] of malformed) {
    it(`rejects ${label}: ${JSON.stringify(value)}`, () => {
      assert.equal(parseExtensions(value), null);
    });
  }
});

describe('formatExtensions', () => {
  it('writes name; a=1; b and joins offers with ", "', () => {
    const offers = [
      {
        name: 'permessage-deflate',
        params: new Map<string, string | true>([
          ['server_max_window_bits', '10'],
          ['client_no_context_takeover', true],
        ]),
      },
      { name: 'foo', params: new Map<string, string | true>() },
    ];
    assert.equal(
      formatExtensions(offers),
      'permessage-deflate; server_max_window_bits=10; client_no_context_takeover, foo',
    );
    assert.equal(formatExtensions([]), '');
  });

  it('quotes values that are not tokens, escaping " and \\', () => {
    const offers = [
      {
        name: 'foo',
        params: new Map<string, string | true>([
          ['a', 'x y'],
          ['b', 'say "hi" \\o/'],
        ]),
      },
    ];
    assert.equal(formatExtensions(offers), 'foo; a="x y"; b="say \\"hi\\" \\\\o/"');
  });

  it('round-trips through parseExtensions', () => {
    for (const value of [
      'permessage-deflate',
      'permessage-deflate; client_max_window_bits',
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=10, permessage-deflate',
      'mux; max-channels=4; flow-control, deflate-stream, x; y=z',
    ]) {
      const parsed = parseExtensions(value);
      assert.ok(parsed, value);
      assert.equal(formatExtensions(parsed), value);
      assert.deepEqual(plain(parseExtensions(formatExtensions(parsed))), plain(parsed));
    }
    // Normalises whitespace and quoting of token values.
    const parsed = parseExtensions('foo ;a="1" ,  bar');
    assert.ok(parsed);
    assert.equal(formatExtensions(parsed), 'foo; a=1, bar');
  });

  it('throws on names that are not tokens and values that cannot be quoted', () => {
    assert.throws(() => formatExtensions([{ name: 'a b', params: new Map() }]), TypeError);
    assert.throws(() => formatExtensions([{ name: '', params: new Map() }]), TypeError);
    assert.throws(
      () => formatExtensions([{ name: 'foo', params: new Map<string, string | true>([['a=b', true]]) }]),
      TypeError,
    );
    assert.throws(
      () => formatExtensions([{ name: 'foo', params: new Map<string, string | true>([['a', 'x\r\nSet-Cookie: y']]) }]),
      TypeError,
    );
  });
});

describe('checkUpgradeRequest', () => {
  const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
  function goodHeaders(): Record<string, string | string[] | undefined> {
    return {
      host: 'server.example.com',
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': KEY,
      'sec-websocket-version': '13',
      origin: 'http://example.com',
    };
  }
  function check(
    overrides: Record<string, string | string[] | undefined>,
    method = 'GET',
    version = '1.1',
  ): UpgradeCheck {
    return checkUpgradeRequest(method, version, { ...goodHeaders(), ...overrides });
  }
  function assertFails(result: UpgradeCheck, status: number, headers?: Record<string, string>): void {
    assert.equal(result.ok, false, 'expected failure');
    if (result.ok) return;
    assert.equal(result.status, status);
    assert.ok(result.message.length > 0);
    assert.deepEqual(result.headers, headers);
  }

  it('accepts a valid request', () => {
    const result = check({});
    assert.deepEqual(result, { ok: true, key: KEY, protocols: [], extensions: [] });
  });

  it('accepts mixed case, token lists, newer HTTP versions and a padded key', () => {
    const result = check(
      { upgrade: 'WebSocket', connection: 'keep-alive, Upgrade', 'sec-websocket-key': ` ${KEY} ` },
      'GET',
      '2.0',
    );
    assert.equal(result.ok, true);
    assert.ok(result.ok && result.key === KEY);
    assert.equal(check({}, 'GET', '1.2').ok, true);
    assert.equal(check({}, 'GET', '1.10').ok, true);
  });

  it('returns parsed subprotocols and extensions, joining repeated lines', () => {
    const result = check({
      'sec-websocket-protocol': ['chat', 'superchat, v2'],
      'sec-websocket-extensions': ['permessage-deflate; client_max_window_bits', 'foo'],
    });
    assert.equal(result.ok, true);
    if (!result.ok) return;
    assert.deepEqual(result.protocols, ['chat', 'superchat', 'v2']);
    assert.deepEqual(plain(result.extensions), [
      { name: 'permessage-deflate', params: { client_max_window_bits: true }, dup: false },
      { name: 'foo', params: {}, dup: false },
    ]);
  });

  it('accepts repeated Connection / Upgrade lines', () => {
    assert.equal(check({ connection: ['keep-alive', 'Upgrade'], upgrade: ['h2c', 'websocket'] }).ok, true);
  });

  it('405 with Allow: GET for other methods', () => {
    assertFails(check({}, 'POST'), 405, { Allow: 'GET' });
    assertFails(check({}, 'get'), 405, { Allow: 'GET' });
    assertFails(check({}, 'HEAD'), 405, { Allow: 'GET' });
  });

  it('400 for HTTP versions below 1.1 or malformed', () => {
    for (const version of ['1.0', '0.9', '', '1', 'HTTP/1.1', '1.x']) {
      const result = check({}, 'GET', version);
      assertFails(result, 400);
      assert.ok(!result.ok && result.message === 'HTTP/1.1 or later required', version);
    }
  });

  it('400 for missing, empty or repeated Host', () => {
    assertFails(check({ host: undefined }), 400);
    assertFails(check({ host: '' }), 400);
    assertFails(check({ host: ' ' }), 400);
    assertFails(check({ host: ['a.example', 'b.example'] }), 400);
    assertFails(check({ host: [] }), 400);
    assert.equal(check({ host: ['a.example'] }).ok, true);
  });

  it('400 for missing or wrong Upgrade', () => {
    assertFails(check({ upgrade: undefined }), 400);
    assertFails(check({ upgrade: 'h2c' }), 400);
    assertFails(check({ upgrade: 'websockets' }), 400);
  });

  it('400 for missing or wrong Connection', () => {
    assertFails(check({ connection: undefined }), 400);
    assertFails(check({ connection: 'keep-alive' }), 400);
    assertFails(check({ connection: 'close' }), 400);
  });

  it('426 with Sec-WebSocket-Version: 13 for missing or other versions', () => {
    for (const version of [undefined, '', '8', '12', '14', '13, 8', ['13', '13']]) {
      assertFails(check({ 'sec-websocket-version': version }), 426, { 'Sec-WebSocket-Version': '13' });
    }
    assert.equal(check({ 'sec-websocket-version': ' 13 ' }).ok, true);
  });

  it('400 for missing, invalid or repeated Sec-WebSocket-Key', () => {
    assertFails(check({ 'sec-websocket-key': undefined }), 400);
    assertFails(check({ 'sec-websocket-key': '' }), 400);
    assertFails(check({ 'sec-websocket-key': 'not a key' }), 400);
    assertFails(check({ 'sec-websocket-key': Buffer.alloc(15).toString('base64') }), 400);
    assertFails(check({ 'sec-websocket-key': [KEY, KEY] }), 400);
  });

  it('400 for a malformed Sec-WebSocket-Protocol', () => {
    assertFails(check({ 'sec-websocket-protocol': '' }), 400);
    assertFails(check({ 'sec-websocket-protocol': 'chat,,x' }), 400);
    assertFails(check({ 'sec-websocket-protocol': 'chat, chat' }), 400);
    assertFails(check({ 'sec-websocket-protocol': ['chat', 'chat'] }), 400);
    assertFails(check({ 'sec-websocket-protocol': 'a b' }), 400);
  });

  it('400 for a malformed Sec-WebSocket-Extensions', () => {
    assertFails(check({ 'sec-websocket-extensions': '' }), 400);
    assertFails(check({ 'sec-websocket-extensions': 'permessage-deflate;' }), 400);
    assertFails(check({ 'sec-websocket-extensions': 'foo; a="b c"' }), 400);
  });

  it('accepts duplicate extension parameters but reports them', () => {
    const result = check({
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits; client_max_window_bits=9',
    });
    assert.equal(result.ok, true);
    assert.ok(result.ok && result.extensions[0]?.duplicateParams === true);
  });

  it('checks in the documented order', () => {
    const empty = {
      host: undefined,
      upgrade: undefined,
      connection: undefined,
      'sec-websocket-key': undefined,
      'sec-websocket-version': undefined,
    };
    assertFails(check(empty, 'POST', '1.0'), 405, { Allow: 'GET' });
    const versionFail = check(empty, 'GET', '1.0');
    assert.ok(!versionFail.ok && versionFail.message === 'HTTP/1.1 or later required');
    const hostFail = check(empty);
    assert.ok(!hostFail.ok && /Host/.test(hostFail.message));
    const upgradeFail = check({ ...empty, host: 'h' });
    assert.ok(!upgradeFail.ok && /Upgrade header/.test(upgradeFail.message));
    const connectionFail = check({ ...empty, host: 'h', upgrade: 'websocket' });
    assert.ok(!connectionFail.ok && /Connection/.test(connectionFail.message));
    // Version is checked before the key, so a missing key still gets 426.
    assertFails(check({ ...empty, host: 'h', upgrade: 'websocket', connection: 'upgrade' }), 426, {
      'Sec-WebSocket-Version': '13',
    });
    const keyFail = check({
      'sec-websocket-key': 'bad',
      'sec-websocket-protocol': 'a,,b',
      'sec-websocket-extensions': ';',
    });
    assert.ok(!keyFail.ok && /Key/.test(keyFail.message));
    const protocolFail = check({ 'sec-websocket-protocol': 'a,,b', 'sec-websocket-extensions': ';' });
    assert.ok(!protocolFail.ok && /Protocol/.test(protocolFail.message));
    const extensionFail = check({ 'sec-websocket-extensions': ';' });
    assert.ok(!extensionFail.ok && /Extensions/.test(extensionFail.message));
  });
});

describe('buildAcceptResponse', () => {
  it('builds the minimal 101 response', () => {
    assert.equal(
      buildAcceptResponse('dGhlIHNhbXBsZSBub25jZQ==', undefined, undefined, []),
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n' +
        '\r\n',
    );
  });

  it('adds protocol, extensions and extra headers in that order', () => {
    assert.equal(
      buildAcceptResponse('dGhlIHNhbXBsZSBub25jZQ==', 'chat', 'permessage-deflate; server_max_window_bits=10', [
        'Set-Cookie: a=b',
        'X-Powered-By: duet',
      ]),
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n' +
        'Sec-WebSocket-Protocol: chat\r\n' +
        'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n' +
        'Set-Cookie: a=b\r\n' +
        'X-Powered-By: duet\r\n' +
        '\r\n',
    );
  });

  it('throws TypeError on header injection attempts', () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    assert.throws(() => buildAcceptResponse(key, undefined, undefined, ['X-A: 1\r\nX-B: 2']), TypeError);
    assert.throws(() => buildAcceptResponse(key, undefined, undefined, ['X-A: 1\n']), TypeError);
    assert.throws(() => buildAcceptResponse(key, undefined, undefined, ['X-A: 1\r']), TypeError);
    assert.throws(() => buildAcceptResponse(key, undefined, 'foo\r\nX: y', []), TypeError);
    assert.throws(() => buildAcceptResponse(key, 'chat\r\nX: y', undefined, []), TypeError);
    assert.throws(() => buildAcceptResponse(key, '', undefined, []), TypeError);
  });
});

describe('buildErrorResponse', () => {
  it('builds a complete text/plain response that closes the connection', () => {
    assert.equal(
      buildErrorResponse(400, 'Missing or invalid Upgrade header'),
      'HTTP/1.1 400 Bad Request\r\n' +
        'Connection: close\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        'Content-Length: 33\r\n' +
        '\r\n' +
        'Missing or invalid Upgrade header',
    );
  });

  it('adds extra headers and counts Content-Length in UTF-8 bytes', () => {
    const body = 'Upgrade required \u2013 v13'; // 22 characters, 24 UTF-8 bytes (the dash is 3)
    assert.equal(body.length, 22);
    const response = buildErrorResponse(426, body, { 'Sec-WebSocket-Version': '13' });
    assert.equal(
      response,
      'HTTP/1.1 426 Upgrade Required\r\n' +
        'Connection: close\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        'Content-Length: 24\r\n' +
        'Sec-WebSocket-Version: 13\r\n' +
        '\r\n' +
        'Upgrade required \u2013 v13',
    );
    assert.match(
      buildErrorResponse(405, '', { Allow: 'GET' }),
      /^HTTP\/1\.1 405 Method Not Allowed\r\n[^]*Content-Length: 0\r\nAllow: GET\r\n\r\n$/,
    );
  });

  it('lets Content-Type be replaced but not Connection or Content-Length', () => {
    assert.equal(
      buildErrorResponse(403, '{}', { 'content-type': 'application/json' }),
      'HTTP/1.1 403 Forbidden\r\nConnection: close\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}',
    );
    assert.throws(() => buildErrorResponse(400, 'x', { 'Content-Length': '99' }), TypeError);
    assert.throws(() => buildErrorResponse(400, 'x', { connection: 'keep-alive' }), TypeError);
  });

  it('rejects bad header names, CR / LF in values and bad status codes', () => {
    assert.throws(() => buildErrorResponse(400, 'x', { 'X Bad': '1' }), TypeError);
    assert.throws(() => buildErrorResponse(400, 'x', { 'X-A': '1\r\nX-B: 2' }), TypeError);
    assert.throws(() => buildErrorResponse(99, 'x'), RangeError);
    assert.throws(() => buildErrorResponse(400.5, 'x'), RangeError);
  });

  it('leaves the reason phrase empty for unknown codes', () => {
    assert.ok(buildErrorResponse(499, 'x').startsWith('HTTP/1.1 499 \r\n'));
  });
});
