/**
 * ClusterBroker: one topic space for the workers of a node:cluster application, without
 * Redis. The primary process holds every topic's log (cluster-primary.ts: a MemoryBroker
 * there) and each worker's ClusterBroker talks to it over the worker's IPC channel: publish,
 * recover, position, watch and lease are requests with ids, answered by the primary; the
 * messages of the topics a worker watches come back from the primary and go through a
 * TopicFeeds (topic-feed.ts), so order, duplicates and gaps are handled exactly as with Redis.
 *
 * The wire: every message either way is `{ duet: 'broker', broker: n, items: [...] }`, the
 * items of one event-loop turn together (one IPC message per turn instead of one per item: 5x
 * less CPU at 32-byte payloads). `broker` numbers the ClusterBrokers of one worker process (two
 * servers in one worker have one each, and their requests and topics stay apart). Anything
 * without the tag is the application's own and left alone.
 * Payloads travel as base64 strings over a JSON channel (Node's default), or as bytes when
 * the channel uses `serialization: 'advanced'`; the receiver takes either, so the application
 * chooses nothing. Measured end to end (Node 20, three workers; the table in docs/push.md):
 * the two are even at 100-byte payloads; advanced carries 1.4x the messages at 1 KiB and
 * 2-3x at 4-16 KiB, where base64 and JSON cost the primary's CPU. Both pass a 16 MiB payload
 * intact (checked by hash).
 *
 * Over ~400 lines: besides the worker's broker, this file holds the wire format both sides
 * share (the item types, payload encoding, the checks of what arrives), which the primary
 * (cluster-primary.ts) imports; a file of its own for it would take ~90 lines from here.
 */
import { createError, type DuetError } from '../protocol/errors.js';
import type {
  AsynchronousBroker,
  BrokerHost,
  BrokerMessage,
  OutgoingMessage,
  PublishDedup,
  PublishResult,
  TopicPosition,
} from './broker.js';
import type { HistoryEntry, HistoryOptions, Recovery } from './history.js';
import { TopicFeeds, type FeedMessage } from './topic-feed.js';

/** The tag of duet's IPC messages (`{ duet: 'broker', items }`). @internal */
export const CLUSTER_TAG = 'broker';

/** A payload on the wire: base64 text (JSON channel) or bytes (advanced serialization). @internal */
export type WirePayload = string | Uint8Array;

/** What a worker sends the primary. Items with an `id` are answered by a `reply` with it. @internal */
export type WorkerItem =
  | { op: 'hello'; id: number; raw: boolean }
  | { op: 'history'; topic?: string; history: HistoryOptions | false }
  | {
      op: 'publish';
      id: number;
      topic: string;
      /** The bytes; or `text`, a string payload as it was given. */
      payload?: WirePayload;
      text?: string;
      tail?: string;
      binary: boolean;
      compress?: boolean;
      /** Set when the publish excludes a local subscriber (TopicFeeds.expect). */
      origin?: number;
      /** The publish id the primary remembers (OutgoingMessage.dedup). */
      dedup?: PublishDedup;
    }
  | { op: 'position'; id: number; topic: string }
  | { op: 'read'; id: number; topic: string; since: number; epoch: string; upTo: number }
  | { op: 'watch'; id: number; topic: string }
  | { op: 'unwatch'; topic: string }
  | { op: 'lease'; id: number; name: string; ttl: number }
  | { op: 'bye' };

/** `value` is a publish id to remember (OutgoingMessage.dedup), else undefined. @internal */
export function asDedup(value: unknown): PublishDedup | undefined {
  const v = asRecord(value);
  if (v === undefined) return undefined;
  const { id, ttlMs, size } = v;
  return typeof id === 'string' && id.length > 0 && typeof ttlMs === 'number' && ttlMs > 0 && isCount(size) && size >= 1
    ? { id, ttlMs, size }
    : undefined;
}

