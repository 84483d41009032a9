/**
 * RedisBroker: one topic space for every duet process connected to the same Redis. Each
 * topic's sequence number, epoch and history live in Redis (see scripts.ts); a publish is
 * one atomic script (number, append to history, publish to the topic's channel). Each
 * process subscribes once per topic that has local subscribers, and its TopicFeeds
 * (push/topic-feed.ts) deliver every topic's messages in order, once, with gaps after a lost
 * connection filled from history or reported as a reset. docs/scaling.md.
 *
 * Two connections: one for commands and one subscribed to topics' channels (Redis requires
 * that). Commands never wait in a queue while Redis is away (`enableOfflineQueue: false`): a
 * publish fails at once with WS_ERR_BROKER_UNAVAILABLE instead of being reported as sent.
 *
 * Why one file of ~600 lines: every method is one script call or one connection event over the
 * same two connections and counters; the Lua itself is in scripts.ts, the ordering in
 * push/topic-feed.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { createError, DuetError } from '../protocol/errors.js';
import { type AsynchronousBroker, type BrokerHost, type BrokerMessage } from '../push/broker.js';
import type { OutgoingMessage, PublishResult, TopicPosition } from '../push/broker.js';
import type { HistoryEntry, HistoryOptions, Recovery } from '../push/history.js';
import { TopicFeeds, type FeedMessage } from '../push/topic-feed.js';
import { DEDUP_SCOPE, LEASE, POSITION, PUBLISH, RECOVER, type Script } from './scripts.js';

/** Options of a RedisBroker. */
export interface RedisBrokerOptions {
  /** Where Redis is (default `process.env.REDIS_URL`, else `redis://127.0.0.1:6379`). */
  url?: string;
  /** More ioredis options (TLS, password, ...); duet sets the ones it depends on. */
  redis?: RedisOptions;
  /**
   * Prefix of every key and channel (default `duet:`). Give each application (and each test)
   * its own.
   */
  prefix?: string;
  /** History for every topic (off by default; the server's `history` option sets it too). */
  history?: HistoryOptions | false;
  /**
   * Milliseconds a topic's numbering (and history) is kept in Redis after it was last used
   * (default 24 h). A topic unused for longer starts over with a new epoch: clients that come
   * back are told they cannot recover. 0: kept until Redis evicts it.
   */
  topicTtl?: number;
  /** Most publishes waiting for Redis at once (default 10,000); beyond, publish fails with WS_ERR_BROKER_BACKLOG. */
  maxPendingPublishes?: number;
  /**
   * Milliseconds a command may wait for Redis (default 5000): past it, the connection is taken
   * as stuck, dropped and made again, and what waited fails (checked every second).
   */
  commandTimeout?: number;
  /** Milliseconds `connect()` waits for Redis at start-up before failing (default 5000). */
  connectTimeout?: number;
}

/** What a RedisBroker counts; see `stats()`. */
export interface RedisBrokerStats {
  /** Publishes Redis acknowledged. */
  published: number;
  /** Publishes that failed: not published (WS_ERR_BROKER_UNAVAILABLE, _BACKLOG), or not known (WS_ERR_BROKER_OUTCOME_UNKNOWN). */
  failed: number;
  /** Publishes waiting for Redis now. */
  pending: number;
  /** Messages received from Redis and delivered to this process's Hub. */
  received: number;
  /** Malformed or foreign messages on duet's channels, skipped. */
  malformed: number;
  /** Gaps (after a lost connection) filled from history. */
  gapsFilled: number;
  /** Topics reset: a gap older than the history, or a new epoch (Redis lost its data). */
  resets: number;
  /** Topics this process subscribes to. */
  topics: number;
}

const DEFAULT_TOPIC_TTL = 24 * 3600 * 1000;
const HEADER = Buffer.from('duet1 ', 'latin1');
const NEWLINE = 0x0a;

function compile(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}
const SCRIPTS = {
  publish: compile(PUBLISH),
  position: compile(POSITION),
  recover: compile(RECOVER),
  lease: compile(LEASE),
  dedupScope: compile(DEDUP_SCOPE),
};

