/**
 * cli/explain.ts in process: close-code meanings, and the advice `duet connect` prints when
 * a URL's scheme does not match the server (wss:// to a plain server, ws:// to a TLS one),
 * with the TLS probe against real servers on 127.0.0.1. connect.test.ts runs the same end
 * to end through the built CLI.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as https from 'node:https';
import * as net from 'node:net';
import { closeCodeMeaning, displayUrl, explainFailure, speaksTls } from '../../src/cli/explain.js';
import { HOST } from '../helpers.js';
import { selfSignedCert } from '../tls-helpers.js';

describe('closeCodeMeaning', () => {
  it('every registered code has its words', () => {
    const expected: Array<[number, string]> = [
      [1000, 'normal closure'],
      [1001, 'going away'],
      [1002, 'protocol error'],
      [1003, 'unsupported data'],
      [1005, 'no status code'],
      [1006, 'connection lost without a close frame'],
      [1007, 'invalid payload data'],
      [1008, 'policy violation'],
      [1009, 'message too big'],
      [1010, 'missing extension'],
      [1011, 'internal error'],
      [1012, 'service restart'],
      [1013, 'try again later'],
      [1014, 'bad gateway'],
      [1015, 'TLS handshake failed'],
    ];
    for (const [code, words] of expected) assert.equal(closeCodeMeaning(code), words, String(code));
  });

  it('3000-3999 libraries, 4000-4999 applications, anything else unknown', () => {
    assert.equal(closeCodeMeaning(3000), 'library or framework code');
    assert.equal(closeCodeMeaning(3999), 'library or framework code');
    assert.equal(closeCodeMeaning(4000), 'application code');
    assert.equal(closeCodeMeaning(4999), 'application code');
    for (const code of [0, 999, 1004, 1016, 2999, 5000]) assert.equal(closeCodeMeaning(code), 'unknown code');
  });
});

/** An error as the client reports it: a code, a message, the system's error as cause. */
function failure(code: string, message: string, cause?: Error): Error & { code: string } {
  return Object.assign(new Error(message, cause ? { cause } : {}), { code });
}

describe('explainFailure', () => {
  const never = (): Promise<boolean> => Promise.reject(new Error('must not probe'));

  it('wss:// answered in plain text (OpenSSL: wrong version number): use ws://, with the same host and path', async () => {
    const err = failure(
      'EPROTO',
      'Could not connect to 127.0.0.1:9: write EPROTO ...:ssl3_get_record:wrong version number:...',
    );
    assert.equal(
      await explainFailure(err, 'wss://127.0.0.1:9/echo?x=1', never),
      '127.0.0.1:9 answered in plain text, not TLS: it is a ws:// server, not wss://; try ws://127.0.0.1:9/echo?x=1',
    );
    // https: is wss: (the client maps it), and the OpenSSL text may be in the cause only.
    const inCause = failure('EPROTO', 'TLS error with h:1', new Error('packet length too long'));
    assert.match(await explainFailure(inCause, 'https://h:1/', never), /not wss:\/\/; try ws:\/\/h:1\/$/);
  });

  it('ws:// cut off by a server that speaks TLS: use wss://', async () => {
    const err = failure('ECONNRESET', 'Connection reset by 127.0.0.1:9 during the handshake');
    const asked: Array<[string, number]> = [];
    const probe = (host: string, port: number): Promise<boolean> => {
      asked.push([host, port]);
      return Promise.resolve(true);
    };
    assert.equal(
      await explainFailure(err, 'ws://127.0.0.1:9/chat', probe),
      '127.0.0.1:9 speaks TLS: it is a wss:// server, not ws://; try wss://127.0.0.1:9/chat',
    );
    // The default port of ws:// (80), an IPv6 host without brackets, http: as ws:.
    await explainFailure(err, 'http://[::1]/', probe);
    assert.deepEqual(asked, [
      ['127.0.0.1', 9],
      ['::1', 80],
    ]);
  });

  it('a reset by a server that does not speak TLS either: the message as it is', async () => {
    const err = failure('ECONNRESET', 'Connection reset by h:9 during the handshake');
    assert.equal(await explainFailure(err, 'ws://h:9/', () => Promise.resolve(false)), err.message);
  });

  it('other failures: the message as it is (a timeout says how to wait longer); no error: "connection failed"', async () => {
    const refused = failure('ECONNREFUSED', 'Connection refused by h:9');
    assert.equal(await explainFailure(refused, 'ws://h:9/', never), 'Connection refused by h:9');
    assert.equal(await explainFailure(refused, 'wss://h:9/', never), 'Connection refused by h:9');
    assert.equal(await explainFailure(refused, 'not a url', never), 'Connection refused by h:9');
    const slow = failure('WS_ERR_HANDSHAKE_TIMEOUT', 'Opening handshake timed out after 500 ms');
    assert.equal(
      await explainFailure(slow, 'ws://h:9/', never),
      'Opening handshake timed out after 500 ms (--handshake-timeout MS waits longer)',
    );
    assert.equal(await explainFailure(undefined, 'ws://h:9/', never), 'connection failed');
  });
});

describe('displayUrl', () => {
  it('leaves credentials out of a URL that is printed; other URLs and non-URLs as they are', async () => {
    assert.equal(displayUrl('ws://ada:s3cret@h:9/chat?x=1'), 'ws://h:9/chat?x=1');
    assert.equal(displayUrl(new URL('wss://token@h/')), 'wss://h/');
    assert.equal(displayUrl('ws://h:9/'), 'ws://h:9/');
    assert.equal(displayUrl('not a url'), 'not a url');
    // The wrong-scheme advice builds the other URL from the one given: no credentials in it either.
    const err = failure('EPROTO', 'Could not connect: wrong version number');
    const advice = await explainFailure(err, 'wss://ada:s3cret@127.0.0.1:9/echo', () => Promise.resolve(false));
    assert.equal(
      advice,
      '127.0.0.1:9 answered in plain text, not TLS: it is a ws:// server, not wss://; try ws://127.0.0.1:9/echo',
    );
  });
});

describe('speaksTls', () => {
  it('true for a TLS server (any certificate), false for a plain one, a closed port or one that never answers', async () => {
    const { cert, key } = selfSignedCert();
    const secure = https.createServer({ cert, key });
    secure.listen(0, HOST);
    const plain = net.createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    plain.listen(0, HOST);
    const silent = net.createServer(() => {});
    silent.listen(0, HOST);
    const closed = net.createServer();
    closed.listen(0, HOST);
    await Promise.all([secure, plain, silent, closed].map((s) => once(s, 'listening')));
    const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;
    const closedPort = port(closed);
    closed.close();
    try {
      assert.equal(await speaksTls(HOST, port(secure)), true);
      assert.equal(await speaksTls(HOST, port(plain)), false);
      assert.equal(await speaksTls(HOST, closedPort), false);
      assert.equal(await speaksTls(HOST, port(silent), 200), false);
    } finally {
      secure.closeAllConnections();
      for (const s of [secure, plain, silent]) s.close();
    }
  });
});