/** What the primary sends a worker. @internal */
export type PrimaryItem =
  | { op: 'reply'; id: number; value?: unknown; error?: string }
  | {
      op: 'message';
      topic: string;
      payload: WirePayload;
      binary: boolean;
      compress?: boolean;
      seq: number;
      epoch: string;
      /** Only to the worker that published it, and only when it asked (see `origin` above). */
      origin?: number;
    }
  | { op: 'resync' };

/** A recovery read on the wire (the reply to `read`). @internal */
export interface WireRecovery {
  epoch: string;
  seq: number;
  recovered: boolean;
  messages: Array<{ seq: number; payload: WirePayload; binary: boolean; time: number }>;
}

/** `message` is one of duet's broker messages (else it is the application's own). @internal */
export function isClusterMessage(message: unknown): message is { duet: string; broker: unknown; items: unknown } {
  return typeof message === 'object' && message !== null && (message as { duet?: unknown }).duet === CLUSTER_TAG;
}

/** The payload as its channel carries it best (see the file's comment). @internal */
export function encodePayload(bytes: Buffer, raw: boolean): WirePayload {
  return raw ? bytes : bytes.toString('base64');
}

/** The payload's bytes, or undefined when it is neither form. @internal */
export function decodePayload(value: unknown): Buffer | undefined {
  if (typeof value === 'string') return Buffer.from(value, 'base64');
  // Node's advanced channel gives a Buffer; any other Uint8Array is wrapped, not copied.
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return undefined;
}

/** A plain object (a wire item), else undefined. @internal */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** A sequence number (or id): a safe integer >= 0. @internal */
export function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** The IPC channel a ClusterBroker talks over: `process` in a cluster worker. @internal */
export interface ClusterChannel {
  readonly connected?: boolean;
  /** 'advanced' when the channel carries bytes (a stand-in's; `process` has it in its env). */
  readonly serialization?: string;
  send?: (
    message: unknown,
    sendHandle: undefined,
    options: undefined,
    callback: (err: Error | null) => void,
  ) => boolean;
  on(event: 'message' | 'disconnect', listener: (message: unknown) => void): unknown;
  off(event: 'message' | 'disconnect', listener: (message: unknown) => void): unknown;
}

/** Options of a ClusterBroker. */
export interface ClusterBrokerOptions {
  /** History for every topic (off by default; the server's `history` option sets it too). */
  history?: HistoryOptions | false;
  /**
   * Most requests (publishes and reads) waiting for the primary at once (default 10,000);
   * beyond, publish fails with WS_ERR_BROKER_BACKLOG (and a read too): a primary that cannot
   * keep up makes publishers fail instead of growing this process's memory.
   */
  maxPendingPublishes?: number;
  /**
   * Milliseconds a request may wait for the primary's answer before it fails with
   * WS_ERR_BROKER_UNAVAILABLE (default 5000, as RedisBroker's `commandTimeout`). A publish
   * that timed out may still be published if the primary was only slow.
   */
  requestTimeout?: number;
  /** @internal The IPC channel (default `process`); tests pass a stand-in. */
  channel?: ClusterChannel;
}

/** What a ClusterBroker counts; see `stats()`. */
export interface ClusterBrokerStats {
  /** Publishes the primary numbered. */
  published: number;
  /** Publishes that failed (not published). */
  failed: number;
  /** Requests (publishes, reads, watches, leases) waiting for the primary now. */
  pending: number;
  /** Messages received from the primary for this process's topics. */
  received: number;
  /** Broker messages from the primary that could not be read, skipped. */
  malformed: number;
  /** Gaps filled from history (the primary dropped messages for this worker while it lagged). */
  gapsFilled: number;
  /** Topics reset: a gap older than the history. */
  resets: number;
  /** Topics this process watches. */
  topics: number;
}

/** ClusterBrokers made in this process. */
let brokersMade = 0;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** The reply's value checked, or undefined when malformed. */
  parse(value: unknown): unknown;
  deadline: number;
}