/** Flags of a message on the wire: `b`/`t` (binary or text), then `c`/`n`/`-` (compress: yes, no, unset). */
function flagsOf(binary: boolean, compress: boolean | undefined): string {
  return (binary ? 'b' : 't') + (compress === undefined ? '-' : compress ? 'c' : 'n');
}

function applyFlags(message: { binary: boolean; compress?: boolean }, flags: string): boolean {
  if (flags.length !== 2 || (flags[0] !== 'b' && flags[0] !== 't')) return false;
  message.binary = flags[0] === 'b';
  if (flags[1] === 'c') message.compress = true;
  else if (flags[1] === 'n') message.compress = false;
  else if (flags[1] !== '-') return false;
  return true;
}

/**
 * A broker that keeps topics in Redis, so that several duet processes (on one machine or
 * many) share them: `new WebSocketServer({ broker: await RedisBroker.connect({ url }) })`.
 */
export class RedisBroker implements AsynchronousBroker {
  readonly synchronous = false;
  private host: BrokerHost | undefined;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly prefix: string;
  private historyDefault: HistoryOptions | false;
  private readonly historyByTopic = new Map<string, HistoryOptions | false>();
  private readonly topicTtl: number;
  private readonly maxPending: number;
  private readonly connectTimeout: number;
  /**
   * This broker's id: in the `origin` of its publishes (so it knows them when they come back),
   * and in its Redis connections' names (`CLIENT LIST`: `duet:<id>:commands`, `duet:<id>:subscriber`).
   */
  readonly id = randomBytes(6).toString('base64url');
  private originCounter = 0;
  private readonly feeds: TopicFeeds;
  /** Channel name -> topic, for the topics subscribed to. */
  private readonly topicByChannel = new Map<string, string>();
  private readonly counters = { published: 0, failed: 0, pending: 0, received: 0, malformed: 0 };
  /** Whether an outage was reported (once per outage, not once per reconnection attempt). */
  private down = false;
  /** Numbers the epochs this broker proposes (see candidateEpoch). */
  private epochCounter = 0;
  /** Commands waiting for Redis, oldest first (each its start time); see the sweep. */
  private readonly inflight = new Set<{ at: number }>();
  private readonly commandTimeout: number;
  private readonly sweep: ReturnType<typeof setInterval>;
  private closed = false;
  private everReady = false;
  /** The dedup scope as last read from Redis (see dedupScope()). */
  private scope: string | undefined;
  private readingScope = false;

