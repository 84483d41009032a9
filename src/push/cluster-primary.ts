/**
 * The primary's side of ClusterBroker (cluster-broker.ts): `serveClusterBroker()` in the
 * primary of a node:cluster application holds every topic's log in one MemoryBroker, answers
 * the workers' requests (publish, position, recovery reads, watch, lease) over their IPC
 * channels, and sends each published message to the workers that watch its topic, with its
 * seq, epoch and flags, and its `origin` to the worker that published it (so that worker can
 * leave out the sender). A worker that exits loses its topics and leases.
 *
 * A worker that does not read its IPC channel (a blocked event loop) would make the primary
 * queue its deliveries without end; past `maxWorkerBacklog` bytes its deliveries are dropped,
 * and once it has read what was queued it is told to resync: it fills the gap from history
 * or resets the topic, as a Redis subscriber does after a lost connection.
 *
 * Why one file of ~440 lines: one request handler per item the workers send, over one state
 * (watchers, leases, backlogs); reading it top to bottom is reading the protocol's primary side.
 */
import cluster from 'node:cluster';
import { createError } from '../protocol/errors.js';
import { MemoryBroker, type BrokerMessage, type OutgoingMessage } from './broker.js';
import type { HistoryOptions } from './history.js';
import {
  asDedup,
  asRecord,
  CLUSTER_TAG,
  decodePayload,
  encodePayload,
  isClusterMessage,
  isCount,
  type PrimaryItem,
  type WireRecovery,
} from './cluster-broker.js';

/** Options of `serveClusterBroker`. */
export interface ClusterBrokerPrimaryOptions {
  /**
   * History for every topic until a worker's server sets its own `history` (off by default);
   * the workers' `history` and `configureTopic` apply to the whole cluster.
   */
  history?: HistoryOptions | false;
  /**
   * Most topics kept (default 10,000). Beyond it the oldest topic no worker watches is
   * forgotten with its history (MemoryBroker's `maxTopics`).
   */
  maxTopics?: number;
  /**
   * Most bytes of messages queued for one worker that does not read them (default 32 MiB).
   * Beyond, its deliveries are dropped; it fills the gap from history (or resets the topic)
   * once it has caught up. Replies are never dropped.
   */
  maxWorkerBacklog?: number;
  /** Where problems go (a malformed message from a worker): default `process.emitWarning`. */
  onError?: (err: Error) => void;
  /** @internal The cluster's events (default node:cluster); tests pass a stand-in. */
  cluster?: ClusterEvents;
}

/** What the primary counts; see `stats()`. */
export interface ClusterBrokerPrimaryStats {
  /** Workers the broker knows (they spoke to it and have not exited or closed their brokers). */
  workers: number;
  /** Topics at least one worker watches. */
  topics: number;
  /** Topics whose log (numbering, history) the primary holds. */
  logs: number;
  /** Publishes numbered. */
  published: number;
  /** Messages sent to workers (one per watching worker). */
  delivered: number;
  /** Messages not sent to a worker over `maxWorkerBacklog` (it fills them from history). */
  dropped: number;
  /** Leases held now. */
  leases: number;
  /** Broker messages from workers that could not be read, skipped. */
  malformed: number;
}

/** The primary's broker, as `serveClusterBroker` returns it. */
export interface ClusterBrokerPrimary {
  /** Counters (see ClusterBrokerPrimaryStats). */
  stats(): ClusterBrokerPrimaryStats;
  /** Stop answering workers and forget every topic and lease. */
  close(): void;
}

/** A worker as the primary sees it (node:cluster's Worker). @internal */
export interface WorkerPort {
  readonly id: number;
  send(message: unknown, sendHandle: undefined, callback: (err: Error | null) => void): boolean;
  isConnected(): boolean;
}

/** The events of node:cluster the primary listens to. @internal */
export interface ClusterEvents {
  on(event: 'message' | 'disconnect' | 'exit', listener: (worker: WorkerPort, message: unknown) => void): unknown;
  off(event: 'message' | 'disconnect' | 'exit', listener: (worker: WorkerPort, message: unknown) => void): unknown;
}

interface Link {
  readonly worker: WorkerPort;
  /** The ClusterBroker's number in its worker. */
  readonly broker: number;
  /** The worker's channel carries bytes (it said so in its hello). */
  raw: boolean;
  readonly topics: Set<string>;
  outbox: PrimaryItem[];
  /** Payload bytes in `outbox`. */
  outboxBytes: number;
  /** Payload bytes queued or being written to the worker. */
  backlog: number;
  /** Deliveries were dropped: tell it to resync once its backlog is written. */
  lagging: boolean;
  gone: boolean;
}

