/**
 * Unit tests of the header-field rules (src/protocol/header-fields.ts): which names and values
 * duet sends, how numbers and lists become text (as node:http does), and that nothing able to
 * split a line (CR, LF, NUL, other controls) or of another type gets through. Also the response
 * builders that use them (serializeResponseLines, buildErrorResponse).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import {
  INVALID_HEADER,
  checkHeaderLine,
  headerFieldList,
  headerLines,
  isHeaderValueText,
  isToken,
} from '../../src/protocol/header-fields.js';
import { buildErrorResponse, serializeResponseLines } from '../../src/protocol/handshake.js';

/** Assert that `fn` throws a TypeError with code WS_ERR_INVALID_HEADER whose message matches `pattern`. */
function throwsInvalid(fn: () => unknown, pattern: RegExp, label: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof TypeError, `${label}: a TypeError`);
      assert.equal((err as TypeError & { code?: string }).code, INVALID_HEADER, label);
      assert.match(err.message, pattern, label);
      return true;
    },
    label,
  );
}

function nodeAccepts(check: () => void): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

describe('isHeaderValueText', () => {
  it('accepts HTAB, space and visible ASCII, and the empty string', () => {
    assert.equal(isHeaderValueText(''), true);
    assert.equal(isHeaderValueText('\t'), true);
    for (let c = 0x20; c <= 0x7e; c++)
      assert.equal(isHeaderValueText(`a${String.fromCharCode(c)}b`), true, c.toString(16));
  });

  it('refuses every other control character, DEL and non-ASCII text', () => {
    for (let c = 0; c < 0x20; c++) {
      if (c !== 0x09) assert.equal(isHeaderValueText(`a${String.fromCharCode(c)}b`), false, c.toString(16));
    }
    for (const s of ['\x7f', '\x80', '\xe9', '\xff', '\u0100', '\u2028', '\u{1F600}'])
      assert.equal(isHeaderValueText(`a${s}b`), false, JSON.stringify(s));
  });

  it('never accepts a character node:http refuses (a subset of what Node sends)', () => {
    for (let c = 0; c <= 0x17f; c++) {
      const value = `a${String.fromCharCode(c)}b`;
      if (isHeaderValueText(value))
        assert.ok(
          nodeAccepts(() => validateHeaderValue('x', value)),
          c.toString(16),
        );
    }
  });
});

describe('isToken (header names)', () => {
  it('agrees with node:http on every single character', () => {
    for (let c = 0; c <= 0x17f; c++) {
      const name = `X${String.fromCharCode(c)}`;
      assert.equal(
        isToken(name),
        nodeAccepts(() => validateHeaderName(name)),
        c.toString(16),
      );
    }
  });
});

