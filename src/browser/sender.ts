/**
 * Everything a DuetClient sends, through one pacer, in this order of priority: the heartbeat's
 * ping, control messages (hello, unsubscribe, a subscribe after a gap), the paced subscribes
 * of a new connection, then the queue (raw messages and publishes, in the order they were
 * made). Nothing goes while the socket keeps unsent bytes (a stalled network), and each
 * publish message and ping counts against the pacer until its answer (see pacer.ts). Publishes carry an id and stay queued until the server acknowledges them; after a
 * reconnect they go out again with the same id when the server still remembers ids from the
 * connection they went out on (the same `dedupScope`), so each is published once.
 *
 * Why one file of ~590 lines: the lanes, the pacer's timer, batching and the publishes' life
 * (ack, refusal, resend or outcome unknown, the answers the pacer waits for) all decide,
 * together, what the next message on the wire is; split apart, each part would need the
 * others' state. What stands alone has its own file (pacer, send-queue, ids, limits).
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
  /** Bytes the current socket holds, not yet handed to the network (its `bufferedAmount`). */
  buffered(): number;
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
/**
 * A publish sent before is sent again only within this share of `dedupMs` from its first
 * sending: the server's memory of its id runs from when it published it, but the resend
 * still has to cross the network, and a late one would be published a second time.
 */
const DEDUP_SHARE = 0.9;
/**
 * How long the socket may hold unsent bytes before the client stops writing, and how often it
 * looks again: bytes still there after this long mean a network that stopped taking them, and
 * what is written now would reach the server in one burst when it recovers.
 */