type Request = WorkerItem extends infer I ? (I extends { id: number } ? Omit<I, 'id'> : never) : never;

const isPosition = (value: unknown): TopicPosition | undefined => {
  const v = asRecord(value);
  return v && typeof v.epoch === 'string' && isCount(v.seq) ? { epoch: v.epoch, seq: v.seq } : undefined;
};

/**
 * The broker of a node:cluster worker: `new WebSocketServer({ broker: new ClusterBroker() })`
 * in every worker, and `serveClusterBroker()` in the primary before it forks them. Topics,
 * their numbering and history are shared by every worker through the primary (docs/push.md).
 */
export class ClusterBroker implements AsynchronousBroker {
  readonly synchronous = false;
  private host: BrokerHost | undefined;
  private readonly channel: ClusterChannel;
  /** This channel carries bytes (advanced serialization), else payloads go as base64. */
  private readonly raw: boolean;
  private readonly maxPending: number;
  private readonly timeout: number;
  private readonly feeds: TopicFeeds;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private originCounter = 0;
  private outbox: WorkerItem[] = [];
  private flushing: ReturnType<typeof setImmediate> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly counters = { published: 0, failed: 0, received: 0, malformed: 0 };
  /**
   * This broker's number among the ClusterBrokers of its process (`broker` in its IPC
   * messages), so that two servers in one worker, each with its broker, stay apart.
   */
  readonly id = ++brokersMade;
  private closed = false;
  private disconnected = false;
  /** The primary's dedup scope, from its answer to hello. */
  private scope: string | undefined;
  private readonly hello: Promise<void>;

  /**
   * Throws WS_ERR_BROKER_UNAVAILABLE when this process has no IPC channel (it is not a
   * cluster worker). Says hello to the primary; a primary that does not answer within
   * `requestTimeout` (no `serveClusterBroker()` there) is reported on the server's `error`.
   */
  constructor(options: ClusterBrokerOptions = {}) {
    this.channel = options.channel ?? process;
    if (typeof this.channel.send !== 'function' || this.channel.connected === false) {
      throw createError(
        'WS_ERR_BROKER_UNAVAILABLE',
        'ClusterBroker runs in a node:cluster worker: this process has no IPC channel to a primary',
      );
    }
    this.maxPending = options.maxPendingPublishes ?? 10_000;
    this.timeout = options.requestTimeout ?? 5000;
    if (!(this.maxPending >= 1)) throw new RangeError('maxPendingPublishes must be at least 1');
    if (!(this.timeout > 0)) throw new RangeError('requestTimeout must be positive');
    // Node tells a forked child how its channel serializes in this variable.
    const mode =
      options.channel === undefined ? process.env.NODE_CHANNEL_SERIALIZATION_MODE : options.channel.serialization;
    this.raw = mode === 'advanced';
    this.feeds = new TopicFeeds(
      {
        subscribe: (topic) => this.request({ op: 'watch', topic }, isTrue).then(() => {}),
        unsubscribe: (topic) => this.send({ op: 'unwatch', topic }),
        position: (topic) => this.position(topic),
        range: (topic, epoch, after, upTo) => this.range(topic, epoch, after, upTo),
      },
      () => this.host,
    );
    this.channel.on('message', this.onMessage);
    this.channel.on('disconnect', this.onDisconnect);
    this.hello = this.request({ op: 'hello', raw: this.raw }, isString).then(
      (scope) => {
        this.scope = scope;
      },
      (err: Error) => {
        const failed = unavailable(
          'the cluster primary did not say hello (is serveClusterBroker() called there?)',
          err,
        );
        this.report(failed);
        throw failed;
      },
    );
    this.hello.catch(() => undefined); // reported above; ready() hands it to whoever waits
    if (options.history !== undefined) this.setDefaultHistory(options.history);
  }