  constructor(options: RedisBrokerOptions = {}) {
    const url = options.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    this.prefix = options.prefix ?? 'duet:';
    this.historyDefault = options.history ?? false;
    this.topicTtl = options.topicTtl ?? DEFAULT_TOPIC_TTL;
    this.maxPending = options.maxPendingPublishes ?? 10_000;
    this.connectTimeout = options.connectTimeout ?? 5000;
    this.commandTimeout = options.commandTimeout ?? 5000;
    // One timer for every command (ioredis's commandTimeout starts one per command, 1-2 % of
    // a busy server's time): Redis answers in order, so when the oldest command waiting has
    // waited too long the connection is stuck; dropping it fails what waits (not published)
    // and reconnects.
    this.sweep = setInterval(() => {
      const oldest = this.inflight.values().next().value;
      if (oldest !== undefined && Date.now() - oldest.at > this.commandTimeout) {
        this.inflight.clear();
        this.commands.disconnect(true);
      }
      // A Redis that lost its data (FLUSHALL, a restart without persistence) is noticed here.
      this.readScope();
    }, 1000);
    this.sweep.unref();
    if (!(this.maxPending >= 1)) throw new RangeError('maxPendingPublishes must be at least 1');
    if (!(this.topicTtl >= 0)) throw new RangeError('topicTtl must be 0 or more');
    const settings: RedisOptions = {
      ...options.redis,
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
    };
    const name = options.redis?.connectionName ?? 'duet';
    this.commands = new Redis(url, { ...settings, connectionName: `${name}:${this.id}:commands` });
    this.subscriber = new Redis(url, {
      ...settings,
      connectionName: `${name}:${this.id}:subscriber`,
    });
    this.feeds = new TopicFeeds(
      {
        subscribe: (topic) => this.subscribeChannel(topic),
        unsubscribe: (topic) => this.unsubscribeChannel(topic),
        position: (topic) => this.position(topic),
        range: (topic, epoch, after, upTo) => this.range(topic, epoch, after, upTo),
      },
      () => this.host,
      // One error per outage: while a connection is down (reported once), the feeds' retries
      // fail for that reason. An error Redis itself answered is news: reported.
      (err) => this.outage() && !(err instanceof Error && err.name === 'ReplyError'),
    );
    for (const client of [this.commands, this.subscriber]) {
      // ioredis reports a refused or reset connection as 'error', one closed by the server
      // (CLIENT KILL, a restart) only as 'close'.
      client.on('error', (err: Error) => this.lost(err));
      client.on('close', () => this.lost(new Error('connection closed')));
      client.on('ready', () => this.back());
    }
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.message(channel, message));
  }

  /**
   * Make a broker and wait until Redis answers: rejects with WS_ERR_BROKER_UNAVAILABLE (and
   * closes what it opened) when it does not within `connectTimeout`.
   */
  static async connect(options: RedisBrokerOptions = {}): Promise<RedisBroker> {
    const broker = new RedisBroker(options);
    try {
      await broker.start();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  /** Connect both connections (what `connect` waits for). */
  async start(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.connectTimeout} ms`)), this.connectTimeout);
    });
    try {
      await Promise.race([
        // The dedup scope is read before any connection is served (so a channel announces it);
        // a failure to read it is not fatal: it is read again every second.
        Promise.all([this.commands.connect(), this.subscriber.connect()]).then(() =>
          this.fetchScope().catch(() => undefined),
        ),
        timeout,
      ]);
    } catch (err) {
      throw unavailable(`cannot reach Redis at ${describe(this.commands)}`, err);
    } finally {
      clearTimeout(timer);
    }
  }

  attach(host: BrokerHost): void {
    this.host = host;
  }

  setDefaultHistory(history: HistoryOptions | false): void {
    this.historyDefault = history;
  }

  configureTopic(topic: string, history: HistoryOptions | false): void {
    this.historyByTopic.set(topic, history);
  }

  private historyFor(topic: string): HistoryOptions | false {
    return this.historyByTopic.has(topic) ? this.historyByTopic.get(topic)! : this.historyDefault;
  }

  /** The keys of `topic` (its name percent-encoded, so no topic name can reach another's keys). */
  private keys(topic: string): { log: string; hist: string; ids: string; idt: string; channel: string } {
    const base = `${this.prefix}{${encodeURIComponent(topic)}}`;
    return { log: `${base}:log`, hist: `${base}:hist`, ids: `${base}:ids`, idt: `${base}:idt`, channel: `${base}:msg` };
  }

  /**
   * The name of the memory that holds publish ids: a random string kept in Redis under the
   * prefix (`<prefix>dedup-scope`), the same for every process sharing it, made again when
   * Redis lost it. Read at start, after every reconnection, and every second, so a Redis that
   * was flushed while connected gives a new one within about a second.
   */
  dedupScope(): string | undefined {
    return this.scope;
  }

  private async fetchScope(): Promise<void> {
    const scope = (await this.run(
      SCRIPTS.dedupScope,
      [`${this.prefix}dedup-scope`],
      [randomBytes(12).toString('base64url')],
    )) as Buffer;
    this.scope = scope.toString('latin1');
  }

  /** Read the scope again (once at a time; a failure is the connection's, reported there). */
  private readScope(): void {
    if (this.readingScope || this.closed || this.commands.status !== 'ready') return;
    this.readingScope = true;
    this.fetchScope().then(
      () => (this.readingScope = false),
      () => (this.readingScope = false),
    );
  }

  watch(topic: string): Promise<void> {
    return this.feeds.watch(topic);
  }

  unwatch(topic: string): void {
    this.feeds.unwatch(topic);
  }

  topicCount(): number {
    return this.feeds.size;
  }

  private async subscribeChannel(topic: string): Promise<void> {
    const { channel } = this.keys(topic);
    this.topicByChannel.set(channel, topic);
    await this.subscriber.subscribe(channel);
  }

  private unsubscribeChannel(topic: string): void {
    const { channel } = this.keys(topic);
    this.topicByChannel.delete(channel);
    if (this.subscriber.status === 'ready') this.subscriber.unsubscribe(channel).catch(() => undefined);
  }

  async publish(message: OutgoingMessage, exclude?: unknown): Promise<PublishResult> {
    if (this.closed) throw unavailable('the Redis broker is closed');
    if (this.counters.pending >= this.maxPending) {
      this.counters.failed++;
      throw createError(
        'WS_ERR_BROKER_BACKLOG',
        `${this.counters.pending} publishes already wait for Redis (maxPendingPublishes): not published`,
      );
    }
    const history = this.historyFor(message.topic);
    const keys = this.keys(message.topic);
    let origin = '-';
    if (exclude !== undefined && this.feeds.has(message.topic)) {
      const n = ++this.originCounter;
      origin = `${this.id}:${n}`;
      this.feeds.expect(message.topic, n, exclude);
    }
    const dedup = message.dedup;
    if (this.commands.status !== 'ready') {
      // Nothing was sent (commands never wait in a queue): certainly not published.
      this.counters.failed++;
      throw unavailable(
        `publish to ${JSON.stringify(message.topic.slice(0, 64))} failed: not published`,
        new Error(`the connection is ${this.commands.status}`),
      );
    }
    this.counters.pending++;
    try {
      const reply = await this.run(
        SCRIPTS.publish,
        [keys.log, keys.hist, keys.ids, keys.idt],
        [
          keys.channel,
          message.payload,
          message.tail ?? '',
          message.tail === undefined ? '0' : '1',
          flagsOf(message.binary, message.compress),
          history ? Math.floor(history.size) : 0,
          0,
          this.topicTtl,
          this.candidateEpoch(),
          origin,
          dedup === undefined ? '' : dedup.id,
          dedup === undefined ? 0 : Math.ceil(dedup.ttlMs),
          dedup === undefined ? 0 : Math.floor(dedup.size),
        ],
      );
      const [seq, epoch, duplicate] = reply as [number, Buffer, number];
      if (Number(duplicate) === 1) {
        // Published before (by this process or another): nothing was published now.
        return { seq: Number(seq), epoch: epoch.toString('latin1'), duplicate: true };
      }
      this.counters.published++;
      return { seq: Number(seq), epoch: epoch.toString('latin1') };
    } catch (err) {
      this.counters.failed++;
      const topic = JSON.stringify(message.topic.slice(0, 64));
      // Redis answered with an error: the script did not run (or stopped at its first command).
      if (err instanceof Error && err.name === 'ReplyError')
        throw unavailable(`publish to ${topic} failed: not published`, err);
      // Sent, and no answer came (the connection dropped, or was dropped as stuck): the script
      // may have run.
      throw createError(
        'WS_ERR_BROKER_OUTCOME_UNKNOWN',
        `publish to ${topic}: no answer from Redis (${err instanceof Error ? err.message : String(err)}); it may have been published`,
        { cause: err },
      );
    } finally {
      this.counters.pending--;
    }
  }

  async position(topic: string): Promise<TopicPosition> {
    const keys = this.keys(topic);
    try {
      const [epoch, seq] = (await this.run(
        SCRIPTS.position,
        [keys.log, keys.hist],
        [this.candidateEpoch(), this.topicTtl],
      )) as [Buffer, number];
      return { epoch: epoch.toString('latin1'), seq: Number(seq) };
    } catch (err) {
      throw unavailable(`reading the position of ${JSON.stringify(topic.slice(0, 64))} failed`, err);
    }
  }

  async recover(topic: string, since: number, epoch: string): Promise<Recovery> {
    if (!Number.isSafeInteger(since) || since < 0) {
      const position = await this.position(topic);
      return { ...position, recovered: false, messages: [] };
    }
    const read = await this.read(topic, epoch, since, 0);
    return { epoch: read.epoch, seq: read.seq, recovered: read.messages !== undefined, messages: read.messages ?? [] };
  }

  private async range(topic: string, epoch: string, after: number, upTo: number): Promise<BrokerMessage[] | undefined> {
    const read = await this.read(topic, epoch, after, upTo);
    if (read.messages === undefined || read.epoch !== epoch) return undefined;
    return read.messages.map((entry) => {
      const message: FeedMessage = {
        topic,
        payload: entry.payload,
        binary: entry.binary,
        seq: entry.seq,
        epoch,
        origin: entry.origin,
      };
      if (entry.compress !== undefined) message.compress = entry.compress;
      return message;
    });
  }

  /** Run the recover script: messages of `epoch` after `since` (up to `upTo`, 0: all). */
  private async read(
    topic: string,
    epoch: string,
    since: number,
    upTo: number,
  ): Promise<{
    epoch: string;
    seq: number;
    messages: Array<HistoryEntry & { compress?: boolean; origin?: number }> | undefined;
  }> {
    const keys = this.keys(topic);
    const history = this.historyFor(topic);
    let reply: unknown[];
    try {
      reply = (await this.run(
        SCRIPTS.recover,
        [keys.log, keys.hist],
        [
          since,
          epoch,
          history ? (history.ttl ?? 0) : 0,
          upTo,
          this.candidateEpoch(),
          this.topicTtl,
          history ? history.size : 0,
        ],
      )) as unknown[];
    } catch (err) {
      throw unavailable(`reading the history of ${JSON.stringify(topic.slice(0, 64))} failed`, err);
    }
    const current = (reply[0] as Buffer).toString('latin1');
    const seq = Number(reply[1]);
    if (Number(reply[2]) !== 1) return { epoch: current, seq, messages: undefined };
    const messages: Array<HistoryEntry & { compress?: boolean; origin?: number }> = [];
    for (let i = 3, n = since + 1; i + 2 < reply.length; i += 3, n++) {
      const entry: HistoryEntry & { compress?: boolean; origin?: number } = {
        seq: n,
        payload: reply[i + 2] as Buffer,
        binary: false,
        time: 0,
      };
      applyFlags(entry, (reply[i] as Buffer).toString('latin1'));
      const origin = this.ownOrigin((reply[i + 1] as Buffer).toString('latin1'));
      if (origin !== undefined) entry.origin = origin;
      messages.push(entry);
    }
    return { epoch: current, seq, messages };
  }

  /** The origin number of one of this broker's own publishes, else undefined. */
  private ownOrigin(origin: string): number | undefined {
    const colon = origin.indexOf(':');
    if (colon < 0 || origin.slice(0, colon) !== this.id) return undefined;
    const n = Number(origin.slice(colon + 1));
    return Number.isSafeInteger(n) ? n : undefined;
  }

  /**
   * Hold a lease named `name` for `ttlMs` (take it when free, renew it when this broker holds
   * it): resolves true while this process holds it. One process in a fleet runs a job (the
   * ticker of `duet serve --redis`) by calling this more often than `ttlMs`.
   */
  async lease(name: string, ttlMs: number): Promise<boolean> {
    const key = `${this.prefix}lease:${encodeURIComponent(name)}`;
    try {
      return Number(await this.run(SCRIPTS.lease, [key], [this.id, Math.ceil(ttlMs)])) === 1;
    } catch (err) {
      throw unavailable(`the lease ${JSON.stringify(name)} could not be taken`, err);
    }
  }

  /**
   * A new epoch to propose to a script, used only if the topic's log is missing: this
   * broker's random id and a counter, unique across processes and calls without asking the
   * system for random bytes on every publish.
   */
  private candidateEpoch(): string {
    return this.id + (++this.epochCounter).toString(36);
  }

  /** EVALSHA, or EVAL when Redis does not know the script yet (it keeps it after). */
  private async run(script: Script, keys: string[], args: Array<string | Buffer | number>): Promise<unknown> {
    if (this.commands.status !== 'ready') throw new Error(`the connection is ${this.commands.status}`);
    const entry = { at: Date.now() };
    this.inflight.add(entry);
    try {
      return await this.commands.callBuffer('EVALSHA', script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await this.commands.callBuffer('EVAL', script.source, keys.length, ...keys, ...args);
    } finally {
      this.inflight.delete(entry);
    }
  }

  /** A message on a topic's channel. */
  private message(channel: Buffer, data: Buffer): void {
    const topic = this.topicByChannel.get(channel.toString('utf8'));
    if (topic === undefined) return; // a topic given up a moment ago
    const end = data.indexOf(NEWLINE);
    const header = end > 0 && data.subarray(0, HEADER.length).equals(HEADER) ? data.toString('latin1', 0, end) : '';
    const parts = header.split(' ');
    const seq = Number(parts[1]);
    const message: FeedMessage = {
      topic,
      payload: data.subarray(end + 1),
      binary: false,
      seq,
      epoch: parts[2] ?? '',
    };
    if (
      parts.length !== 5 ||
      !Number.isSafeInteger(seq) ||
      seq < 1 ||
      message.epoch === '' ||
      !applyFlags(message, parts[3])
    ) {
      this.counters.malformed++;
      this.host?.error(
        createError(
          'WS_ERR_BROKER_MESSAGE',
          `a malformed message on ${JSON.stringify(channel.toString('utf8').slice(0, 100))}: skipped`,
        ),
      );
      return;
    }
    message.origin = this.ownOrigin(parts[4]);
    this.counters.received++;
    this.feeds.receive(message);
  }

  /** An outage was reported and a connection is still not ready. */
  private outage(): boolean {
    return this.down && (this.commands.status !== 'ready' || this.subscriber.status !== 'ready');
  }

  /** A connection failed: report it once per outage. */
  private lost(err: Error): void {
    if (this.closed || this.down) return;
    this.down = true;
    this.host?.error(unavailable('the connection to Redis was lost; reconnecting', err));
  }

  /** A connection is (again) ready: subscribe again and catch up on what was missed. */
  private back(): void {
    if (this.closed) return;
    if (this.commands.status !== 'ready' || this.subscriber.status !== 'ready') return;
    this.down = false;
    if (!this.everReady) {
      this.everReady = true;
      return;
    }
    // Redis may have restarted without its data: a new scope at once, not at the next sweep.
    this.readScope();
    const channels = [...this.topicByChannel.keys()];
    const resubscribed = channels.length > 0 ? this.subscriber.subscribe(...channels) : Promise.resolve(0);
    resubscribed.then(
      () => this.feeds.resync(),
      (err: unknown) => this.lost(err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Counters (see RedisBrokerStats). */
  stats(): RedisBrokerStats {
    return { ...this.counters, ...this.feeds.stats, topics: this.feeds.size };
  }

  /** Close both connections (pending publishes fail). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweep);
    this.feeds.close();
    // QUIT lets Redis finish what it was sent; a Redis that does not answer gets a second.
    await Promise.all(
      [this.commands, this.subscriber].map(async (client) => {
        if (client.status === 'ready') {
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            client.quit().catch(() => undefined),
            new Promise((resolve) => (timer = setTimeout(resolve, 1000))),
          ]);
          clearTimeout(timer);
        }
        client.disconnect();
      }),
    );
  }
}

function unavailable(message: string, cause?: unknown): DuetError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return createError('WS_ERR_BROKER_UNAVAILABLE', message + detail, cause === undefined ? {} : { cause });
}

function describe(client: Redis): string {
  const { host, port } = client.options;
  return `${host ?? '127.0.0.1'}:${port ?? 6379}`;
}
