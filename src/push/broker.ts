/**
 * The broker: where each topic's log lives (its sequence number, its epoch, its history) and
 * how a published message reaches the Hub of every process. The Hub keeps only its local
 * subscribers and frames each delivered message once for them.
 *
 * Two kinds, told apart by `synchronous`:
 * - a synchronous broker (MemoryBroker, the default: one process, no network) numbers a
 *   message and delivers it to the Hub inside `publish`, and answers `recover` and
 *   `position` at once;
 * - an asynchronous one (duet/redis's RedisBroker, the `--workers` ClusterBroker) keeps the
 *   log elsewhere: `publish`, `recover` and `position` return promises, and deliveries come
 *   later, per topic in sequence order, each once (or a `reset` that says a gap could not be
 *   filled).
 */
import { randomBytes } from 'node:crypto';
import { TopicHistory, type HistoryEntry, type HistoryOptions, type Recovery } from './history.js';
import { PublishIds } from './publish-ids.js';

/** Where a topic stands: the epoch of its numbering and its last sequence number. */
export interface TopicPosition {
  /** Changes whenever the numbering starts over (a restart, a log that was lost). */
  epoch: string;
  /** The last message's sequence number (0: none yet in this epoch). */
  seq: number;
}

/** A message handed to the broker, not yet numbered. */
export interface OutgoingMessage {
  topic: string;
  /**
   * The message's bytes (a string: its UTF-8). With `tail`, the part before its sequence
   * number: the message is `payload + String(seq) + tail`, put together where the number is
   * assigned (the channel protocol's envelopes carry their own seq).
   */
  payload: Buffer | string;
  /** See `payload`. */
  tail?: string;
  /** Sent as a binary message (else text). */
  binary: boolean;
  /** false: the publisher asked for no compression. */
  compress?: boolean;
  /**
   * Remember this publish by (topic, `dedup.id`): a later publish of the same id on the same
   * topic, while remembered, is not published again but answered with this one's position
   * and `duplicate: true`. A broker without `dedupScope` ignores it.
   */
  dedup?: PublishDedup;
}

/**
 * A publish id to remember, and for how long: at least `ttlMs`, while fewer than `size`
 * newer ids of the same topic are remembered (oldest first out).
 */
export interface PublishDedup {
  /** The publisher's id for this message (the channel protocol: 1-128 characters). */
  id: string;
  /** Milliseconds the id is remembered (at least; unless `size` pushes it out first). */
  ttlMs: number;
  /** Most ids remembered per topic. */
  size: number;
}

/** Where a publish landed: its position, and whether it was a repeat of a remembered id. */
export interface PublishResult extends TopicPosition {
  /**
   * The message carried a `dedup` id already remembered for its topic: nothing was published,
   * and `epoch`/`seq` are those of the first publish with that id (`epoch` may be the topic's
   * current one when the broker does not keep it with the id).
   */
  duplicate?: boolean;
}

/** A numbered message, as a broker hands it to each Hub. */
export interface BrokerMessage {
  topic: string;
  /** The message's bytes (not yet framed), its sequence number filled in if it had a `tail`. */
  payload: Buffer;
  /** Sent as a binary message (else text). */
  binary: boolean;
  /** false: the publisher asked for no compression. */
  compress?: boolean;
  /** The message's sequence number in its topic (0: the topic keeps no log, nobody follows it). */
  seq: number;
  /** The topic's epoch. */
  epoch: string;
}

/** What a Hub offers the broker it is attached to. */
export interface BrokerHost {
  /**
   * Deliver to this process's subscribers of `message.topic`, except `exclude` (the local
   * connection that published it, if any). Per topic, in sequence order, each message once.
   */
  deliver(message: BrokerMessage, exclude?: unknown): void;
  /**
   * The topic's numbering moved on without the messages in between (its log was lost: a new
   * epoch; or a gap the history no longer covers): subscribers are told that they may have
   * missed messages (the channel protocol answers `subscribed` with `recovered: false`).
   * Deliveries continue after `position`.
   */
  reset(topic: string, position: TopicPosition): void;
  /** An error not tied to one call (connection to the broker lost, a malformed message skipped). */
  error(err: Error): void;
}

