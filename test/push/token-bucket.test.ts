/**
 * The token bucket the channel keeps per connection (message rate, recovery bytes): refills in
 * proportion to the time passed, never above capacity, nothing for a clock that went back;
 * waitFor says how long until a wanted amount is there.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { refilled, waitFor, type BucketRate } from '../../src/push/token-bucket.js';

const RATE: BucketRate = { capacity: 20, perMs: 1000 }; // 20 per second

describe('token bucket', () => {
  it('refills capacity per perMs, in proportion to the time passed', () => {
    assert.equal(refilled(0, 1000, 1000, RATE), 0, 'no time, no tokens');
    assert.equal(refilled(0, 1000, 1050, RATE), 1, '50 ms is one token at 20 a second');
    assert.equal(refilled(5, 1000, 1500, RATE), 15);
    assert.equal(refilled(0.5, 0, 25, RATE), 1, 'fractions are kept');
  });

  it('never holds more than its capacity', () => {
    assert.equal(refilled(19, 0, 10_000, RATE), 20);
    assert.equal(refilled(20, 0, 1, RATE), 20);
  });

  it('a clock that went backwards refills nothing (and takes nothing)', () => {
    assert.equal(refilled(7, 5000, 4000, RATE), 7);
  });

  it('waitFor: 0 when enough is there, else the milliseconds until it is, rounded up', () => {
    assert.equal(waitFor(5, 5, RATE), 0);
    assert.equal(waitFor(6, 5, RATE), 0);
    assert.equal(waitFor(4, 5, RATE), 50);
    assert.equal(waitFor(0, 1.5, RATE), 75);
    assert.equal(waitFor(0, 1, { capacity: 3, perMs: 1000 }), 334, 'rounded up, never early');
    // A refill after that wait holds what was wanted.
    assert.ok(refilled(0, 0, waitFor(0, 1, { capacity: 3, perMs: 1000 }), { capacity: 3, perMs: 1000 }) >= 1);
  });
});
