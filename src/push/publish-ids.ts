/**
 * The publish ids one topic remembers (OutgoingMessage.dedup), for MemoryBroker: each id with
 * the seq it was published as, until it expires (`ttlMs` after it was remembered), and at most
 * `size` of them, oldest first out. A Map finds an id; a queue in arrival order (the same
 * records) says which is oldest.
 *
 * Not a Map alone, iterated from its start to find the oldest: V8 leaves a hole where an entry
 * was deleted until the table is next rebuilt, and iteration steps over every hole, so with
 * 10,000 ids and one deleted per publish each lookup of the oldest walked thousands of holes
 * (34 us a publish, measured; about 0.2 us this way).
 */

interface RememberedId {
  id: string;
  seq: number;
  /** Until when it is remembered (Date.now() when it was remembered, plus its ttl). */
  expires: number;
}

/** Compact the queue once this many entries at its head are spent (and half of it is). */
const COMPACT_AFTER = 1024;

export class PublishIds {
  private readonly byId = new Map<string, RememberedId>();
  /** Every remembered id, oldest first, from `head` on (before it: spent, undefined). */
  private queue: Array<RememberedId | undefined> = [];
  private head = 0;

  /** The seq `id` was published as, if it is still remembered at `now` (expired ids go first). */
  get(id: string, now: number): number | undefined {
    this.prune(now, Infinity);
    const remembered = this.byId.get(id);
    // Behind an older id with a longer ttl (two channels with different ttls share a broker),
    // an expired id can still be queued: it is forgotten all the same.
    return remembered !== undefined && now <= remembered.expires ? remembered.seq : undefined;
  }

  /**
   * Remember `id` (not remembered now: `get` said so) as published as `seq` at `now`, for
   * `ttlMs`, after forgetting the expired ids and, to stay within `size`, the oldest ones.
   */
  add(id: string, seq: number, now: number, ttlMs: number, size: number): void {
    this.prune(now, size - 1);
    const remembered: RememberedId = { id, seq, expires: now + ttlMs };
    this.byId.set(id, remembered);
    this.queue.push(remembered);
  }

  /** Forget the ids expired at `now` (MemoryBroker's sweep, for topics nobody publishes to); returns `size`. */
  sweep(now: number): number {
    this.prune(now, Infinity);
    return this.byId.size;
  }

  /** Ids remembered now. */
  get size(): number {
    return this.byId.size;
  }

  /** Forget the oldest ids while they are expired or more than `keep` are left. */
  private prune(now: number, keep: number): void {
    const queue = this.queue;
    while (this.head < queue.length) {
      const oldest = queue[this.head]!;
      if (now <= oldest.expires && this.byId.size <= keep) break;
      // An expired id still queued may have been remembered again since (see get): only this
      // record's own entry goes.
      if (this.byId.get(oldest.id) === oldest) this.byId.delete(oldest.id);
      queue[this.head++] = undefined;
    }
    if (this.head >= COMPACT_AFTER && this.head * 2 >= queue.length) {
      this.queue = queue.slice(this.head);
      this.head = 0;
    }
  }
}
