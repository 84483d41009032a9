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
    assert.equal(ids.get('a', 0, TTL), undefined);
    ids.add('a', 1, 0, TTL, 10);
    ids.add('b', 2, 500, TTL, 10);
    assert.equal(ids.get('a', 1000, TTL), 1, 'exactly the ttl old: still known');
    assert.equal(ids.get('a', 1001, TTL), undefined);
    assert.equal(ids.get('b', 1001, TTL), 2, 'younger ones stay');
    assert.equal(ids.size, 1);
    assert.equal(ids.get('b', 1501, TTL), undefined);
    assert.equal(ids.size, 0);
  });

  it('keeps at most `size`, forgetting the oldest first (not the smallest)', () => {
    const ids = new PublishIds();
    for (const [seq, id] of ['z', 'y', 'x'].entries()) ids.add(id, seq + 1, 0, TTL, 3);
    assert.equal(ids.size, 3);
    ids.add('w', 4, 0, TTL, 3);
    assert.deepEqual(
      ['z', 'y', 'x', 'w'].map((id) => ids.get(id, 0, TTL)),
      [undefined, 2, 3, 4],
    );
    // Forgotten, so it may be remembered again, as the newest.
    ids.add('z', 5, 0, TTL, 3);
    assert.deepEqual(
      ['z', 'y', 'x', 'w'].map((id) => ids.get(id, 0, TTL)),
      [5, undefined, 3, 4],
    );
  });

  it('a clock that went backwards forgets nothing early', () => {
    const ids = new PublishIds();
    ids.add('a', 1, 5000, TTL, 10);
    assert.equal(ids.get('a', 4000, TTL), 1);
  });

  it('stays right over many turns of its queue (compaction), with either bound in force', () => {
    const ids = new PublishIds();
    // By size: 10,000 ids through a window of 100.
    for (let i = 0; i < 10_000; i++) ids.add(`s${i}`, i + 1, 0, TTL, 100);
    assert.equal(ids.size, 100);
    assert.equal(ids.get('s9899', 0, TTL), undefined);
    assert.equal(ids.get('s9900', 0, TTL), 9901);
    assert.equal(ids.get('s9999', 0, TTL), 10_000);
    // By time: one id a millisecond, a ttl of 1000: about a thousand known at any time.
    const timed = new PublishIds();
    for (let t = 0; t < 5000; t++) timed.add(`t${t}`, t + 1, t, TTL, 1_000_000);
    assert.equal(timed.size, 1001);
    assert.equal(timed.get('t3998', 4999, TTL), undefined);
    assert.equal(timed.get('t3999', 4999, TTL), 4000);
    assert.equal(timed.get('t4999', 4999, TTL), 5000);
  });
});
