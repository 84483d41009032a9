/**
 * TopicFeeds: in-order, gap-free delivery for an asynchronous broker (Redis, the cluster's
 * primary). Messages come from the network numbered per topic; a connection that dropped and
 * came back may have lost some. For each topic this process watches, the feed remembers the
 * last (epoch, seq) it delivered and:
 * - delivers the next message in sequence at once, and skips one it already delivered;
 * - on a gap, holds what comes after it, reads the missing messages from the broker's history,
 *   delivers them first, then the held ones; when the history no longer covers the gap, it
 *   resets the topic (the Hub tells its subscribers) and goes on after it;
 * - on a message of another epoch (the log was lost: Redis flushed), resets the topic and
 *   starts over in the new epoch, filling from its history what it can;
 * - after a reconnection (`resync`), reads each topic's position and fills up to it, so
 *   messages published while the connection was down arrive even if nothing follows them.
 * Never a silent gap, never a message twice, never out of order.
 */
import type { BrokerHost, BrokerMessage, TopicPosition } from './broker.js';

/** What a feed needs from its broker's transport. */
export interface FeedSource {
  /** Start receiving `topic`'s messages; resolves once every later publish will arrive. */
  subscribe(topic: string): Promise<void>;
  /** Stop receiving `topic`. */
  unsubscribe(topic: string): void;
  /** The topic's position now. */
  position(topic: string): Promise<TopicPosition>;
  /**
   * The messages of `epoch` with `after < seq <= upTo`, oldest first, or undefined when the
   * history does not hold all of them (or the epoch is not the topic's any more).
   */
  range(topic: string, epoch: string, after: number, upTo: number): Promise<BrokerMessage[] | undefined>;
}

/** A message as it came in, with the publish it belongs to (for `exclude`). */
export interface FeedMessage extends BrokerMessage {
  /** Set by this process's own publishes: matched against `expect` to exclude the sender. */
  origin?: number | undefined;
}

interface Feed {
  /** Subscribed and positioned: messages can be delivered. */
  ready: boolean;
  epoch: string;
  seq: number;
  /** Messages received and not yet delivered, in arrival order. */
  queue: FeedMessage[];
  /** A read (position or range) is in flight: the queue waits. */
  busy: boolean;
  /** The seq a resync found: deliver (fill) up to here even if no message comes. */
  target: number;
  /** This process's publishes to the topic that exclude a local subscriber, by origin number. */
  excludes: Map<number, unknown> | undefined;
  /** Resolves when the feed is ready (the Hub waits on it before reading a recovery). */
  started: Promise<void>;
}

/** Most messages held for one topic while a gap is filled; beyond, the topic is resynced. */
const MAX_QUEUE = 10_000;
/** How long to wait before retrying a failed read. */
const RETRY_MS = 1000;

/** Counters of what the feeds did (a broker's `stats()` includes them). */
export interface FeedStats {
  /** Gaps found and filled from history. */
  gapsFilled: number;
  /** Topics reset: a gap history did not cover, or a new epoch. */
  resets: number;
}

export class TopicFeeds {
  private readonly feeds = new Map<string, Feed>();
  readonly stats: FeedStats = { gapsFilled: 0, resets: 0 };
  private closed = false;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();

  /**
   * @param quiet true for a failed read whose cause the broker has already reported (its
   *   connection is down): reads that fail meanwhile (retried every second) are not reported
   *   one by one.
   */
  constructor(
    private readonly source: FeedSource,
    private readonly host: () => BrokerHost | undefined,
    private readonly quiet: (err: unknown) => boolean = () => false,
  ) {}

  /** Topics being fed. */
  get size(): number {
    return this.feeds.size;
  }

  /** Whether `topic` is fed (this process has subscribers for it). */
  has(topic: string): boolean {
    return this.feeds.has(topic);
  }

  /** Start feeding `topic`: resolves once subscribed and positioned. */
  watch(topic: string): Promise<void> {
    const known = this.feeds.get(topic);
    if (known !== undefined) return known.started;
    const feed: Feed = {
      ready: false,
      epoch: '',
      seq: 0,
      queue: [],
      busy: true,
      target: 0,
      excludes: undefined,
      started: Promise.resolve(),
    };
    this.feeds.set(topic, feed);
    feed.started = this.start(topic, feed);
    return feed.started;
  }

  private async start(topic: string, feed: Feed): Promise<void> {
    for (;;) {
      try {
        // Subscribed first, then positioned: every message after the position arrives.
        await this.source.subscribe(topic);
        const position = await this.source.position(topic);
        if (this.feeds.get(topic) !== feed) return;
        feed.epoch = position.epoch;
        feed.seq = position.seq;
        feed.target = position.seq;
        feed.ready = true;
        feed.busy = false;
        this.drain(topic, feed);
        return;
      } catch (err) {
        if (this.feeds.get(topic) !== feed || this.closed) return;
        this.report(err);
        await this.sleep(RETRY_MS);
        if (this.feeds.get(topic) !== feed || this.closed) return;
      }
    }
  }

  /** Stop feeding `topic`. */
  unwatch(topic: string): void {
    if (!this.feeds.delete(topic)) return;
    this.source.unsubscribe(topic);
  }

  /**
   * A publish of this process to `topic` is on its way: when its message (`origin`) is
   * delivered, leave out `exclude`.
   */
  expect(topic: string, origin: number, exclude: unknown): void {
    const feed = this.feeds.get(topic);
    if (feed === undefined) return;
    (feed.excludes ??= new Map()).set(origin, exclude);
  }

