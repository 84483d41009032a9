/**
 * Everything a DuetClient sends, through one pacer, in this order of priority: the heartbeat's
 * ping, control messages (hello, unsubscribe, a subscribe after a gap), the paced subscribes
 * of a new connection, then the queue (raw messages and publishes, in the order they were
 * made). Publishes carry an id and stay queued until the server acknowledges them; after a
 * reconnect they go out again with the same id when the server still remembers ids from the
 * connection they went out on (the same `dedupScope`), so each is published once.
 *
 * Why one file of ~450 lines: the lanes, the pacer's timer, batching and the publishes' life
 * (ack, refusal, resend or outcome unknown) all decide, together, what the next message on the
 * wire is; split apart, each part would need the others' state. What stands alone has its own
 * file (pacer, send-queue, ids, limits).
 */
import { DuetError } from './errors.js';
import { PublishIds } from './ids.js';
import { utf8Length, type ServerLimits } from './limits.js';
import { Pacer } from './pacer.js';
import { SendQueue, type PublishItem, type QueueItem, type RawItem } from './send-queue.js';
import type { DuetClock, QueuePolicy, SendData } from './types.js';

/** What the sender needs from its client. */
export interface SenderHost {
  /** The current socket is open and may take a message. */
  writable(): boolean;
  write(data: SendData): void;
  /** Channel mode: the next waiting subscribe's text (marking it sent), or undefined. */
  nextSubscribe(): string | undefined;
  /** Channel mode: whether a subscribe waits. */
  subscribesWaiting(): boolean;
  /** A publish failed in a way the app should hear about even when it ignores the promise. */
  error(err: Error): void;
  /** The number of unacknowledged publishes changed. */
  pending(count: number): void;
}

export interface SenderOptions {
  channel: boolean;
  queueLimit: number;
  queuePolicy: QueuePolicy;
  flushBurst: number;
  flushInterval: number;
}

/** When a `rate_limited` or `unavailable` refusal carries no usable `retryAfter`. */
const DEFAULT_RETRY_MS = 1000;
/** `{"type":"publish",` + the entry without its `{`. */
const PUBLISH_HEAD = '{"type":"publish",';
const BATCH_HEAD = '{"type":"batch","publishes":[';
const BATCH_TAIL = ']}';

export class Sender {
  private readonly clock: DuetClock;
  private readonly options: SenderOptions;
  private readonly host: SenderHost;
  private readonly pacer: Pacer;
  private readonly queue: SendQueue;
  private readonly byId = new Map<string, PublishItem>();
  private readonly ids = new PublishIds();
  private ping: string | null = null;
  private control: string[] = [];
  /** undefined: this connection's `limits` has not arrived; null: the server sends none (no acks). */
  private limits: ServerLimits | null | undefined = undefined;
  /** Publishes wait until then (`unavailable`: the server's broker is away). */
  private holdUntil = 0;
  private timer: unknown = null;
  private pumping = false;

  constructor(clock: DuetClock, options: SenderOptions, host: SenderHost) {
    this.clock = clock;
    this.options = options;
    this.host = host;
    this.pacer = new Pacer(clock);
    this.queue = new SendQueue(options.queueLimit, options.queuePolicy);
  }

  /** Items not yet written on the current connection (raw messages and publishes). */
  get queued(): number {
    return this.queue.waiting;
  }

  /** Publishes not acknowledged yet. */
  get pending(): number {
    return this.byId.size;
  }

  get dropped(): number {
    return this.queue.dropped;
  }

  /** Whether this connection's `limits` (or the sign that the server sends none) arrived. */
  get limitsKnown(): boolean {
    return this.limits !== undefined;
  }

  /** The server's limits on this connection; undefined before they arrive or when it sends none. */
  get serverLimits(): ServerLimits | undefined {
    return this.limits ?? undefined;
  }

  // ---- what the client sends ----

