/**
 * PublishIds (src/push/publish-ids.ts): the ids one topic of the in-memory broker remembers,
 * with an explicit clock: kept for at least the ttl, at most `size`, oldest first out, an id
 * forgotten can be remembered again, and the queue behind it stays right over many turns.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PublishIds } from '../../src/push/publish-ids.js';

const TTL = 1000;

describe('PublishIds', () => {
  it('remembers an id with its seq for at least the ttl, then forgets it', () => {
    const ids = new PublishIds();
    assert.equal(ids.get('a', 0), undefined);
    ids.add('a', 1, 0, TTL, 10);
    ids.add('b', 2, 500, TTL, 10);
    assert.equal(ids.get('a', 1000), 1, 'exactly the ttl old: still known');
    assert.equal(ids.get('a', 1001), undefined);
    assert.equal(ids.get('b', 1001), 2, 'younger ones stay');
    assert.equal(ids.size, 1);
    assert.equal(ids.get('b', 1501), undefined);
    assert.equal(ids.size, 0);
  });

  it('keeps at most `size`, forgetting the oldest first (not the smallest)', () => {
    const ids = new PublishIds();
    for (const [seq, id] of ['z', 'y', 'x'].entries()) ids.add(id, seq + 1, 0, TTL, 3);
    assert.equal(ids.size, 3);
    ids.add('w', 4, 0, TTL, 3);
    assert.deepEqual(
      ['z', 'y', 'x', 'w'].map((id) => ids.get(id, 0)),
      [undefined, 2, 3, 4],
    );
    // Forgotten, so it may be remembered again, as the newest.
    ids.add('z', 5, 0, TTL, 3);
    assert.deepEqual(
      ['z', 'y', 'x', 'w'].map((id) => ids.get(id, 0)),
      [5, undefined, 3, 4],
    );
  });

  it('a clock that went backwards forgets nothing early', () => {
    const ids = new PublishIds();
    ids.add('a', 1, 5000, TTL, 10);
    assert.equal(ids.get('a', 4000), 1);
  });

  it('stays right over many turns of its queue (compaction), with either bound in force', () => {
    const ids = new PublishIds();
    // By size: 10,000 ids through a window of 100.
    for (let i = 0; i < 10_000; i++) ids.add(`s${i}`, i + 1, 0, TTL, 100);
    assert.equal(ids.size, 100);
    assert.equal(ids.get('s9899', 0), undefined);
    assert.equal(ids.get('s9900', 0), 9901);
    assert.equal(ids.get('s9999', 0), 10_000);
    // By time: one id a millisecond, a ttl of 1000: about a thousand known at any time.
    const timed = new PublishIds();
    for (let t = 0; t < 5000; t++) timed.add(`t${t}`, t + 1, t, TTL, 1_000_000);
    assert.equal(timed.size, 1001);
    assert.equal(timed.get('t3998', 4999), undefined);
    assert.equal(timed.get('t3999', 4999), 4000);
    assert.equal(timed.get('t4999', 4999), 5000);
  });

  it('sweep forgets the expired ids without a publish, and says how many are left', () => {
    const ids = new PublishIds();
    ids.add('a', 1, 0, TTL, 10);
    ids.add('b', 2, 600, TTL, 10);
    assert.equal(ids.sweep(1000), 2);
    assert.equal(ids.sweep(1001), 1);
    assert.equal(ids.sweep(1601), 0);
    assert.equal(ids.size, 0);
  });

  it('ids with different ttls (two channels on one broker): each is forgotten after its own', () => {
    const ids = new PublishIds();
    ids.add('long', 1, 0, 10 * TTL, 10);
    ids.add('short', 2, 0, TTL, 10);
    // Queued behind a longer-lived id, the short one is forgotten all the same.
    assert.equal(ids.get('short', 1001), undefined);
    // Remembered again: the stale record behind it, once it reaches the head, takes nothing with it.
    ids.add('short', 3, 1001, TTL, 10);
    assert.equal(ids.get('short', 2001), 3);
    assert.equal(ids.get('short', 2002), undefined);
    assert.equal(ids.get('long', 10_000), 1);
    // Held no longer than the longest ttl before it.
    assert.equal(ids.sweep(10_001), 0);
  });
});
