/**
 * backoff.ts on its own: the cap min(maxDelay, minDelay * factor^attempt) for other factors
 * than the client's default, the overflow to Infinity, minDelay 0, and the full jitter
 * floor(random() * cap) with a random function the test controls. client.test.ts pins the
 * default schedule (500 .. 30000, factor 2) and the client waiting those delays.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { backoffCap, backoffDelay, type BackoffOptions } from '../../src/browser/backoff.js';

const caps = (options: BackoffOptions, attempts: number[]): number[] => attempts.map((a) => backoffCap(a, options));

describe('backoffCap', () => {
  it('attempt 0 is minDelay; each attempt multiplies by factor until maxDelay', () => {
    assert.deepEqual(caps({ minDelay: 100, maxDelay: 1000, factor: 3 }, [0, 1, 2, 3, 4]), [100, 300, 900, 1000, 1000]);
  });

  it('a fractional factor grows by that fraction (not rounded)', () => {
    assert.deepEqual(caps({ minDelay: 100, maxDelay: 1000, factor: 1.5 }, [0, 1, 2, 3]), [100, 150, 225, 337.5]);
  });

  it('factor 1 keeps every cap at minDelay', () => {
    assert.deepEqual(caps({ minDelay: 250, maxDelay: 30_000, factor: 1 }, [0, 1, 10, 1000]), [250, 250, 250, 250]);
  });

  it('the cap reaches maxDelay exactly, never more, at the attempt where the product passes it', () => {
    const options = { minDelay: 500, maxDelay: 4000, factor: 2 };
    assert.deepEqual(caps(options, [2, 3, 4]), [2000, 4000, 4000]);
  });

  it('maxDelay below minDelay wins from the first attempt', () => {
    assert.deepEqual(caps({ minDelay: 5000, maxDelay: 1000, factor: 2 }, [0, 1, 5]), [1000, 1000, 1000]);
  });

  it('factor^attempt overflowing to Infinity gives maxDelay, not Infinity or NaN', () => {
    const options = { minDelay: 500, maxDelay: 30_000, factor: 2 };
    assert.equal(2 ** 1100, Infinity, 'the premise: the power overflows');
    assert.equal(backoffCap(1100, options), 30_000);
    assert.equal(backoffCap(Number.MAX_SAFE_INTEGER, options), 30_000);
    assert.equal(backoffCap(3, { minDelay: 500, maxDelay: 30_000, factor: Number.MAX_VALUE }), 30_000);
  });

  it('minDelay 0 (or below) turns backoff off: every cap is 0, whatever maxDelay and factor', () => {
    assert.deepEqual(caps({ minDelay: 0, maxDelay: 30_000, factor: 2 }, [0, 1, 50, 2000]), [0, 0, 0, 0]);
    assert.equal(backoffCap(4, { minDelay: -10, maxDelay: 30_000, factor: 2 }), 0);
  });
});

describe('backoffDelay', () => {
  const options = { minDelay: 100, maxDelay: 10_000, factor: 2 };

  it('is random() times the cap, rounded down', () => {
    assert.equal(
      backoffDelay(2, options, () => 0.5),
      200,
    );
    assert.equal(
      backoffDelay(2, options, () => 0.123),
      49, // 0.123 * 400 = 49.2
    );
    assert.equal(
      backoffDelay(0, { minDelay: 3, maxDelay: 10, factor: 2 }, () => 0.5),
      1, // 1.5 rounded down
    );
  });

  it('spans [0, cap): random 0 gives 0, the largest random below 1 gives cap - 1', () => {
    assert.equal(
      backoffDelay(3, options, () => 0),
      0,
    );
    const belowOne = 1 - Number.EPSILON / 2;
    assert.equal(
      backoffDelay(3, options, () => belowOne),
      799,
    );
    assert.equal(
      backoffDelay(20, options, () => belowOne),
      9999,
      'capped by maxDelay',
    );
  });

  it('asks random() exactly once per delay', () => {
    let calls = 0;
    const random = (): number => {
      calls++;
      return 0.25;
    };
    assert.equal(backoffDelay(1, options, random), 50);
    assert.equal(calls, 1);
  });

  it('is 0 when the cap is 0, even with random near 1', () => {
    assert.equal(
      backoffDelay(7, { minDelay: 0, maxDelay: 10_000, factor: 2 }, () => 0.99),
      0,
    );
  });

  it('after an overflow the jitter still spans the whole maxDelay window', () => {
    assert.equal(
      backoffDelay(5000, options, () => 0.5),
      5000,
    );
  });
});
