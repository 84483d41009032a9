/**
 * TopicHistory: the ring buffer of recent messages, its TTL pruning, and after(): exactly
 * the messages after a sequence number, or undefined when the history cannot tell.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TopicHistory, type HistoryEntry } from '../../src/push/history.js';

function entry(seq: number, time = 0): HistoryEntry {
  return { seq, payload: Buffer.from(`m${seq}`), binary: false, time };
}

function seqs(entries: HistoryEntry[] | undefined): number[] | undefined {
  return entries?.map((e) => e.seq);
}

/** A history of `size` holding seq 1..n (time 0, no TTL). */
function filled(size: number, n: number): TopicHistory {
  const h = new TopicHistory({ size });
  for (let seq = 1; seq <= n; seq++) h.add(entry(seq));
  return h;
}

describe('TopicHistory', () => {
  it('rejects a size below 1 or not a number', () => {
    for (const size of [0, -1, 0.5, Number.NaN]) {
      assert.throws(() => new TopicHistory({ size }), RangeError, `size ${size}`);
    }
  });

  it('rounds a fractional size down', () => {
    const h = filled(2.9, 5);
    assert.equal(h.size, 2);
    assert.deepEqual(seqs(h.after(3, 5, 0)), [4, 5]);
  });

  it('keeps entries in order until full', () => {
    const h = filled(4, 3);
    assert.equal(h.size, 3);
    assert.deepEqual(seqs(h.after(0, 3, 0)), [1, 2, 3]);
    const all = h.after(0, 3, 0)!;
    assert.equal(all[0].payload.toString(), 'm1', 'payloads are the ones added');
  });

  it('wraps around, keeping only the newest `size` entries, oldest first', () => {
    const h = filled(3, 3);
    for (let seq = 4; seq <= 10; seq++) {
      h.add(entry(seq));
      assert.equal(h.size, 3);
      assert.deepEqual(seqs(h.after(seq - 3, seq, 0)), [seq - 2, seq - 1, seq], `after adding ${seq}`);
    }
  });

  it('a history of size 1 holds just the last entry', () => {
    const h = filled(1, 5);
    assert.equal(h.size, 1);
    assert.deepEqual(seqs(h.after(4, 5, 0)), [5]);
    assert.equal(h.after(3, 5, 0), undefined);
  });

  describe('after(since, lastSeq)', () => {
    // size 3 after 5 messages: holds 3, 4, 5.
    const h = filled(3, 5);

    it('since == lastSeq: nothing missed', () => {
      assert.deepEqual(h.after(5, 5, 0), []);
    });

    it('since inside the history: exactly the later entries', () => {
      assert.deepEqual(seqs(h.after(4, 5, 0)), [5]);
      assert.deepEqual(seqs(h.after(3, 5, 0)), [4, 5]);
    });

    it('since == oldest - 1 (boundary): everything kept', () => {
      assert.deepEqual(seqs(h.after(2, 5, 0)), [3, 4, 5]);
    });

    it('since == oldest - 2 (one message lost): undefined', () => {
      assert.equal(h.after(1, 5, 0), undefined);
      assert.equal(h.after(0, 5, 0), undefined);
    });

    it('since ahead of lastSeq: undefined', () => {
      assert.equal(h.after(6, 5, 0), undefined);
      assert.equal(h.after(100, 5, 0), undefined);
    });
  });

  it('empty history: nothing to recover unless nothing was missed', () => {
    const h = new TopicHistory({ size: 3 });
    assert.deepEqual(h.after(0, 0, 0), []);
    assert.equal(h.after(0, 1, 0), undefined);
  });

  describe('ttl', () => {
    it('prune drops entries older than ttl, keeping one exactly ttl old', () => {
      const h = new TopicHistory({ size: 10, ttl: 100 });
      h.add(entry(1, 1000));
      h.add(entry(2, 1050));
      h.add(entry(3, 1100));
      h.prune(1150); // ages 150, 100, 50
      assert.equal(h.size, 2, 'age 150 dropped, age 100 (== ttl) kept');
      assert.deepEqual(seqs(h.after(1, 3, 1150)), [2, 3]);
      h.prune(1151);
      assert.equal(h.size, 1);
      h.prune(1201);
      assert.equal(h.size, 0);
    });

    it('after() prunes first: a gap that aged out is not recoverable', () => {
      const h = new TopicHistory({ size: 10, ttl: 100 });
      h.add(entry(1, 0));
      h.add(entry(2, 50));
      h.add(entry(3, 200));
      // At 220: 1 (age 220) and 2 (age 170) are gone, 3 kept.
      assert.equal(h.after(0, 3, 220), undefined, 'seq 1 is lost');
      assert.equal(h.after(1, 3, 220), undefined, 'seq 2 is lost');
      assert.deepEqual(seqs(h.after(2, 3, 220)), [3]);
      assert.deepEqual(h.after(3, 3, 220), []);
      // Everything aged out: only "nothing missed" is answerable.
      assert.equal(h.after(2, 3, 1000), undefined);
      assert.deepEqual(h.after(3, 3, 1000), []);
      assert.equal(h.size, 0);
    });

    it('ttl 0 (or absent) means no age limit', () => {
      const h = new TopicHistory({ size: 5, ttl: 0 });
      h.add(entry(1, 0));
      h.prune(1e12);
      assert.equal(h.size, 1);
      assert.deepEqual(seqs(h.after(0, 1, 1e12)), [1]);
    });

    it('prune and wrap together keep the ring consistent', () => {
      const h = new TopicHistory({ size: 3, ttl: 100 });
      // Times grow by 40 per message; the ring wraps several times while pruning.
      for (let seq = 1; seq <= 20; seq++) {
        const now = seq * 40;
        h.add(entry(seq, now));
        h.prune(now);
        // Kept: seqs with age <= 100, i.e. seq*40 >= now-100 -> the last 3 (ages 0, 40, 80).
        const expected = [seq - 2, seq - 1, seq].filter((s) => s >= 1);
        assert.deepEqual(seqs(h.after(Math.max(0, seq - 3), seq, now)), expected, `at seq ${seq}`);
      }
      // Later: only the newest survives.
      assert.deepEqual(seqs(h.after(19, 20, 20 * 40 + 70)), [20]); // seq 19 is 110 old
      assert.equal(h.size, 1);
    });
  });
});
