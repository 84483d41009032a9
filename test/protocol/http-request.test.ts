/**
 * The request-head parser duet's own server uses instead of node:http: the request line,
 * header fields (strict: no obs-fold, no whitespace before the colon, no control characters),
 * node:http's rules for joining repeated fields, and finding the end of the head in any split.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { distinctHeaders, findHeadEnd, joinHeaders, parseRequestHead } from '../../src/protocol/http-request.js';

const head = (text: string): Buffer => Buffer.from(text + '\r\n\r\n', 'latin1');

describe('parseRequestHead', () => {
  it('reads the request line and the fields, names as received, values trimmed', () => {
    const r = parseRequestHead(
      head('GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade:websocket\r\nX-Pad: \t spaced value \t'),
    );
    assert.deepEqual(r, {
      ok: true,
      head: {
        method: 'GET',
        target: '/chat?room=1',
        version: '1.1',
        rawHeaders: ['Host', 'example.com', 'Upgrade', 'websocket', 'X-Pad', 'spaced value'],
      },
    });
  });

  it('keeps obs-text (bytes 0x80-0xff) in values, as latin1', () => {
    const r = parseRequestHead(
      Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nX-Name: caf'), Buffer.from([0xe9]), Buffer.from('\r\n\r\n')]),
    );
    assert.ok(r.ok);
    assert.equal(r.head.rawHeaders[1], 'café');
  });

  const bad: Array<[string, string]> = [
    ['no version', 'GET /'],
    ['lower-case HTTP', 'GET / http/1.1'],
    ['two spaces', 'GET  / HTTP/1.1'],
    ['space in the target', 'GET /a b HTTP/1.1'],
    ['a method that is not a token', 'G(T / HTTP/1.1'],
    ['version with letters', 'GET / HTTP/x.1'],
    ['obs-fold', 'GET / HTTP/1.1\r\nX-A: one\r\n two'],
    ['whitespace before the colon', 'GET / HTTP/1.1\r\nHost : a'],
    ['no colon', 'GET / HTTP/1.1\r\nHost'],
    ['empty name', 'GET / HTTP/1.1\r\n: value'],
    ['a name that is not a token', 'GET / HTTP/1.1\r\nX(y): 1'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nX-A: a\x00b'],
    ['bare LF in a value', 'GET / HTTP/1.1\r\nX-A: a\nb'],
    ['DEL in a value', 'GET / HTTP/1.1\r\nX-A: a\x7fb'],
  ];
  for (const [name, text] of bad) {
    it(`400 for ${name}`, () => {
      const r = parseRequestHead(head(text));
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.status, 400);
    });
  }
});

describe('joinHeaders and distinctHeaders (node:http semantics)', () => {
  const raw = [
    'Host',
    'a',
    'HOST',
    'b',
    'Accept',
    'x',
    'accept',
    'y',
    'Cookie',
    'c=1',
    'cookie',
    'd=2',
    'Set-Cookie',
    's=1',
    'set-cookie',
    's=2',
    'User-Agent',
    'ua1',
    'User-Agent',
    'ua2',
  ];
  it('joins repeated fields with ", " (cookie with "; "), keeps the first of single-valued ones, set-cookie as a list', () => {
    assert.deepEqual(
      { ...joinHeaders(raw) },
      { host: 'a', accept: 'x, y', cookie: 'c=1; d=2', 'set-cookie': ['s=1', 's=2'], 'user-agent': 'ua1' },
    );
  });
  it('distinctHeaders keeps every value', () => {
    assert.deepEqual({ ...distinctHeaders(raw) }.host, ['a', 'b']);
    assert.deepEqual({ ...distinctHeaders(raw) }['user-agent'], ['ua1', 'ua2']);
  });

  it('a field named __proto__ is dropped, not written to the prototype', () => {
    const fields = ['__proto__', 'x', '__PROTO__', 'y', 'Host', 'a'];
    for (const out of [joinHeaders(fields), distinctHeaders(fields)]) {
      assert.deepEqual(Object.keys(out), ['host']);
      assert.equal(Object.getPrototypeOf(out), Object.prototype);
      assert.equal(Object.hasOwn(out, '__proto__'), false);
    }
  });
});

describe('findHeadEnd', () => {
  it('finds CRLF CRLF wherever reads split it, resuming from the previous length', () => {
    const text = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\nrest');
    const end = text.indexOf('rest');
    for (let cut = 1; cut < text.length; cut++) {
      const first = text.subarray(0, cut);
      const whole = text;
      const early = findHeadEnd(first);
      if (cut >= end) assert.equal(early, end);
      else {
        assert.equal(early, -1);
        assert.equal(findHeadEnd(whole, first.length), end);
      }
    }
  });
});