/** Who published a message (MemoryBroker's `exclude`, handed back to `deliver`). */
interface Origin {
  link: Link;
  origin: number;
}

let serving = false;

/**
 * Serve the topics of a ClusterBroker cluster: call once in the primary, before
 * `cluster.fork()`. Every worker then uses `new ClusterBroker()`. Throws in a worker, or when
 * the primary already serves.
 */
export function serveClusterBroker(options: ClusterBrokerPrimaryOptions = {}): ClusterBrokerPrimary {
  if (options.cluster === undefined) {
    if (!cluster.isPrimary) throw new Error('serveClusterBroker() runs in the cluster primary, not in a worker');
    if (serving) throw new Error('serveClusterBroker() is already serving in this process');
    serving = true;
  }
  const primary = new Primary(options);
  return { stats: () => primary.stats(), close: () => primary.close() };
}

class Primary {
  private readonly memory: MemoryBroker;
  private readonly events: ClusterEvents;
  /** Each worker's ClusterBrokers (one per server it runs, usually one), by their number. */
  private readonly links = new Map<WorkerPort, Map<number, Link>>();
  private readonly watchers = new Map<string, Set<Link>>();
  private readonly leases = new Map<string, { link: Link; expires: number }>();
  /** The history each topic was configured with (workers repeat it; a change resets it). */
  private readonly configured = new Map<string, string>();
  private readonly maxBacklog: number;
  private readonly onError: (err: Error) => void;
  private readonly dirty = new Set<Link>();
  private flushing: ReturnType<typeof setImmediate> | undefined;
  private readonly counters = { published: 0, delivered: 0, dropped: 0, malformed: 0 };
  private closed = false;

  constructor(private readonly options: ClusterBrokerPrimaryOptions) {
    this.memory = new MemoryBroker({
      history: options.history ?? false,
      ...(options.maxTopics !== undefined ? { maxTopics: options.maxTopics } : {}),
    });
    this.memory.attach({
      deliver: (message, exclude) => this.deliver(message, exclude as Origin | undefined),
      reset: () => undefined, // a MemoryBroker never resets
      error: (err) => this.onError(err),
    });
    this.maxBacklog = options.maxWorkerBacklog ?? 32 * 1024 * 1024;
    if (!(this.maxBacklog >= 1)) throw new RangeError('maxWorkerBacklog must be at least 1');
    this.onError = options.onError ?? ((err) => process.emitWarning(err));
    this.events = options.cluster ?? cluster;
    this.events.on('message', this.onMessage);
    this.events.on('disconnect', this.onGone);
    this.events.on('exit', this.onGone);
  }

  private readonly onMessage = (worker: WorkerPort, message: unknown): void => {
    if (this.closed || !isClusterMessage(message)) return; // the application's own
    let brokers = this.links.get(worker);
    let link = brokers?.get(message.broker as number);
    if (link === undefined) {
      if (!worker.isConnected()) return;
      if (!isCount(message.broker)) {
        this.malformed(worker, 'a broker message without its broker number');
        return;
      }
      if (brokers === undefined) this.links.set(worker, (brokers = new Map<number, Link>()));
      link = {
        worker,
        broker: message.broker,
        raw: false,
        topics: new Set(),
        outbox: [],
        outboxBytes: 0,
        backlog: 0,
        lagging: false,
        gone: false,
      };
      brokers.set(link.broker, link);
    }
    if (!Array.isArray(message.items)) {
      this.malformed(link.worker, 'a broker message without items');
      return;
    }
    for (const item of message.items as unknown[]) {
      if (link.gone) break; // nothing after its `bye`
      this.receive(link, item);
    }
  };

  private readonly onGone = (worker: WorkerPort): void => {
    for (const link of [...(this.links.get(worker)?.values() ?? [])]) this.drop(link);
  };

  /** A worker left (exited, disconnected, or closed its broker): its topics and leases go. */
  private drop(link: Link): void {
    link.gone = true;
    const brokers = this.links.get(link.worker)!;
    brokers.delete(link.broker);
    if (brokers.size === 0) this.links.delete(link.worker);
    this.dirty.delete(link);
    for (const topic of link.topics) this.unwatch(link, topic);
    for (const [name, lease] of this.leases) if (lease.link === link) this.leases.delete(name);
  }