describe('headerFieldList / headerLines', () => {
  it('undefined and {} are no fields', () => {
    assert.deepEqual(headerFieldList(undefined), []);
    assert.deepEqual(headerFieldList({}), []);
  });

  it('strings as they are; numbers as String(n), as node:http writes them', () => {
    assert.deepEqual(
      headerFieldList({ 'Retry-After': 120, 'X-Ratio': 0.5, 'X-Neg': -3, 'X-Text': 'a b\tc', 'X-Empty': '' }),
      [
        ['Retry-After', ['120']],
        ['X-Ratio', ['0.5']],
        ['X-Neg', ['-3']],
        ['X-Text', ['a b\tc']],
        ['X-Empty', ['']],
      ],
    );
  });

  it('a list gives one line per element, in order; an empty list gives none', () => {
    const headers = { 'Set-Cookie': ['a=1', 'b=2'], 'X-Codes': [1, 2, 'three'], 'X-None': [] as string[] };
    assert.deepEqual(headerFieldList(headers), [
      ['Set-Cookie', ['a=1', 'b=2']],
      ['X-Codes', ['1', '2', 'three']],
      ['X-None', []],
    ]);
    assert.deepEqual(headerLines(headers), [
      'Set-Cookie: a=1',
      'Set-Cookie: b=2',
      'X-Codes: 1',
      'X-Codes: 2',
      'X-Codes: three',
    ]);
  });

  it('refuses names that are not tokens', () => {
    for (const name of ['', 'X Bad', 'X:Bad', 'X-A:', ' X', 'X\r\nSet-Cookie', 'X\0', 'Ünï', '(x)', 'a/b', 'a@b']) {
      throwsInvalid(() => headerFieldList({ [name]: '1' }), /Invalid header name/, JSON.stringify(name));
    }
  });

  it('shows a long invalid name by its first 60 characters only', () => {
    const name = `${'x'.repeat(60)} and the rest`;
    throwsInvalid(
      () => headerFieldList({ [name]: '1' }),
      new RegExp(`^Invalid header name "${'x'.repeat(60)}\\.\\.\\."`),
      'long name',
    );
  });

  it('refuses values holding CR, LF, NUL, other controls or non-ASCII text, whole or in a list', () => {
    const bad = [
      'x\r\nSet-Cookie: a=b',
      'x\nSet-Cookie: a=b',
      'x\rSet-Cookie: a=b',
      'a\0b',
      'a\x01b',
      'a\x7fb',
      'caf\xe9',
      '\u0100',
      'a\u2028b',
    ];
    for (const value of bad) {
      throwsInvalid(() => headerFieldList({ 'X-A': value }), /Invalid value for header "X-A"/, JSON.stringify(value));
      throwsInvalid(
        () => headerFieldList({ 'X-A': ['fine', value] }),
        /Invalid value for header "X-A"/,
        `[${JSON.stringify(value)}]`,
      );
      throwsInvalid(() => headerLines({ 'X-A': value }), /cannot be sent/, JSON.stringify(value));
    }
  });

  it('a refused value is not repeated in the message (it may be a token): which character and where', () => {
    const secret = `Bearer s3cr3t-${'a'.repeat(70)}\r\nSet-Cookie: a=b`;
    throwsInvalid(
      () => headerFieldList({ Authorization: secret }),
      /^Invalid value for header "Authorization": its character 85 \(U\+000D\) cannot be sent/,
      'long',
    );
    assert.throws(
      () => headerFieldList({ Authorization: secret }),
      (err: Error) => !err.message.includes('s3cr3t'),
    );
    throwsInvalid(
      () => headerFieldList({ 'X-A': 'a\u00e9b' }),
      /^Invalid value for header "X-A": its character 2 \(U\+00E9\) cannot be sent/,
      'non-ASCII',
    );
    throwsInvalid(
      () => headerFieldList({ 'X-A': 'ab\u{1F600}' }),
      /^Invalid value for header "X-A": its character 3 \(U\+1F600\) cannot be sent/,
      'astral',
    );
  });

  it('refuses values of other types: undefined, null, objects, booleans, NaN, Infinity, nested lists', () => {
    const bad: unknown[] = [
      undefined,
      null,
      {},
      { toString: () => 'x' },
      true,
      false,
      NaN,
      Infinity,
      -Infinity,
      10n,
      Symbol('s'),
      () => 'x',
      [['a']],
      [null],
      [undefined],
    ];
    for (const value of bad) {
      throwsInvalid(
        () => headerFieldList({ 'X-A': value }),
        /expected a string, a finite number or an array of them/,
        String(value),
      );
    }
  });

  it('refuses headers that are not an object', () => {
    for (const headers of [null, 'X-A: 1', 5, ['X-A', '1'], true]) {
      throwsInvalid(() => headerFieldList(headers), /Headers must be an object/, JSON.stringify(headers));
    }
  });
});