  /**
   * Resolves once the primary answered this worker's hello (and its dedup scope is known);
   * rejects with WS_ERR_BROKER_UNAVAILABLE when it did not within `requestTimeout`. Await it
   * before serving, so the channel protocol's first `limits` already names the scope.
   */
  ready(): Promise<void> {
    return this.hello;
  }

  /**
   * The primary's memory of publish ids (its MemoryBroker's scope): the same in every worker,
   * new when the primary restarts. Undefined until the primary answered (see `ready`).
   */
  dedupScope(): string | undefined {
    return this.scope;
  }

  /** Called once, by the Hub that uses this broker. */
  attach(host: BrokerHost): void {
    this.host = host;
  }

  /** The history of topics not configured one by one, for the whole cluster (the server's `history`). */
  setDefaultHistory(history: HistoryOptions | false): void {
    this.send({ op: 'history', history });
  }

  /** The history one topic keeps, for every worker (configure every worker the same). */
  configureTopic(topic: string, history: HistoryOptions | false): void {
    this.send({ op: 'history', topic, history });
  }

  /** This worker has a first subscriber of `topic`: resolves once the primary sends its messages here. */
  watch(topic: string): Promise<void> {
    return this.feeds.watch(topic);
  }

  /** This worker has no subscriber of `topic` left. */
  unwatch(topic: string): void {
    this.feeds.unwatch(topic);
  }

  /** Topics this worker watches. */
  topicCount(): number {
    return this.feeds.size;
  }

  /**
   * Have the primary number the message, keep it in history and send it to every worker that
   * watches its topic (here without `exclude`). Resolves with its position (the first one's,
   * with `duplicate`, for a publish id the primary remembers); rejects with
   * WS_ERR_BROKER_BACKLOG or WS_ERR_BROKER_UNAVAILABLE when it was not published.
   */
  async publish(message: OutgoingMessage, exclude?: unknown): Promise<PublishResult> {
    const item: Request & { op: 'publish' } = { op: 'publish', topic: message.topic, binary: message.binary };
    if (typeof message.payload === 'string') item.text = message.payload;
    else item.payload = encodePayload(message.payload, this.raw);
    if (message.tail !== undefined) item.tail = message.tail;
    if (message.compress !== undefined) item.compress = message.compress;
    if (message.dedup !== undefined) {
      const { id, ttlMs, size } = message.dedup;
      item.dedup = { id, ttlMs, size };
    }
    if (exclude !== undefined && this.feeds.has(message.topic)) {
      item.origin = ++this.originCounter;
      this.feeds.expect(message.topic, item.origin, exclude);
    }
    try {
      const result = await this.request(item, isPublishResult);
      if (result.duplicate !== true) this.counters.published++;
      return result;
    } catch (err) {
      this.counters.failed++;
      throw err;
    }
  }

  /** The topic's epoch and last sequence number, from the primary. */
  position(topic: string): Promise<TopicPosition> {
    return this.request({ op: 'position', topic }, isPosition);
  }

  /** Exactly the messages after (`epoch`, `since`) from the primary's history, or `recovered: false`. */
  async recover(topic: string, since: number, epoch: string): Promise<Recovery> {
    if (!Number.isSafeInteger(since) || since < 0) {
      return { ...(await this.position(topic)), recovered: false, messages: [] };
    }
    return this.read(topic, since, epoch, 0);
  }

  private async range(topic: string, epoch: string, after: number, upTo: number): Promise<BrokerMessage[] | undefined> {
    const read = await this.read(topic, after, epoch, upTo);
    if (!read.recovered || read.epoch !== epoch) return undefined;
    return read.messages.map((m) => ({ topic, payload: m.payload, binary: m.binary, seq: m.seq, epoch }));
  }

  /** The messages of `epoch` after `since` (up to `upTo`; 0: all), as the primary's history has them. */
  private read(topic: string, since: number, epoch: string, upTo: number): Promise<Recovery> {
    return this.request({ op: 'read', topic, since, epoch, upTo }, parseRecovery);
  }