  private receive(link: Link, value: unknown): void {
    const item = asRecord(value);
    const id = item?.id;
    try {
      const answer = item === undefined ? undefined : this.answer(link, item);
      if (answer === undefined) {
        this.malformed(link.worker, `a malformed ${typeof item?.op === 'string' ? item.op.slice(0, 20) : 'item'}`);
        if (isCount(id)) this.queue(link, { op: 'reply', id, error: 'malformed request' }, 0);
      } else if (answer !== null && isCount(id)) {
        this.queue(link, { op: 'reply', id, value: answer.value }, answer.bytes ?? 0);
      }
    } catch (err) {
      // A request the broker could not carry out: its worker's promise rejects.
      if (isCount(id)) this.queue(link, { op: 'reply', id, error: String(err) }, 0);
      this.onError(err as Error); // MemoryBroker throws Errors only (TopicHistory's RangeError)
    }
  }

  /** Carry out a request: its answer (null: none is due), or undefined when it is malformed. */
  private answer(link: Link, item: Record<string, unknown>): { value: unknown; bytes?: number } | null | undefined {
    const topic = item.topic;
    switch (item.op) {
      case 'hello':
        link.raw = item.raw === true;
        // The worker learns where publish ids are remembered: here, for the whole cluster.
        return { value: this.memory.dedupScope() };
      case 'history': {
        const history = historyOf(item.history);
        if (history === undefined || (topic !== undefined && typeof topic !== 'string')) return undefined;
        if (topic === undefined) this.memory.setDefaultHistory(history);
        else if (this.configured.get(topic) !== JSON.stringify(history)) {
          this.configured.set(topic, JSON.stringify(history));
          this.memory.configureTopic(topic, history);
        }
        return null;
      }
      case 'publish': {
        const payload = typeof item.text === 'string' ? item.text : decodePayload(item.payload);
        const { binary, compress, tail, origin } = item;
        const dedup = item.dedup === undefined ? undefined : asDedup(item.dedup);
        if (
          typeof topic !== 'string' ||
          payload === undefined ||
          typeof binary !== 'boolean' ||
          (compress !== undefined && typeof compress !== 'boolean') ||
          (tail !== undefined && typeof tail !== 'string') ||
          (origin !== undefined && !isCount(origin)) ||
          (item.dedup !== undefined && dedup === undefined)
        ) {
          return undefined;
        }
        const message: OutgoingMessage = { topic, payload, binary };
        if (tail !== undefined) message.tail = tail;
        if (compress !== undefined) message.compress = compress;
        // The ids live in the MemoryBroker's topic logs: one memory for every worker, checked
        // and written in this one synchronous call, so a repeat from any worker is caught.
        if (dedup !== undefined) message.dedup = dedup;
        const result = this.memory.publish(message, origin === undefined ? undefined : { link, origin });
        if (result.duplicate !== true) this.counters.published++;
        return { value: result };
      }
      case 'position':
        return typeof topic === 'string' ? { value: this.memory.position(topic) } : undefined;
      case 'read': {
        const { since, epoch, upTo } = item;
        if (typeof topic !== 'string' || !isCount(since) || typeof epoch !== 'string' || !isCount(upTo)) {
          return undefined;
        }
        const recovery = this.memory.recover(topic, since, epoch);
        const messages = upTo === 0 ? recovery.messages : recovery.messages.filter((m) => m.seq <= upTo);
        let bytes = 0;
        const value: WireRecovery = {
          epoch: recovery.epoch,
          seq: recovery.seq,
          recovered: recovery.recovered,
          messages: messages.map((m) => {
            bytes += m.payload.length;
            return { seq: m.seq, payload: encodePayload(m.payload, link.raw), binary: m.binary, time: m.time };
          }),
        };
        return { value, bytes };
      }
      case 'watch': {
        if (typeof topic !== 'string') return undefined;
        let watching = this.watchers.get(topic);
        if (watching === undefined) {
          this.watchers.set(topic, (watching = new Set()));
          this.memory.watch(topic);
        }
        watching.add(link);
        link.topics.add(topic);
        return { value: true };
      }
      case 'unwatch':
        if (typeof topic !== 'string') return undefined;
        this.unwatch(link, topic);
        return null;
      case 'lease': {
        const { name, ttl } = item;
        if (typeof name !== 'string' || typeof ttl !== 'number' || !(ttl > 0)) return undefined;
        return { value: this.lease(link, name, ttl) };
      }
      case 'bye':
        this.drop(link);
        return null;
      default:
        return undefined;
    }
  }

