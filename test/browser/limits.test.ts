/**
 * The server's `limits` message as the client reads it (readLimits), and utf8Length, which
 * measures messages against `maxMessageBytes` exactly as the server counts them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readLimits, utf8Length } from '../../src/browser/limits.js';

describe('readLimits', () => {
  it('reads the fields; anything malformed counts as no limit / no dedup', () => {
    assert.deepEqual(
      readLimits({
        rate: { messages: 20, perMs: 1000 },
        maxMessageBytes: 16384,
        maxBatch: 50,
        dedupMs: 120000,
        dedupScope: 'r8',
      }),
      {
        rate: { messages: 20, perMs: 1000 },
        maxMessageBytes: 16384,
        maxBatch: 50,
        dedupMs: 120000,
        dedupScope: 'r8',
      },
    );
    assert.deepEqual(readLimits({ rate: null, maxBatch: 2.7, dedupMs: -1, maxMessageBytes: 'x', dedupScope: 1 }), {
      rate: null,
      maxMessageBytes: 0,
      maxBatch: 2,
      dedupMs: 0,
      dedupScope: undefined,
    });
    assert.equal(readLimits({ rate: { messages: 0, perMs: 1000 } }).rate, null);
    assert.equal(readLimits({ rate: { messages: 5 } }).rate, null);
  });
});

describe('utf8Length', () => {
  it('counts what Buffer.byteLength counts: ASCII, 2-, 3- and 4-byte characters, lone surrogates as U+FFFD', () => {
    for (const text of [
      '',
      'abc',
      'é',
      'héllo',
      '€',
      '日本語',
      '😀',
      'a😀b',
      '\ud800',
      '\udc00x',
      'x\ud800',
      '\ud800\ud800',
    ]) {
      assert.equal(utf8Length(text), Buffer.byteLength(text), JSON.stringify(text));
    }
  });
});