  /**
   * Hold a lease named `name` for `ttlMs` (take it when free or expired, renew it when this
   * worker holds it): resolves true while this worker holds it. One worker of the cluster runs
   * a job (a ticker) by calling this more often than `ttlMs`; a worker that exits loses its
   * leases at once, so another takes over at its next call.
   */
  lease(name: string, ttlMs: number): Promise<boolean> {
    if (!(ttlMs > 0 && Number.isFinite(ttlMs))) return Promise.reject(new RangeError('ttlMs must be positive'));
    return this.request({ op: 'lease', name, ttl: Math.ceil(ttlMs) }, isBoolean);
  }

  /** Counters (see ClusterBrokerStats). */
  stats(): ClusterBrokerStats {
    return {
      ...this.counters,
      pending: this.pending.size,
      ...this.feeds.stats,
      topics: this.feeds.size,
    };
  }

  /**
   * Stop: the primary forgets this worker's topics and leases, requests still waiting fail
   * with WS_ERR_BROKER_UNAVAILABLE, and the IPC listeners are removed.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.feeds.close();
    if (!this.disconnected) {
      this.outbox.push({ op: 'bye' });
      this.flush();
    }
    this.failAll(unavailable('the cluster broker is closed'));
    if (this.flushing !== undefined) clearImmediate(this.flushing);
    this.channel.off('message', this.onMessage);
    this.channel.off('disconnect', this.onDisconnect);
  }

  // ---- the wire --------------------------------------------------------------------------------

  private request<T>(item: Request, parse: (value: unknown) => T | undefined): Promise<T> {
    if (this.closed || this.disconnected) {
      return Promise.reject(unavailable(this.closed ? 'the cluster broker is closed' : 'the IPC channel is closed'));
    }
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(
        createError(
          'WS_ERR_BROKER_BACKLOG',
          `${this.pending.size} requests already wait for the cluster primary (maxPendingPublishes): not sent`,
        ),
      );
    }
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, {
        resolve,
        reject,
        parse,
        deadline: Date.now() + this.timeout,
      });
      this.send({ ...item, id });
      this.timer ??= this.arm();
    });
  }

  /** Queue an item; the items of one event-loop turn leave as one IPC message. */
  private send(item: WorkerItem): void {
    if (this.closed || this.disconnected) return;
    this.outbox.push(item);
    this.flushing ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = undefined;
    if (this.outbox.length === 0 || this.channel.connected === false) return;
    const items = this.outbox;
    this.outbox = [];
    // With a callback, a send on a channel that just closed does not throw an 'error' event
    // at the process: 'disconnect' follows, and fails what waits.
    this.channel.send!({ duet: CLUSTER_TAG, broker: this.id, items }, undefined, undefined, ignore);
  }