  /** A raw message. Plain mode writes it at once when nothing waits (no limit is known there). */
  send(data: SendData): void {
    if (!this.options.channel && this.host.writable() && this.queue.waiting === 0) {
      this.host.write(data);
      return;
    }
    const item: RawItem = { kind: 'raw', data, inFlight: false };
    this.drop(this.queue.push(item));
    this.pump();
  }

  /** A publish with an id; the promise settles with its ack (see DuetClient.publish). */
  publish(topic: string, data: unknown): Promise<number> {
    const dataJson = JSON.stringify(data);
    if (typeof dataJson !== 'string') throw new TypeError('publish data must be a JSON value');
    const id = this.ids.next();
    const entry = `{"topic":${JSON.stringify(topic)},"data":${dataJson},"id":${JSON.stringify(id)}}`;
    let settle!: PublishItem['settle'];
    const promise = new Promise<number>((resolve, reject) => {
      settle = (error, seq) => (error ? reject(error) : resolve(seq!));
    });
    // The app may ignore the promise: its rejection must not be reported as unhandled.
    promise.catch(() => {});
    const item: PublishItem = {
      kind: 'publish',
      id,
      topic,
      entry,
      bytes: utf8Length(entry),
      inFlight: false,
      batched: false,
      sent: false,
      scope: undefined,
      firstSentAt: 0,
      settle,
    };
    const dropped = this.queue.push(item);
    this.byId.set(id, item);
    this.drop(dropped);
    this.host.pending(this.byId.size);
    this.pump();
    return promise;
  }

  /** The heartbeat's ping: first in line. */
  sendPing(text: string): void {
    this.ping = text;
    this.pump();
  }

  /** A control message (hello, unsubscribe, a subscribe after a gap): before subscribes and the queue. */
  sendControl(text: string): void {
    this.control.push(text);
    this.pump();
  }

  // ---- the connection ----

  /** A connection opened: a full bucket at the default pace, and everything waits to be (re)sent. */
  opened(): void {
    this.limits = undefined;
    this.holdUntil = 0;
    this.pacer.reset(this.options.flushBurst, this.options.flushInterval);
  }

  /** The connection ended: nothing is on the wire any more; what was sent but not acknowledged waits again. */
  lost(): void {
    this.stopTimer();
    this.ping = null;
    this.control = [];
    this.limits = undefined;
    for (const item of this.queue.all()) item.inFlight = false;
  }

  /** The server's `limits` arrived (the first message of a connection). */
  announce(limits: ServerLimits): void {
    if (this.limits !== undefined) return;
    this.limits = limits;
    this.pacer.announce(limits.rate);
    this.checkResends(limits);
    this.pump();
  }

  /** The first message of a connection is not `limits`: the server acknowledges nothing. */
  noLimits(): void {
    if (this.limits !== undefined) return;
    this.limits = null;
    this.checkResends(null);
    this.pump();
  }

  /** End every publish (close(), clearQueue(), giving up); raw messages stay unless `all`. */
  cancel(reason: string, all: boolean): void {
    const items = all ? this.queue.clear() : this.queue.all().filter((item) => item.kind === 'publish');
    for (const item of items) {
      if (item.kind !== 'publish') continue;
      if (!all) this.queue.remove(item);
      this.settle(item, new DuetError('WS_ERR_PUBLISH_CANCELLED', `publish to "${item.topic}" cancelled: ${reason}`));
    }
  }

  /** Stop the pacing timer (the client closed); what waits stays. */
  stop(): void {
    this.stopTimer();
  }

  // ---- answers ----

  /** An `ack` (or an entry of `acks` without a code). */
  ack(id: unknown, seq: unknown): void {
    const item = typeof id === 'string' ? this.byId.get(id) : undefined;
    if (item === undefined || typeof seq !== 'number') return;
    this.queue.remove(item);
    this.settle(item, null, seq);
  }

