/**
 * Per-topic message history: a bounded ring of the latest messages, each with its sequence
 * number, so a client that reconnects can be sent exactly what it missed, or told that it
 * cannot be (the gap is older than the history, or the sequence started over: new epoch).
 */

/** How much history a topic keeps. */
export interface HistoryOptions {
  /** Most messages kept per topic. */
  size: number;
  /** Milliseconds a message is kept; 0 = no age limit. */
  ttl?: number;
}

/** One remembered message. */
export interface HistoryEntry {
  /** Its sequence number in the topic. */
  seq: number;
  /** Its bytes, as published. */
  payload: Buffer;
  /** Published as binary (else text). */
  binary: boolean;
  /** When it was published (Date.now()). */
  time: number;
}

/** What a recovery request gets. */
export interface Recovery {
  /** True when `messages` is exactly everything after `since` (possibly nothing). */
  recovered: boolean;
  /** The topic's current epoch. */
  epoch: string;
  /** The topic's last sequence number. */
  seq: number;
  /** The missed messages, oldest first (empty unless recovered). */
  messages: HistoryEntry[];
}

export class TopicHistory {
  private readonly ring: Array<HistoryEntry | undefined>;
  private start = 0;
  private length = 0;
  private readonly ttl: number;

  constructor(options: HistoryOptions) {
    if (!(options.size >= 1)) throw new RangeError('history.size must be at least 1');
    this.ring = new Array<HistoryEntry | undefined>(Math.floor(options.size));
    this.ttl = options.ttl ?? 0;
  }

  add(entry: HistoryEntry): void {
    const capacity = this.ring.length;
    if (this.length < capacity) {
      this.ring[(this.start + this.length) % capacity] = entry;
      this.length++;
    } else {
      this.ring[this.start] = entry;
      this.start = (this.start + 1) % capacity;
    }
  }

  /** Drop entries older than the TTL. */
  prune(now: number): void {
    if (this.ttl <= 0) return;
    const capacity = this.ring.length;
    while (this.length > 0 && now - this.ring[this.start]!.time > this.ttl) {
      this.ring[this.start] = undefined;
      this.start = (this.start + 1) % capacity;
      this.length--;
    }
  }

  /**
   * Entries with seq > `since`, or undefined when the history does not reach back that far
   * (`since` is before the oldest kept message's predecessor). `lastSeq` is the topic's
   * current sequence number.
   */
  after(since: number, lastSeq: number, now: number): HistoryEntry[] | undefined {
    this.prune(now);
    if (since === lastSeq) return [];
    if (since > lastSeq || this.length === 0) return undefined;
    const capacity = this.ring.length;
    const oldest = this.ring[this.start]!.seq;
    if (since < oldest - 1) return undefined;
    const out: HistoryEntry[] = [];
    for (let i = 0; i < this.length; i++) {
      const entry = this.ring[(this.start + i) % capacity]!;
      if (entry.seq > since) out.push(entry);
    }
    return out;
  }

  get size(): number {
    return this.length;
  }
}