describe('checkHeaderLine', () => {
  it('accepts Name: value lines', () => {
    for (const line of ['X-A: 1', 'X-A:1', 'X-A:', 'Set-Cookie: a=b; Path=/', 'X:\tvalue\t']) checkHeaderLine(line);
  });

  it('refuses anything else', () => {
    const bad: unknown[] = [
      'X-A 1',
      'X-A : 1',
      ': 1',
      '',
      'X-A: 1\r\nSet-Cookie: a=b',
      'X-A: 1\n',
      'X-A: \0',
      'X-A: caf\xe9',
      5,
      null,
      undefined,
      ['X-A: 1'],
    ];
    for (const line of bad)
      throwsInvalid(() => checkHeaderLine(line), /header line|Invalid value/, JSON.stringify(line) ?? String(line));
  });
});

describe('serializeResponseLines', () => {
  it('joins a status line and header lines with CRLF, ending with the blank line', () => {
    assert.equal(
      serializeResponseLines(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'X-A: 1']),
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-A: 1\r\n\r\n',
    );
  });

  it('refuses an injected line, a non-string line or a broken status line with WS_ERR_INVALID_HEADER', () => {
    const ok = 'HTTP/1.1 101 Switching Protocols';
    throwsInvalid(() => serializeResponseLines([ok, 'X-A: 1\r\nSet-Cookie: a=b']), /Invalid value/, 'CRLF');
    throwsInvalid(() => serializeResponseLines([ok, 120 as unknown as string]), /must be a string/, 'number');
    throwsInvalid(() => serializeResponseLines([ok, 'not a header']), /header line/, 'no colon');
    throwsInvalid(() => serializeResponseLines(['HTTP/1.1 101 OK\r\nSet-Cookie: a=b']), /status line/, 'status line');
    throwsInvalid(() => serializeResponseLines([]), /status line/, 'empty');
  });
});

describe('buildErrorResponse with header values of other types', () => {
  it('numbers and lists are written as node:http writes them', () => {
    assert.equal(
      buildErrorResponse(429, 'slow down', { 'Retry-After': 120, 'Set-Cookie': ['a=1', 'b=2'], 'X-Codes': [4, 2] }),
      'HTTP/1.1 429 Too Many Requests\r\n' +
        'Connection: close\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        'Content-Length: 9\r\n' +
        'Retry-After: 120\r\n' +
        'Set-Cookie: a=1\r\n' +
        'Set-Cookie: b=2\r\n' +
        'X-Codes: 4\r\n' +
        'X-Codes: 2\r\n' +
        '\r\n' +
        'slow down',
    );
  });

  it('an empty list removes a default header and adds no empty line', () => {
    assert.equal(
      buildErrorResponse(400, 'x', { 'Content-Type': [], 'X-None': [] }),
      'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx',
    );
  });

  it('the last of two names differing in case wins, as with setHeader', () => {
    assert.equal(
      buildErrorResponse(400, '', { 'x-a': 1, 'X-A': 2 }),
      'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\nX-A: 2\r\n\r\n',
    );
  });

  it('refuses injection and bad types with WS_ERR_INVALID_HEADER, bad statuses with WS_ERR_INVALID_STATUS', () => {
    throwsInvalid(
      () => buildErrorResponse(401, 'x', { 'WWW-Authenticate': 'x\r\nSet-Cookie: a=b' }),
      /WWW-Authenticate/,
      'CRLF',
    );
    throwsInvalid(() => buildErrorResponse(401, 'x', { 'X-A': undefined as unknown as string }), /X-A/, 'undefined');
    throwsInvalid(() => buildErrorResponse(401, 'x', { 'Bad Name': 1 }), /Bad Name/, 'name');
    for (const status of [99, 1000, 400.5, NaN, '401' as unknown as number]) {
      assert.throws(
        () => buildErrorResponse(status, 'x'),
        (err: unknown) =>
          err instanceof RangeError && (err as RangeError & { code?: string }).code === 'WS_ERR_INVALID_STATUS',
      );
    }
    assert.throws(() => buildErrorResponse(401, 5 as unknown as string), TypeError);
  });
});