  /**
   * An `error` naming a publish id (or a refused entry of `acks`). Returns true when the
   * publish will be sent again (`rate_limited`, `unavailable`), false when it was refused
   * for good (its promise rejects) or the id is not one waiting here.
   */
  refused(id: unknown, code: string, message: string, topic: string | undefined, retryAfter: unknown): boolean {
    const item = typeof id === 'string' ? this.byId.get(id) : undefined;
    if (item === undefined) return false;
    const wait = retryMs(retryAfter);
    if (code === 'rate_limited' || code === 'unavailable') {
      item.inFlight = false;
      if (code === 'rate_limited') this.pacer.pause(wait);
      else this.holdUntil = Math.max(this.holdUntil, this.clock.now() + wait);
      this.pump();
      return true;
    }
    this.queue.remove(item);
    this.settle(item, new DuetError(code, message, topic));
    return false;
  }

  /**
   * A `rate_limited` refusal without an id: a ping, hello, subscribe or a whole `batch`. Pause
   * for `retryAfter`, and send the publishes of batches still unanswered again (their ids
   * make a repeat harmless: the server answers it with the original ack).
   */
  rateLimited(retryAfter: unknown): void {
    this.pacer.pause(retryMs(retryAfter));
    for (const item of this.queue.all()) if (item.kind === 'publish' && item.batched) item.inFlight = false;
    this.pump();
  }

  /** Send what the pacer allows now, and set a timer for the rest. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.stopTimer();
      while (this.host.writable()) {
        const next = this.next();
        if (next === 'none') return;
        if (typeof next === 'number') return this.wake(next);
        if (!this.pacer.take()) return this.wake(this.pacer.wait());
        this.write(next);
      }
    } finally {
      this.pumping = false;
    }
  }

  // ---- inside ----

  /** Which lane sends next: 'none', ms until the queue may send, or the lane. */
  private next(): 'ping' | 'control' | 'subscribe' | 'queue' | 'none' | number {
    if (this.ping !== null) return 'ping';
    if (this.control.length > 0) return 'control';
    if (this.options.channel && this.host.subscribesWaiting()) return 'subscribe';
    const first = this.queue.firstWaiting();
    if (first === undefined) return 'none';
    if (first[0].kind === 'raw') return 'queue';
    if (this.limits === undefined) return 'none'; // publishes wait for the server's limits
    const held = this.holdUntil - this.clock.now();
    return held > 0 ? held : 'queue';
  }

  private write(lane: 'ping' | 'control' | 'subscribe' | 'queue'): void {
    switch (lane) {
      case 'ping':
        this.host.write(this.ping!);
        this.ping = null;
        return;
      case 'control':
        this.host.write(this.control.shift()!);
        return;
      case 'subscribe': {
        const text = this.host.nextSubscribe();
        if (text !== undefined) this.host.write(text);
        return;
      }
      case 'queue':
        this.writeQueued();
    }
  }

  /** The oldest waiting raw message, or as many waiting publishes as one message can carry. */
  private writeQueued(): void {
    for (;;) {
      const first = this.queue.firstWaiting();
      if (first === undefined) return;
      const [item, index] = first;
      if (item.kind === 'raw') {
        this.queue.remove(item);
        this.host.write(item.data);
        return;
      }
      const limits = this.limits;
      if (limits === null || limits === undefined) {
        // The server acknowledges nothing: the publish goes out as before ids existed, and
        // nobody can say whether it was published.
        this.queue.remove(item);
        this.host.write(PUBLISH_HEAD + withoutId(item));
        this.settle(
          item,
          new DuetError(
            'WS_ERR_OUTCOME_UNKNOWN',
            `publish to "${item.topic}" sent, but this server does not acknowledge publishes (it announced no limits)`,
          ),
        );
        return;
      }
      if (limits.maxMessageBytes > 0 && item.bytes + PUBLISH_HEAD.length - 1 > limits.maxMessageBytes) {
        this.queue.remove(item);
        this.settle(
          item,
          new DuetError(
            'WS_ERR_PUBLISH_TOO_BIG',
            `publish to "${item.topic}" is ${item.bytes + PUBLISH_HEAD.length - 1} bytes, over the server's maxMessageBytes (${limits.maxMessageBytes})`,
          ),
        );
        continue;
      }
      const batch = this.pack(index, limits);
      const now = this.clock.now();
      for (const entry of batch) {
        entry.inFlight = true;
        entry.batched = batch.length > 1;
        entry.scope = limits.dedupScope;
        if (!entry.sent) entry.firstSentAt = now;
        entry.sent = true;
      }
      this.host.write(
        batch.length === 1
          ? PUBLISH_HEAD + item.entry.slice(1)
          : BATCH_HEAD + batch.map((entry) => entry.entry).join(',') + BATCH_TAIL,
      );
      return;
    }
  }