  private unwatch(link: Link, topic: string): void {
    link.topics.delete(topic);
    const watching = this.watchers.get(topic);
    if (watching === undefined || !watching.delete(link) || watching.size > 0) return;
    this.watchers.delete(topic);
    this.memory.unwatch(topic);
  }

  /** Take the lease when free or expired, renew it for its holder; true when `link` holds it. */
  private lease(link: Link, name: string, ttl: number): boolean {
    const now = Date.now();
    const held = this.leases.get(name);
    if (held !== undefined && held.link !== link && held.expires > now) return false;
    this.leases.set(name, { link, expires: now + ttl });
    return true;
  }

  /** MemoryBroker delivers a numbered message: to every worker watching its topic. */
  private deliver(message: BrokerMessage, from: Origin | undefined): void {
    // MemoryBroker delivers only topics it was told to watch: those some worker watches.
    const watching = this.watchers.get(message.topic)!;
    const bytes = message.payload.length;
    let base64: string | undefined;
    for (const link of watching) {
      if (link.backlog > 0 && link.backlog + bytes > this.maxBacklog) {
        link.lagging = true;
        this.counters.dropped++;
        continue;
      }
      const item: PrimaryItem = {
        op: 'message',
        topic: message.topic,
        payload: link.raw ? message.payload : (base64 ??= message.payload.toString('base64')),
        binary: message.binary,
        seq: message.seq,
        epoch: message.epoch,
      };
      if (message.compress !== undefined) item.compress = message.compress;
      if (from !== undefined && from.link === link) item.origin = from.origin;
      this.counters.delivered++;
      this.queue(link, item, bytes);
    }
  }

  /** Queue an item for a worker; each worker gets one IPC message per event-loop turn. */
  private queue(link: Link, item: PrimaryItem, bytes: number): void {
    if (link.gone) return;
    link.outbox.push(item);
    link.outboxBytes += bytes;
    link.backlog += bytes;
    this.dirty.add(link);
    this.flushing ??= setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushing = undefined;
    for (const link of this.dirty) {
      const items = link.outbox;
      const bytes = link.outboxBytes;
      link.outbox = [];
      link.outboxBytes = 0;
      if (!link.worker.isConnected()) {
        link.backlog -= bytes; // 'disconnect' drops it
        continue;
      }
      const message = { duet: CLUSTER_TAG, broker: link.broker, items };
      link.worker.send(message, undefined, () => this.written(link, bytes));
    }
    this.dirty.clear();
  };

  /** A batch left for its worker (or failed: the worker is gone). */
  private written(link: Link, bytes: number): void {
    link.backlog -= bytes;
    if (link.lagging && link.backlog === 0 && !link.gone) {
      link.lagging = false;
      this.queue(link, { op: 'resync' }, 0);
    }
  }

  private malformed(worker: WorkerPort, what: string): void {
    this.counters.malformed++;
    this.onError(createError('WS_ERR_BROKER_MESSAGE', `${what} from cluster worker ${worker.id}: skipped`));
  }

  stats(): ClusterBrokerPrimaryStats {
    return {
      workers: this.links.size,
      topics: this.watchers.size,
      logs: this.memory.topicCount(),
      ...this.counters,
      leases: this.leases.size,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.options.cluster === undefined) serving = false;
    this.events.off('message', this.onMessage);
    this.events.off('disconnect', this.onGone);
    this.events.off('exit', this.onGone);
    if (this.flushing !== undefined) clearImmediate(this.flushing);
    for (const worker of [...this.links.keys()]) this.onGone(worker);
    this.memory.close();
  }
}

/** `false`, or `{ size >= 1, ttl? >= 0 }`; undefined when neither. */
function historyOf(value: unknown): HistoryOptions | false | undefined {
  if (value === false) return false;
  const v = asRecord(value);
  if (v === undefined || typeof v.size !== 'number' || !(v.size >= 1)) return undefined;
  if (v.ttl === undefined) return { size: v.size };
  return typeof v.ttl === 'number' && v.ttl >= 0 ? { size: v.size, ttl: v.ttl } : undefined;
}