const BUFFER_CHECK_MS = 50;
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
  /** Publish messages of this connection not answered yet: message number -> entries not answered. */
  private readonly frames = new Map<number, number>();
  private frameCount = 0;
  /** The heartbeat's ping was written and not answered yet. */
  private pingOut = false;
  /** Since when the socket has held unsent bytes (-1: it held none when last looked at). */
  private bufferedSince = -1;

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

  /**
   * A publish with an id; the promise settles with its ack (see DuetClient.publish).
   * `stopped`: why the client will not connect again until open() (close(), giving up): the
   * promise rejects at once, as nothing would send it.
   */
  publish(topic: string, data: unknown, stopped: string | null = null): Promise<number> {
    const dataJson = JSON.stringify(data);
    if (typeof dataJson !== 'string') throw new TypeError('publish data must be a JSON value');
    if (stopped !== null) {
      const refused = Promise.reject(cancelled(topic, `${stopped}; call open() first`));
      refused.catch(() => {});
      return refused;
    }
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
      frame: 0,
      sent: false,
      sentBefore: false,
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

  /** The ping was answered (its pong, or refused with its id): it no longer counts against the pacer. */
  pingAnswered(): void {
    if (!this.pingOut) return;
    this.pingOut = false;
    this.pacer.answered();
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
    this.frames.clear();
    this.pingOut = false;
    this.bufferedSince = -1;
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
      this.landed(item);
      if (!all) this.queue.remove(item);
      this.settle(item, cancelled(item.topic, reason));
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
    const answered = this.landed(item);
    this.queue.remove(item);
    this.settle(item, null, seq);
    if (answered) this.pump();
  }

  /**
   * An `error` naming a publish id (or a refused entry of `acks`). Returns true when it is
   * handled here: the publish will be sent again, or it rejects as outcome unknown (reported
   * as such). False when it was refused for good (its promise rejects with the server's
   * code, for the caller to report) or the id is not one waiting here.
   *
   * `rate_limited`, and `unavailable` without `outcome`, come before anything was published:
   * sent again after `retryAfter`, whatever the server remembers. With `outcome: "unknown"`
   * (`unavailable`, `internal`) it may have been published: sent again only where a repeat is
   * answered with the first ack (the same dedupScope, within the window), else rejected.
   */
  refused(
    id: unknown,
    code: string,
    message: string,
    topic: string | undefined,
    retryAfter: unknown,
    outcome?: unknown,
  ): boolean {
    const item = typeof id === 'string' ? this.byId.get(id) : undefined;
    if (item === undefined) return false;
    const wait = retryMs(retryAfter);
    const maybe = outcome === 'unknown' && (code === 'unavailable' || code === 'internal');
    if (code === 'rate_limited' || (code === 'unavailable' && !maybe) || (maybe && this.resendable(item))) {
      this.landed(item);
      // Not published by this attempt: only an earlier one (on a lost connection) may have.
      if (!maybe) item.sent = item.sentBefore;
      if (code === 'rate_limited') this.pacer.pause(wait);
      else this.holdUntil = Math.max(this.holdUntil, this.clock.now() + wait);
      this.pump();
      return true;
    }
    if (maybe) {
      this.unknown(item, `${message} (${code}), and ${this.whyNot(item, this.limits ?? null)}`);
      return true;
    }
    const answered = this.landed(item);
    this.queue.remove(item);
    this.settle(item, new DuetError(code, message, topic));
    if (answered) this.pump();
    return false;
  }

  /**
   * A `rate_limited` refusal without an id: a hello, subscribe, unsubscribe, raw message or a
   * whole `batch` (a `ping`'s names its id: `ping` true). Pause for `retryAfter`; unless it
   * was the ping, send the publishes of batches still unanswered again: the refused one was
   * not published, and a repeat of one that was is harmless (batches go out only where the
   * server remembers ids, and it answers a repeat with the original ack).
   */
  rateLimited(retryAfter: unknown, ping = false): void {
    this.pacer.pause(retryMs(retryAfter));
    if (!ping)
      for (const item of this.queue.all())
        if (item.kind === 'publish' && item.batched && this.dedup(item)) this.landed(item);
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
        const stalled = this.stalled();
        if (stalled > 0) return this.wake(stalled);
        if (!this.pacer.take()) {
          const wait = this.pacer.wait();
          // -1: every token is out with a message not answered yet; an answer pumps again.
          if (wait >= 0) this.wake(wait);
          return;
        }
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
        this.pacer.sent();
        this.pingOut = true;
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
      if (item.sent && !this.resendable(item)) {
        this.unknown(item, this.whyNot(item, limits));
        continue;
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
      const frame = ++this.frameCount;
      this.frames.set(frame, batch.length);
      this.pacer.sent();
      for (const entry of batch) {
        entry.frame = frame;
        entry.inFlight = true;
        entry.batched = batch.length > 1;
        entry.scope = limits.dedupScope;
        if (!entry.sent) entry.firstSentAt = now;
        entry.sentBefore = entry.sent;
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

  /**
   * Waiting publishes from `index` on that fit one `batch` (up to maxBatch, within
   * maxMessageBytes), in order. Only where the server remembers ids: a `rate_limited` of a
   * batch names no id, and only there is sending a batch again harmless whichever message
   * that refusal was about. Elsewhere each publish goes alone, and its refusal names it.
   */
  private pack(index: number, limits: ServerLimits): PublishItem[] {
    const all = this.queue.all();
    const first = all[index] as PublishItem;
    const batch = [first];
    if (limits.maxBatch < 2 || limits.dedupMs <= 0 || limits.dedupScope === undefined) return batch;
    const max = limits.maxMessageBytes > 0 ? limits.maxMessageBytes : Infinity;
    let bytes = BATCH_HEAD.length + first.bytes + BATCH_TAIL.length;
    for (let i = index + 1; i < all.length && batch.length < limits.maxBatch; i++) {
      const item = all[i];
      if (item.inFlight) continue;
      if (item.kind === 'raw') break; // it goes after the publishes before it
      if (item.sent && !this.resendable(item)) break; // rejected when its turn comes
      if (bytes + 1 + item.bytes > max) break;
      bytes += 1 + item.bytes;
      batch.push(item);
    }
    return batch;
  }

  /**
   * A new connection's limits (or their absence) decide what happens to publishes that went
   * out before and were not acknowledged: sent again with the same id when this server still
   * remembers ids from the connection they went out on (checked again as each goes out),
   * else rejected as outcome unknown (they may have been published; a resend might publish
   * them twice).
   */
  private checkResends(limits: ServerLimits | null): void {
    for (const item of [...this.queue.all()]) {
      if (item.kind !== 'publish' || !item.sent || this.resendable(item)) continue;
      this.unknown(item, this.whyNot(item, limits));
    }
  }

  /** The current connection's server remembers the ids of the connection `item` last went out on. */
  private dedup(item: PublishItem): boolean {
    const limits = this.limits;
    return !!limits && limits.dedupMs > 0 && limits.dedupScope !== undefined && limits.dedupScope === item.scope;
  }

  /** `item` went out before, and sending it again now cannot publish it twice. */
  private resendable(item: PublishItem): boolean {
    return this.dedup(item) && this.clock.now() - item.firstSentAt < this.limits!.dedupMs * DEDUP_SHARE;
  }

  private whyNot(item: PublishItem, limits: ServerLimits | null): string {
    return limits === null
      ? 'this server does not acknowledge publishes'
      : this.dedup(item)
        ? `it first went out ${Math.round(this.clock.now() - item.firstSentAt)} ms ago, too long for the server's memory of ids (dedupMs ${limits.dedupMs})`
        : 'the server no longer remembers the ids of the connection it went out on (a restart, another process, or no dedup)';
  }

  /**
   * `item`, written on this connection, got its answer (or will not: sent again, given up).
   * Returns true when that was the last entry of its message waiting for one: the message
   * is answered and no longer counts against the pacer.
   */
  private landed(item: PublishItem): boolean {
    if (!item.inFlight) return false;
    item.inFlight = false;
    const left = (this.frames.get(item.frame) ?? 1) - 1;
    if (left > 0) {
      this.frames.set(item.frame, left);
      return false;
    }
    this.frames.delete(item.frame);
    this.pacer.answered();
    return true;
  }

  /**
   * ms to wait before writing: the socket has held unsent bytes for BUFFER_CHECK_MS (as far
   * as seen), so the network is not taking them. 0: write. When it drains, the pacer starts
   * from an empty bucket: what sat in the buffers reaches the server late, and together.
   */
  private stalled(): number {
    const now = this.clock.now();
    if (this.host.buffered() <= 0) {
      if (this.bufferedSince >= 0 && now - this.bufferedSince >= BUFFER_CHECK_MS) this.pacer.pause(0);
      this.bufferedSince = -1;
      return 0;
    }
    if (this.bufferedSince < 0) this.bufferedSince = now;
    return now - this.bufferedSince >= BUFFER_CHECK_MS ? BUFFER_CHECK_MS : 0;
  }

  /** Reject a publish that may have been published: out of the queue, not sent again. */
  private unknown(item: PublishItem, why: string): void {
    this.landed(item);
    this.queue.remove(item);
    const err = new DuetError(
      'WS_ERR_OUTCOME_UNKNOWN',
      `publish to "${item.topic}" was sent but not acknowledged, and is not sent again: ${why}; it may or may not have been published`,
      item.topic,
    );
    this.settle(item, err);
    this.host.error(err);
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

function cancelled(topic: string, reason: string): DuetError {
  return new DuetError('WS_ERR_PUBLISH_CANCELLED', `publish to "${topic}" cancelled: ${reason}`, topic);
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