  /** Waiting publishes from `index` on that fit one `batch` (up to maxBatch, within maxMessageBytes), in order. */
  private pack(index: number, limits: ServerLimits): PublishItem[] {
    const all = this.queue.all();
    const first = all[index] as PublishItem;
    const batch = [first];
    if (limits.maxBatch < 2) return batch;
    const max = limits.maxMessageBytes > 0 ? limits.maxMessageBytes : Infinity;
    let bytes = BATCH_HEAD.length + first.bytes + BATCH_TAIL.length;
    for (let i = index + 1; i < all.length && batch.length < limits.maxBatch; i++) {
      const item = all[i];
      if (item.inFlight) continue;
      if (item.kind === 'raw') break; // it goes after the publishes before it
      if (bytes + 1 + item.bytes > max) break;
      bytes += 1 + item.bytes;
      batch.push(item);
    }
    return batch;
  }

  /**
   * A new connection's limits (or their absence) decide what happens to publishes that went
   * out before and were not acknowledged: sent again with the same id when this server still
   * remembers ids from the connection they went out on, else rejected as outcome unknown
   * (they may have been published; a resend might publish them twice).
   */
  private checkResends(limits: ServerLimits | null): void {
    const now = this.clock.now();
    for (const item of [...this.queue.all()]) {
      if (item.kind !== 'publish' || !item.sent) continue;
      if (
        limits !== null &&
        limits.dedupMs > 0 &&
        item.scope !== undefined &&
        limits.dedupScope === item.scope &&
        now - item.firstSentAt < limits.dedupMs
      )
        continue;
      this.queue.remove(item);
      const why =
        limits === null
          ? 'this server does not acknowledge publishes'
          : limits.dedupMs > 0 && limits.dedupScope === item.scope
            ? `it went out ${Math.round(now - item.firstSentAt)} ms ago, longer than the server remembers ids (${limits.dedupMs} ms)`
            : 'the server no longer remembers the ids of the connection it went out on (a restart, or another process)';
      const err = new DuetError(
        'WS_ERR_OUTCOME_UNKNOWN',
        `publish to "${item.topic}" was sent but not acknowledged, and is not sent again: ${why}; it may or may not have been published`,
        item.topic,
      );
      this.settle(item, err);
      this.host.error(err);
    }
  }

  private settle(item: PublishItem, error: Error | null, seq?: number): void {
    if (!this.byId.delete(item.id)) return;
    item.settle(error, seq);
    this.host.pending(this.byId.size);
  }

  private drop(item: QueueItem | undefined): void {
    if (item === undefined || item.kind !== 'publish') return;
    this.settle(
      item,
      new DuetError(
        'WS_ERR_PUBLISH_DROPPED',
        `publish to "${item.topic}" dropped: the queue is full (queueLimit ${this.options.queueLimit}, queuePolicy '${this.options.queuePolicy}')`,
      ),
    );
  }

  private wake(ms: number): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.pump();
    }, ms);
  }

  private stopTimer(): void {
    if (this.timer === null) return;
    this.clock.clearTimeout(this.timer);
    this.timer = null;
  }
}

function retryMs(retryAfter: unknown): number {
  return typeof retryAfter === 'number' && Number.isFinite(retryAfter) && retryAfter >= 0
    ? retryAfter
    : DEFAULT_RETRY_MS;
}

/** The publish entry without its id (for a server that knows no ids: it would refuse one). */
function withoutId(item: PublishItem): string {
  return item.entry.slice(1, item.entry.lastIndexOf(',"id":')) + '}';
}