  /** A message came in from the network. */
  receive(message: FeedMessage): void {
    const feed = this.feeds.get(message.topic);
    if (feed === undefined) return;
    if (feed.queue.length >= MAX_QUEUE) {
      // Held too long (reads keep failing): let go of the queue; the resync that follows a
      // working connection fills or resets from the position.
      feed.queue.length = 0;
      feed.target = Math.max(feed.target, message.epoch === feed.epoch ? message.seq : feed.target);
      return;
    }
    feed.queue.push(message);
    this.drain(message.topic, feed);
  }

  /**
   * The connection came back: read every topic's position and deliver (or reset) up to it,
   * for what was published while it was down.
   */
  resync(): void {
    for (const [topic, feed] of this.feeds) {
      if (!feed.ready) continue;
      void this.source.position(topic).then(
        (position) => {
          if (this.feeds.get(topic) !== feed) return;
          if (position.epoch !== feed.epoch) {
            // After what is held: that came before this answer (messages of the old epoch held
            // while a fill was in flight go first; put before them, they would switch back).
            feed.queue.push({ topic, payload: Buffer.alloc(0), binary: false, seq: 0, epoch: position.epoch });
            feed.target = position.seq;
          } else if (position.seq > feed.target) {
            feed.target = position.seq;
          }
          this.drain(topic, feed);
        },
        (err: unknown) => this.report(err),
      );
    }
  }

  /** Deliver what can be delivered; start a read for the first gap. */
  private drain(topic: string, feed: Feed): void {
    if (!feed.ready || feed.busy || this.closed) return;
    const host = this.host();
    while (feed.queue.length > 0) {
      const message = feed.queue[0];
      if (message.epoch !== feed.epoch) {
        // The log started over (or this is the marker a resync left): reset, then fill the
        // new epoch from its start.
        feed.queue.shift();
        feed.epoch = message.epoch;
        feed.seq = 0;
        // A marker from `resync` (seq 0) comes with its target set; a message's own gap is
        // everything before it.
        if (message.seq > 0) feed.target = message.seq - 1;
        feed.excludes = undefined;
        this.stats.resets++;
        host?.reset(topic, { epoch: feed.epoch, seq: 0 });
        if (message.seq > 0) feed.queue.unshift(message);
        continue;
      }
      if (message.seq <= feed.seq) {
        feed.queue.shift(); // delivered already (a fill got it first)
        continue;
      }
      if (message.seq === feed.seq + 1) {
        feed.queue.shift();
        this.deliver(host, feed, message);
        continue;
      }
      this.fill(topic, feed, message.seq - 1);
      return;
    }
    if (feed.target > feed.seq) this.fill(topic, feed, feed.target);
  }

  private deliver(host: BrokerHost | undefined, feed: Feed, message: FeedMessage): void {
    feed.seq = message.seq;
    let exclude: unknown;
    if (message.origin !== undefined && feed.excludes !== undefined) {
      exclude = feed.excludes.get(message.origin);
      // This process's publishes to one topic are numbered in the order it made them, so the
      // ones before this are delivered (or lost) too.
      for (const origin of feed.excludes.keys()) {
        if (origin > message.origin) break;
        feed.excludes.delete(origin);
      }
    }
    const delivered: BrokerMessage = {
      topic: message.topic,
      payload: message.payload,
      binary: message.binary,
      seq: message.seq,
      epoch: message.epoch,
    };
    if (message.compress !== undefined) delivered.compress = message.compress;
    host?.deliver(delivered, exclude);
  }

  /** Read the messages after feed.seq up to `upTo` from history, deliver them or reset. */
  private fill(topic: string, feed: Feed, upTo: number): void {
    feed.busy = true;
    const epoch = feed.epoch;
    const after = feed.seq;
    this.source.range(topic, epoch, after, upTo).then(
      (messages) => {
        if (this.feeds.get(topic) !== feed) return;
        feed.busy = false;
        if (feed.epoch !== epoch || feed.seq !== after) {
          this.drain(topic, feed);
          return;
        }
        const host = this.host();
        if (messages === undefined) {
          // Not in history any more: subscribers are told, delivery goes on after the gap.
          feed.seq = upTo;
          this.stats.resets++;
          host?.reset(topic, { epoch, seq: upTo });
        } else {
          this.stats.gapsFilled++;
          for (const message of messages) if (message.seq > feed.seq) this.deliver(host, feed, message);
          // A history shorter than asked for (trimmed as it was read): the rest is a reset.
          if (feed.seq < upTo) {
            feed.seq = upTo;
            this.stats.resets++;
            host?.reset(topic, { epoch, seq: upTo });
          }
        }
        this.drain(topic, feed);
      },
      async (err: unknown) => {
        this.report(err);
        await this.sleep(RETRY_MS);
        if (this.feeds.get(topic) !== feed) return;
        feed.busy = false;
        this.drain(topic, feed);
      },
    );
  }

  private report(err: unknown): void {
    if (this.closed || this.quiet(err)) return;
    this.host()?.error(err instanceof Error ? err : new Error(String(err)));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      timer.unref?.();
      this.timers.add(timer);
    });
  }

  /** Stop: no more reads, retries or deliveries. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.feeds.clear();
  }
}
