/**
 * What `new WebSocket(...)` is given, checked without a socket (src/node/client-url.ts): URLs
 * (the WHATWG rules and ws's ws+unix: form), the argument shapes of browsers and ws, WebIDL's
 * conversion of `protocols`, credentials, and which redirects keep them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  basicAuthorization,
  clientArguments,
  parseProtocolsArgument,
  parseWebSocketUrl,
  redirectKeepsCredentials,
  resolveRedirect,
  sameServer,
  urlCredentials,
} from '../../src/node/client-url.js';

function syntaxError(err: unknown): boolean {
  assert.ok(err instanceof DOMException, `expected a DOMException, got ${String(err)}`);
  assert.equal(err.name, 'SyntaxError');
  return true;
}

describe('parseWebSocketUrl', () => {
  it('ws/wss/http/https: the request path is path and query; only wss is secure', () => {
    const plain = parseWebSocketUrl('http://h:81/a/b?c=d');
    assert.equal(plain.url.href, 'ws://h:81/a/b?c=d');
    assert.equal(plain.path, '/a/b?c=d');
    assert.equal(plain.secure, false);
    assert.equal(plain.socketPath, undefined);
    assert.equal(parseWebSocketUrl('https://h/').secure, true);
    assert.equal(parseWebSocketUrl('wss://h/').secure, true);
  });

  it('ws+unix: the socket path before the first colon, the request after it (ws form)', () => {
    const a = parseWebSocketUrl('ws+unix:/tmp/duet.sock:/echo?x=1');
    assert.equal(a.socketPath, '/tmp/duet.sock');
    assert.equal(a.path, '/echo?x=1');
    assert.equal(a.secure, false);
    assert.equal(a.url.href, 'ws+unix:/tmp/duet.sock:/echo?x=1');
    const triple = parseWebSocketUrl('ws+unix:///tmp/duet.sock:/p');
    assert.equal(triple.socketPath, '/tmp/duet.sock');
    assert.equal(triple.path, '/p');
  });

  it('ws+unix: no request path means "/"; one without a slash gets one', () => {
    assert.equal(parseWebSocketUrl('ws+unix:/tmp/s').path, '/');
    assert.equal(parseWebSocketUrl('ws+unix:/tmp/s:').path, '/');
    assert.equal(parseWebSocketUrl('ws+unix:/tmp/s:chat').path, '/chat');
  });

  it('ws+unix: the socket path is percent-decoded (spaces work); a malformed escape is kept', () => {
    assert.equal(parseWebSocketUrl('ws+unix:/tmp/my sock:/x').socketPath, '/tmp/my sock');
    assert.equal(parseWebSocketUrl('ws+unix:/tmp/caf%C3%A9:/x').socketPath, '/tmp/café');
    assert.equal(parseWebSocketUrl('ws+unix:/tmp/a%zzb:/x').socketPath, '/tmp/a%zzb');
  });

  it('ws+unix: no socket path, a host, or a fragment throw SyntaxError', () => {
    for (const bad of [
      'ws+unix:',
      'ws+unix::/x',
      'ws+unix://host/tmp/s:/x',
      'ws+unix:/tmp/s:/x#f',
      'ws+unix:/tmp/s#',
    ]) {
      assert.throws(() => parseWebSocketUrl(bad), syntaxError, bad);
    }
  });

  it('other schemes still throw SyntaxError, naming the accepted ones', () => {
    assert.throws(() => parseWebSocketUrl('wss+unix:/tmp/s'), /"ws", "wss", "http", "https" or "ws\+unix"/);
    assert.throws(() => parseWebSocketUrl('ftp://h/'), syntaxError);
  });
});

describe('resolveRedirect', () => {
  const from = parseWebSocketUrl('ws://a.example:8080/start/here?q=1');
  it('relative and absolute locations resolve against the request, http(s) mapped to ws(s)', () => {
    assert.equal(resolveRedirect('/other', from).url.href, 'ws://a.example:8080/other');
    assert.equal(resolveRedirect('next', from).url.href, 'ws://a.example:8080/start/next');
    assert.equal(resolveRedirect('https://b.example/x', from).url.href, 'wss://b.example/x');
  });

  it('from a ws+unix: URL a relative location stays on the same socket', () => {
    const unix = parseWebSocketUrl('ws+unix:/run/app%20x.sock:/start/here?q=1');
    const next = resolveRedirect('/target?y=2', unix);
    assert.equal(next.socketPath, '/run/app x.sock');
    assert.equal(next.path, '/target?y=2');
    assert.equal(resolveRedirect('sibling', unix).path, '/start/sibling');
    // An absolute location goes where it says.
    assert.equal(resolveRedirect('ws://h/x', unix).url.href, 'ws://h/x');
    assert.equal(resolveRedirect('ws+unix:/other.sock:/y', unix).socketPath, '/other.sock');
  });

  it('a location that is not a WebSocket URL, or has a fragment, throws SyntaxError', () => {
    assert.throws(() => resolveRedirect('ftp://h/', from), syntaxError);
    assert.throws(() => resolveRedirect('/x#y', from), syntaxError);
    const unix = parseWebSocketUrl('ws+unix:/s:/a');
    assert.throws(() => resolveRedirect('/x#y', unix), syntaxError);
    assert.throws(() => resolveRedirect('/x#', unix), syntaxError);
    assert.throws(() => resolveRedirect('http://[', unix), syntaxError);
  });
});

describe("clientArguments: the browsers' and ws's argument shapes", () => {
  it('WHATWG forms: none, a string, a list', () => {
    assert.deepEqual(clientArguments(undefined, undefined), { protocols: [], options: {} });
    assert.deepEqual(clientArguments('chat', undefined).protocols, ['chat']);
    assert.deepEqual(clientArguments(['a', 'b'], undefined).protocols, ['a', 'b']);
  });

  it('ws forms: (options) and (protocols, options); options.protocols when no protocols argument', () => {
    const headers = { 'X-A': '1' };
    assert.deepEqual(clientArguments({ headers }, undefined), { protocols: [], options: { headers } });
    assert.deepEqual(clientArguments({ protocols: ['a', 'b'] }, undefined).protocols, ['a', 'b']);
    assert.deepEqual(clientArguments({ protocols: 'one' }, undefined).protocols, ['one']);
    assert.deepEqual(clientArguments(['x'], { headers }), { protocols: ['x'], options: { headers } });
    assert.deepEqual(clientArguments(undefined, { protocols: ['p'] }).protocols, ['p']);
    // The argument wins over the option (as in ws).
    assert.deepEqual(clientArguments('arg', { protocols: ['opt'] }).protocols, ['arg']);
    // null options mean none.
    assert.deepEqual(clientArguments({ headers }, null).options, { headers });
    assert.deepEqual(clientArguments('p', null).options, {});
  });

  it('WebIDL: an iterable object is a list, other values are converted to one string', () => {
    assert.deepEqual(parseProtocolsArgument(new Set(['a', 'b'])), ['a', 'b']);
    assert.deepEqual(parseProtocolsArgument(null), ['null']);
    assert.deepEqual(parseProtocolsArgument(5), ['5']);
    assert.deepEqual(parseProtocolsArgument([1, 'x', true]), ['1', 'x', 'true']);
    assert.deepEqual(parseProtocolsArgument(undefined), []);
    assert.deepEqual(parseProtocolsArgument([]), []);
  });

  it('bad protocols throw SyntaxError (not tokens, repeated); Symbols a TypeError', () => {
    assert.throws(() => parseProtocolsArgument('a b'), syntaxError);
    assert.throws(() => parseProtocolsArgument(['a', 'A']), syntaxError);
    assert.throws(() => clientArguments({ protocols: ['ok', 'not ok'] }, undefined), syntaxError);
    // A function is not ws's options: WebIDL makes a string of it, which is no token.
    assert.throws(() => parseProtocolsArgument(() => 1), syntaxError);
    assert.throws(() => parseProtocolsArgument(Symbol('s')), TypeError);
    assert.throws(() => parseProtocolsArgument([Symbol('s')]), TypeError);
  });

  it('options that are not an object, or given twice, throw TypeError', () => {
    assert.throws(() => clientArguments([], 'options'), /The options argument must be an object, got string/);
    assert.throws(() => clientArguments(undefined, 5), TypeError);
    assert.throws(() => clientArguments({ headers: {} }, {}), /options were given twice/);
  });
});

describe('credentials', () => {
  it('urlCredentials: user and password percent-decoded, either may be empty', () => {
    assert.equal(urlCredentials(new URL('ws://h/')), undefined);
    assert.equal(urlCredentials(new URL('ws://us%40er:p%3Ass@h/')), 'us@er:p:ss');
    assert.equal(urlCredentials(new URL('ws://user@h/')), 'user:');
    assert.equal(urlCredentials(new URL('ws://:pw@h/')), ':pw');
    assert.equal(urlCredentials(new URL('ws://caf%C3%A9:x@h/')), 'café:x');
  });

  it('basicAuthorization: base64 of the UTF-8 bytes', () => {
    assert.equal(basicAuthorization('Aladdin:open sesame'), 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
    assert.equal(basicAuthorization('café:x'), `Basic ${Buffer.from('café:x').toString('base64')}`);
  });

  it('a redirect keeps them on the same host and port (or socket), never down from wss to ws', () => {
    const u = (s: string) => parseWebSocketUrl(s);
    assert.equal(redirectKeepsCredentials(u('ws://h:1/a'), u('ws://h:1/b')), true);
    assert.equal(redirectKeepsCredentials(u('ws://h/a'), u('wss://h/b')), true, 'up to wss');
    assert.equal(redirectKeepsCredentials(u('wss://h/a'), u('ws://h/b')), false, 'down to ws');
    assert.equal(redirectKeepsCredentials(u('ws://h:1/a'), u('ws://h:2/a')), false, 'another port');
    assert.equal(redirectKeepsCredentials(u('ws://h/a'), u('ws://sub.h/a')), false, 'a subdomain');
    assert.equal(redirectKeepsCredentials(u('ws+unix:/s:/a'), u('ws+unix:/s:/b')), true);
    assert.equal(redirectKeepsCredentials(u('ws+unix:/s:/a'), u('ws+unix:/t:/a')), false);
    assert.equal(sameServer(u('ws+unix:/s:/a'), u('ws://localhost/a')), false);
    assert.equal(sameServer(u('ws://localhost/a'), u('ws+unix:/s:/a')), false);
  });
});
