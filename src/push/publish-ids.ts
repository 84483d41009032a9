/**
 * The publish ids one topic remembers (OutgoingMessage.dedup), for MemoryBroker: each id with
 * the seq it was published as, for at least `ttlMs`, and at most `size` of them, oldest first
 * out. A Map finds an id; a queue in arrival order (the same records) says which is oldest.
 *
 * Not a Map alone, iterated from its start to find the oldest: V8 leaves a hole where an entry
 * was deleted until the table is next rebuilt, and iteration steps over every hole, so with
 * 10,000 ids and one deleted per publish each lookup of the oldest walked thousands of holes
 * (34 us a publish, measured; about 0.2 us this way).
 */

interface RememberedId {
  id: string;
  seq: number;
  /** When it was remembered (Date.now()). */
  at: number;
}

/** Compact the queue once this many entries at its head are spent (and half of it is). */
const COMPACT_AFTER = 1024;

export class PublishIds {
  private readonly byId = new Map<string, RememberedId>();
  /** Every remembered id, oldest first, from `head` on (before it: spent, undefined). */
  private queue: Array<RememberedId | undefined> = [];
  private head = 0;

  /** The seq `id` was published as, if it is still remembered at `now` (ids older than `ttlMs` go first). */
  get(id: string, now: number, ttlMs: number): number | undefined {
    this.prune(now, ttlMs, Infinity);
    return this.byId.get(id)?.seq;
  }

  /**
   * Remember `id` (not remembered now: `get` said so) as published as `seq` at `now`, after
   * forgetting the ids older than `ttlMs` and, to stay within `size`, the oldest ones.
   */
  add(id: string, seq: number, now: number, ttlMs: number, size: number): void {
    this.prune(now, ttlMs, size - 1);
    const remembered: RememberedId = { id, seq, at: now };
    this.byId.set(id, remembered);
    this.queue.push(remembered);
  }

  /** Ids remembered now. */
  get size(): number {
    return this.byId.size;
  }

  /** Forget the oldest ids while they are older than `ttlMs` or more than `keep` are left. */
  private prune(now: number, ttlMs: number, keep: number): void {
    const queue = this.queue;
    while (this.head < queue.length) {
      const oldest = queue[this.head]!;
      if (now - oldest.at <= ttlMs && this.byId.size <= keep) break;
      // An id is queued once at a time (a remembered id is never added again), so this is its entry.
      this.byId.delete(oldest.id);
      queue[this.head++] = undefined;
    }
    if (this.head >= COMPACT_AFTER && this.head * 2 >= queue.length) {
      this.queue = queue.slice(this.head);
      this.head = 0;
    }
  }
}
