/**
 * The perMessageDeflate options (src/node/deflate-options.ts): defaults filled in, every bad
 * value refused with a RangeError naming the option, by the check itself and by the server
 * and client constructors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { PER_MESSAGE_DEFLATE_DEFAULTS, checkDeflateOptions } from '../../src/node/deflate-options.js';
import { HOST } from '../helpers.js';

describe('perMessageDeflate options', () => {
  it('the defaults, stated once', () => {
    assert.deepEqual(checkDeflateOptions({}), {
      threshold: 1024,
      level: 1,
      memLevel: 8,
      maxInflatedPayload: 4 * 1024 * 1024,
      maxInflateRate: undefined, // the side's default: 32 MiB/s on a server, none on a client
      publishCompressLimit: 1024 * 1024,
    });
    assert.equal(PER_MESSAGE_DEFLATE_DEFAULTS.maxInflateRate, 32 * 1024 * 1024);
    assert.equal(PER_MESSAGE_DEFLATE_DEFAULTS.concurrencyLimit, 4);
  });

  it('the sizes and rates: whole numbers >= 0 (0 turns the limit off), anything else a RangeError', () => {
    for (const name of ['threshold', 'maxInflatedPayload', 'maxInflateRate', 'publishCompressLimit'] as const) {
      for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 60, '1024' as unknown as number]) {
        assert.throws(
          () => checkDeflateOptions({ [name]: bad }),
          (err: Error) => err instanceof RangeError && err.message.includes(`perMessageDeflate.${name}`),
          `${name}: ${String(bad)}`,
        );
      }
      assert.equal(checkDeflateOptions({ [name]: 0 })[name], 0);
      assert.equal(checkDeflateOptions({ [name]: 12345 })[name], 12345);
      assert.throws(() => new WebSocketServer({ noServer: true, perMessageDeflate: { [name]: -5 } }), RangeError);
      assert.throws(() => new WebSocket(`ws://${HOST}:1/`, [], { perMessageDeflate: { [name]: -5 } }), RangeError);
    }
  });

  it('level, memLevel and concurrencyLimit keep their ranges', () => {
    assert.throws(() => checkDeflateOptions({ level: 10 }), /perMessageDeflate\.level/);
    assert.throws(() => checkDeflateOptions({ level: -1 }), /perMessageDeflate\.level/);
    assert.throws(() => checkDeflateOptions({ memLevel: 0 }), /perMessageDeflate\.memLevel/);
    assert.throws(() => checkDeflateOptions({ concurrencyLimit: 0 }), /perMessageDeflate\.concurrencyLimit/);
    assert.throws(() => checkDeflateOptions({ concurrencyLimit: 1.5 }), /perMessageDeflate\.concurrencyLimit/);
    assert.deepEqual(checkDeflateOptions({ level: 9, memLevel: 9 }).level, 9);
  });
});