/** What every broker does. */
interface BrokerBase {
  /** Called once, by the Hub that uses this broker. */
  attach(host: BrokerHost): void;
  /** The history of topics not configured one by one (a Hub given a `history` option sets it). */
  setDefaultHistory(history: HistoryOptions | false): void;
  /** The history one topic keeps (`false`: none), overriding the broker's default. */
  configureTopic(topic: string, history: HistoryOptions | false): void;
  /**
   * This process has a first local subscriber of `topic`: deliver its messages from now on.
   * An asynchronous broker resolves once deliveries have started (a recovery read after that
   * misses nothing that is delivered).
   */
  watch(topic: string): void | Promise<void>;
  /** This process has no subscriber of `topic` left. */
  unwatch(topic: string): void;
  /** Topics whose log this process holds (MemoryBroker), or watches (a networked broker). */
  topicCount(): number;
  /**
   * Implemented by a broker that keeps publish ids (`OutgoingMessage.dedup`) with its topics:
   * an opaque name of the memory that holds them, the same for as long as the ids it has
   * acknowledged are still remembered (a new one when that memory was lost: a restart, a
   * flushed Redis). Undefined while not known yet (a ClusterBroker before the primary
   * answered). A broker without it does not deduplicate: the channel protocol then announces
   * no dedup (`dedupMs: 0`) and clients do not resend.
   */
  dedupScope?(): string | undefined;
  /** Stop: release connections and timers. */
  close(): void | Promise<void>;
}

/** A broker that answers at once and delivers inside `publish` (one process). */
export interface SynchronousBroker extends BrokerBase {
  readonly synchronous: true;
  /**
   * Number the message, keep it in history, deliver it. Returns its position (that of the
   * first publish, with `duplicate: true`, for a remembered `dedup` id: see OutgoingMessage).
   */
  publish(message: OutgoingMessage, exclude?: unknown): PublishResult;
  /** Exactly the messages after (`epoch`, `since`), or `recovered: false`. */
  recover(topic: string, since: number, epoch: string): Recovery;
  /** The topic's epoch and last sequence number. */
  position(topic: string): TopicPosition;
}

/** A broker whose log lives elsewhere (Redis, the cluster's primary process). */
export interface AsynchronousBroker extends BrokerBase {
  readonly synchronous: false;
  /**
   * Number the message, keep it in history and send it to every process, in one atomic step.
   * Resolves with its position once stored; rejects with a DuetError when it cannot be
   * (`WS_ERR_BROKER_UNAVAILABLE`, `WS_ERR_BROKER_BACKLOG`): then it was not published.
   * A remembered `dedup` id (see OutgoingMessage) is checked and recorded in the same atomic
   * step: a repeat resolves with the first publish's position and `duplicate: true`.
   */
  publish(message: OutgoingMessage, exclude?: unknown): Promise<PublishResult>;
  recover(topic: string, since: number, epoch: string): Promise<Recovery>;
  position(topic: string): Promise<TopicPosition>;
}

/** Where topics' logs live and how messages reach every process (see the file's comment). */
export type Broker = SynchronousBroker | AsynchronousBroker;

/** A new random epoch (48 bits, base64url). */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/** The message's bytes with its sequence number put in (see OutgoingMessage.payload). */
export function messageBytes(message: OutgoingMessage, seq: number): Buffer {
  const { payload, tail } = message;
  if (tail === undefined) return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (typeof payload === 'string') return Buffer.from(payload + seq + tail, 'utf8');
  return Buffer.concat([payload, Buffer.from(seq + tail, 'utf8')]);
}

function sameHistory(a: HistoryOptions | false, b: HistoryOptions | false): boolean {
  if (a === false || b === false) return a === b;
  return Math.floor(a.size) === Math.floor(b.size) && (a.ttl ?? 0) === (b.ttl ?? 0);
}

/** Options of the in-memory broker. */
export interface MemoryBrokerOptions {
  /** History for every topic (off by default); per topic with `configureTopic`. */
  history?: HistoryOptions | false;
  /**
   * Most topics kept (default 10,000). Beyond it the oldest topic without subscribers is
   * forgotten with its history, so clients inventing topic names cannot grow memory forever.
   */
  maxTopics?: number;
}

interface TopicLog {
  seq: number;
  epoch: string;
  history: TopicHistory | undefined;
  /** This process has subscribers of the topic. */
  watched: boolean;
  /** Publish ids remembered (OutgoingMessage.dedup): made on the first publish with an id. */
  ids: PublishIds | undefined;
}

/**
 * One process, no network (the default): each topic's log is held here, and a publish is
 * delivered to the Hub before `publish` returns. A topic nobody follows, without history
 * and without remembered publish ids is not kept at all (its numbering starts over, with a
 * new epoch, when it is next used). Publish ids (OutgoingMessage.dedup) live in their topic's
 * log: at most `dedup.size` per topic, and the topics themselves are bounded by `maxTopics`
 * (a topic forgotten past it forgets its ids too).
 */
export class MemoryBroker implements SynchronousBroker {
  readonly synchronous = true;
  private host: BrokerHost | undefined;
  private readonly logs = new Map<string, TopicLog>();
  private historyDefault: HistoryOptions | false;
  private readonly historyByTopic = new Map<string, HistoryOptions | false>();
  private readonly maxTopics: number;
  private readonly scope = randomBytes(12).toString('base64url');