  /** One timer for every request: fails those past their deadline, then waits for the next. */
  private arm(): ReturnType<typeof setTimeout> | undefined {
    const first = this.pending.values().next();
    if (first.done === true) return undefined;
    const timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = Date.now();
        for (const [id, p] of this.pending) {
          if (p.deadline > now) break; // in id order, and so in deadline order
          this.settle(id, p, unavailable(`no answer from the cluster primary within ${this.timeout} ms`));
        }
        this.timer = this.arm();
      },
      Math.max(0, first.value.deadline - Date.now()),
    );
    return timer; // not unref'd: a request waiting keeps the process up, for requestTimeout at most
  }

  private settle(id: number, p: Pending, result: { value: unknown } | Error): void {
    this.pending.delete(id);
    if (result instanceof Error) p.reject(result);
    else p.resolve(result.value);
  }

  private failAll(err: DuetError): void {
    for (const [id, p] of this.pending) this.settle(id, p, err);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readonly onMessage = (message: unknown): void => {
    // The application's own, or for another ClusterBroker of this process.
    if (!isClusterMessage(message) || message.broker !== this.id) return;
    if (!Array.isArray(message.items)) {
      this.malformed('a broker message without items');
      return;
    }
    for (const item of message.items as unknown[]) this.receive(item);
  };

  private receive(value: unknown): void {
    const item = asRecord(value);
    if (item?.op === 'message') {
      const payload = decodePayload(item.payload);
      const { topic, seq, epoch, binary, compress, origin } = item;
      if (
        payload === undefined ||
        typeof topic !== 'string' ||
        !isCount(seq) ||
        seq < 1 ||
        typeof epoch !== 'string' ||
        epoch === '' ||
        typeof binary !== 'boolean' ||
        (compress !== undefined && typeof compress !== 'boolean') ||
        (origin !== undefined && !isCount(origin))
      ) {
        this.malformed('a malformed message from the primary');
        return;
      }
      const message: FeedMessage = { topic, payload, binary, seq, epoch, origin };
      if (compress !== undefined) message.compress = compress;
      this.counters.received++;
      this.feeds.receive(message);
    } else if (item?.op === 'reply' && isCount(item.id)) {
      const p = this.pending.get(item.id);
      if (p === undefined) return; // timed out meanwhile
      if (typeof item.error === 'string') {
        this.settle(item.id, p, unavailable(`the cluster primary refused: ${item.error}`));
        return;
      }
      const parsed = p.parse(item.value);
      if (parsed === undefined) {
        this.counters.malformed++;
        this.settle(item.id, p, createError('WS_ERR_BROKER_MESSAGE', 'a malformed reply from the cluster primary'));
      } else {
        this.settle(item.id, p, { value: parsed });
      }
    } else if (item?.op === 'resync') {
      // The primary dropped messages for this worker while it lagged: catch up from history.
      this.feeds.resync();
    } else {
      this.malformed('an unknown item from the primary');
    }
  }

  private malformed(what: string): void {
    this.counters.malformed++;
    this.report(createError('WS_ERR_BROKER_MESSAGE', `${what}: skipped`));
  }

  /** The channel closed (it closes once; close() removes this listener first). */
  private readonly onDisconnect = (): void => {
    this.disconnected = true;
    const err = unavailable('the IPC channel to the cluster primary closed');
    this.feeds.close();
    this.failAll(err);
    this.report(err);
  };

  private report(err: Error): void {
    if (!this.closed) this.host?.error(err);
  }
}

function parseRecovery(value: unknown): Recovery | undefined {
  const v = asRecord(value);
  const at = isPosition(v);
  if (v === undefined || at === undefined || typeof v.recovered !== 'boolean' || !Array.isArray(v.messages)) {
    return undefined;
  }
  const messages: HistoryEntry[] = [];
  for (const raw of v.messages as unknown[]) {
    const m = asRecord(raw);
    const payload = decodePayload(m?.payload);
    if (
      m === undefined ||
      payload === undefined ||
      !isCount(m.seq) ||
      typeof m.binary !== 'boolean' ||
      !isCount(m.time)
    ) {
      return undefined;
    }
    messages.push({ seq: m.seq, payload, binary: m.binary, time: m.time });
  }
  return { ...at, recovered: v.recovered, messages };
}

const isTrue = (value: unknown): true | undefined => (value === true ? value : undefined);
const isString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const isPublishResult = (value: unknown): PublishResult | undefined => {
  const position = isPosition(value);
  if (position === undefined) return undefined;
  return (value as { duplicate?: unknown }).duplicate === true ? { ...position, duplicate: true } : position;
};
const isBoolean = (value: unknown): boolean | undefined => (typeof value === 'boolean' ? value : undefined);
const ignore = (): void => {};

function unavailable(message: string, cause?: Error): DuetError {
  return cause === undefined
    ? createError('WS_ERR_BROKER_UNAVAILABLE', message)
    : createError('WS_ERR_BROKER_UNAVAILABLE', `${message}: ${cause.message}`, { cause });
}