  constructor(options: MemoryBrokerOptions = {}) {
    this.historyDefault = options.history ?? false;
    this.maxTopics = options.maxTopics ?? 10_000;
  }

  attach(host: BrokerHost): void {
    this.host = host;
  }

  /**
   * The history of topics not configured one by one (a Hub passes its `history` option here
   * when it was given one).
   */
  setDefaultHistory(history: HistoryOptions | false): void {
    this.historyDefault = history;
  }

  configureTopic(topic: string, history: HistoryOptions | false): void {
    const before = this.historyFor(topic);
    this.historyByTopic.set(topic, history);
    // The same settings again (a second Channel, every worker at start): what is kept stays.
    if (sameHistory(before, history)) return;
    const log = this.logs.get(topic);
    if (log) log.history = history ? new TopicHistory(history) : undefined;
  }

  private historyFor(topic: string): HistoryOptions | false {
    return this.historyByTopic.has(topic) ? this.historyByTopic.get(topic)! : this.historyDefault;
  }

  private log(topic: string): TopicLog {
    let log = this.logs.get(topic);
    if (log === undefined) {
      if (this.logs.size >= this.maxTopics) this.evictIdleTopic();
      const history = this.historyFor(topic);
      log = {
        seq: 0,
        epoch: newEpoch(),
        history: history ? new TopicHistory(history) : undefined,
        watched: false,
        ids: undefined,
      };
      this.logs.set(topic, log);
    }
    return log;
  }

  watch(topic: string): void {
    this.log(topic).watched = true;
  }

  unwatch(topic: string): void {
    const log = this.logs.get(topic);
    if (log === undefined) return;
    log.watched = false;
    // Nobody listening and nothing remembered: forgotten (its sequence, too).
    if (log.history === undefined && log.ids === undefined) this.logs.delete(topic);
  }

  publish(message: OutgoingMessage, exclude?: unknown): PublishResult {
    const known = this.logs.get(message.topic);
    const dedup = message.dedup;
    if (known === undefined && dedup === undefined && !this.historyFor(message.topic)) {
      // Nobody follows this topic and nothing is remembered: no state is made (offline users'
      // notification topics, made-up names), and nobody is there to deliver to.
      return { epoch: '', seq: 0 };
    }
    const log = known ?? this.log(message.topic);
    let now = 0;
    if (dedup !== undefined) {
      now = Date.now();
      const first = log.ids?.get(dedup.id, now, dedup.ttlMs);
      if (first !== undefined) return { epoch: log.epoch, seq: first, duplicate: true };
    }
    const seq = ++log.seq;
    const payload = messageBytes(message, seq);
    if (dedup !== undefined) (log.ids ??= new PublishIds()).add(dedup.id, seq, now, dedup.ttlMs, dedup.size);
    // History keeps its own copy: a received message may be a view into a whole socket read.
    if (log.history) {
      const copy = payload === message.payload ? Buffer.from(payload) : payload;
      log.history.add({ seq, payload: copy, binary: message.binary, time: Date.now() });
    }
    if (log.watched) {
      const delivered: BrokerMessage = { topic: message.topic, payload, binary: message.binary, seq, epoch: log.epoch };
      if (message.compress !== undefined) delivered.compress = message.compress;
      this.host?.deliver(delivered, exclude);
    } else if (log.history === undefined && log.ids === undefined) {
      this.logs.delete(message.topic);
    }
    return { epoch: log.epoch, seq };
  }

  /** This broker's memory of publish ids: one random name per MemoryBroker (per process start). */
  dedupScope(): string {
    return this.scope;
  }

  position(topic: string): TopicPosition {
    const log = this.log(topic);
    return { epoch: log.epoch, seq: log.seq };
  }

  recover(topic: string, since: number, epoch: string): Recovery {
    const log = this.log(topic);
    const base = { epoch: log.epoch, seq: log.seq };
    if (epoch !== log.epoch || log.history === undefined || !Number.isInteger(since) || since < 0) {
      return { ...base, recovered: false, messages: [] };
    }
    const messages: HistoryEntry[] | undefined = log.history.after(since, log.seq, Date.now());
    return messages === undefined
      ? { ...base, recovered: false, messages: [] }
      : { ...base, recovered: true, messages };
  }

  topicCount(): number {
    return this.logs.size;
  }

  /**
   * Too many topics: forget the oldest one nobody subscribes to (its history goes with it, so
   * a later recovery on it reports `recovered: false`). Topics with subscribers are kept.
   */
  private evictIdleTopic(): void {
    for (const [name, log] of this.logs) {
      if (!log.watched) {
        this.logs.delete(name);
        return;
      }
    }
  }

  close(): void {}
}
