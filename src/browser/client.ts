/**
 * `duet/client`: a WebSocket client that stays connected. It reconnects with backoff and
 * jitter, waits for the network to come back, detects dead connections with an application
 * ping, queues what is sent while offline, and (over duet's channel protocol, docs/protocol.md)
 * resubscribes after every reconnect so each topic's messages arrive exactly once.
 *
 *   const client = new DuetClient('wss://example.com/channel');
 *   client.subscribe('chat', (data, { seq }) => render(data));
 *   client.publish('chat', { text: 'hi' });
 *
 * Runs in browsers and in Node (inject a WebSocket: `new DuetClient(url, { WebSocket })`).
 * It uses no DOM types and touches browser globals only after checking they exist.
 */
import { backoffDelay } from './backoff.js';
import { defaultClock, resolveOptions, type DuetClientOptions, type ResolvedOptions } from './options.js';
import { SendQueue } from './send-queue.js';
import { TopicTracker, type MessageMeta, type ResetInfo, type TopicHandler } from './topics.js';
import {
  DuetError,
  type DuetClock,
  type DuetCloseInfo,
  type DuetEnvironment,
  type DuetStatus,
  type SendData,
  type SocketEventLike,
  type TopicPosition,
  type WebSocketConstructorLike,
  type WebSocketLike,
} from './types.js';

export { DuetError } from './types.js';
export { NO_RETRY_CODES, defaultShouldReconnect } from './options.js';
export { backoffCap, backoffDelay } from './backoff.js';
export type { DuetClientOptions } from './options.js';
export type { MessageMeta, ResetInfo, TopicHandler } from './topics.js';
export type {
  DuetClock,
  DuetCloseInfo,
  DuetEnvironment,
  DuetStatus,
  QueuePolicy,
  SendData,
  TopicPosition,
  WebSocketConstructorLike,
  WebSocketLike,
} from './types.js';

/** A delivered channel message (the `deliver` event). */
export interface Delivery extends MessageMeta {
  data: unknown;
}

/** The events of a DuetClient and what their listeners receive. */
export interface DuetClientEvents {
  /** The status changed. */
  status: DuetStatus;
  /** A connection opened (after resubscribing and flushing the queue). */
  open: void;
  /** A connection ended, for whatever reason. */
  close: DuetCloseInfo;
  /** Plain mode: MessageEvent.data; channel mode: every parsed server message object. */
  message: unknown;
  /** A socket error, a channel protocol error from the server, or a handler that threw. */
  error: Error;
  /** Recovery was impossible for a topic (new epoch, history too short, first subscribe has none). App should refetch state. */
  reset: ResetInfo;
  /** A heartbeat round trip, ms. */
  latency: number;
  /** (extra) A channel message was delivered to a topic's handlers: each seq once, in order. */
  deliver: Delivery;
  /** (extra) The retry counter changed. */
  retries: number;
}

type Listener<E extends keyof DuetClientEvents> = (payload: DuetClientEvents[E]) => void;

const OPEN = 1;

/** A reconnecting WebSocket client, optionally speaking duet's channel protocol. */
export class DuetClient {
  /** The URL every connection goes to. */
  readonly url: string;
  private readonly options: ResolvedOptions;
  private readonly WebSocketClass: WebSocketConstructorLike | undefined;
  private readonly env: DuetEnvironment | undefined;
  private readonly clock: DuetClock;
  private readonly queue: SendQueue;
  private readonly topics = new TopicTracker();
  private readonly listeners = new Map<keyof DuetClientEvents, Set<(payload: never) => void>>();

  private currentStatus: DuetStatus = 'closed';
  private retryCount = 0;
  private lastCloseInfo: DuetCloseInfo | null = null;
  private lastLatency: number | null = null;
  private current: WebSocketLike | null = null;
  /** Between open() and close() or giving up: the client wants to be connected. */
  private active = false;
  private watching = false;
  private waitingForNetwork = false;

  private reconnectTimer: unknown = null;
  private connectTimer: unknown = null;
  private stableTimer: unknown = null;
  private pingTimer: unknown = null;
  private pongTimer: unknown = null;
  private pingId = 0;
  private pendingPing: number | null = null;
  private pingSentAt = 0;
  private heardSincePing = false;

  /** @param url a ws:// or wss:// URL. */
  constructor(url: string, options: DuetClientOptions = {}) {
    this.url = url;
    this.options = resolveOptions(options);
    this.WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket;
    this.env = options.environment ?? (globalThis as DuetEnvironment);
    this.clock = options.clock ?? defaultClock();
    this.queue = new SendQueue(this.options.queueLimit, this.options.queuePolicy);
    if (this.options.autoOpen) this.open();
  }

  /** connecting | open | reconnecting | closed. */
  get status(): DuetStatus {
    return this.currentStatus;
  }
  /** Reconnect attempts since the last stable connection. */
  get retries(): number {
    return this.retryCount;
  }
  /** How the last connection ended, null before the first close. */
  get lastClose(): DuetCloseInfo | null {
    return this.lastCloseInfo;
  }
  /** ms of the last heartbeat round trip; null before the first pong. */
  get latency(): number | null {
    return this.lastLatency;
  }
  /** The current underlying socket (null between connections). */
  get socket(): WebSocketLike | null {
    return this.current;
  }
  /** (extra) Messages waiting in the offline queue. */
  get queued(): number {
    return this.queue.length;
  }
  /** (extra) Messages the full queue discarded so far. */
  get dropped(): number {
    return this.queue.dropped;
  }

  /** (Re)start after close() or after giving up; a no-op while active. */
  open(): void {
    if (this.active) return;
    this.active = true;
    this.setRetries(0);
    this.watch(true);
    this.setStatus('connecting');
    this.connect();
  }

  /** User close: no reconnect afterwards, every timer cleared. The queue is kept for a later open(). */
  close(code = 1000, reason = ''): void {
    if (code !== 1000 && (!Number.isInteger(code) || code < 3000 || code > 4999)) {
      throw new RangeError(`close code must be 1000 or 3000-4999, got ${code}`);
    }
    this.active = false;
    this.watch(false);
    this.clearTimer('reconnectTimer');
    this.waitingForNetwork = false;
    const socket = this.current;
    if (socket) {
      this.stopConnectionTimers();
      this.current = null;
      this.topics.unblock();
      // Keep hearing the socket's own close, to report its real code, unless reopened meanwhile.
      socket.onopen = socket.onmessage = socket.onerror = null;
      socket.onclose = (event: SocketEventLike) => {
        socket.onclose = null;
        if (!this.active) this.reportClose(closeInfo(event));
      };
      try {
        socket.close(code, reason);
      } catch (err) {
        this.emitError(err);
      }
    }
    this.setStatus('closed');
  }

  /** Drop the current socket as if the network failed (close 4000 'reconnect') and go through the normal reconnect path. */
  reconnect(): void {
    if (!this.active) return;
    if (this.current) this.drop({ code: 4000, reason: 'reconnect', wasClean: false }, 4000);
    else this.retryNow();
  }

  /** Send a raw message; queued while not open. */
  send(data: SendData): void {
    // A socket that is already CLOSING would silently discard the message: queue it instead.
    if (this.isOpen()) this.write(data);
    else this.queue.push(data);
  }

  /** Publish `data` (any JSON value) to a topic (channel mode); queued while not open. */
  publish(topic: string, data: unknown): void {
    this.requireChannel('publish');
    checkTopic(topic);
    if (data === undefined) throw new TypeError('publish data must be a JSON value (undefined is not)');
    this.send(JSON.stringify({ type: 'publish', topic, data }));
  }

  /**
   * Receive a topic's messages, each seq once and in order, also across reconnects. `from`
   * (extra): a position your app's state corresponds to, so the first subscribe recovers from it.
   * Returns the unsubscribe function.
   */
  subscribe(topic: string, handler: TopicHandler, from?: TopicPosition): () => void {
    this.requireChannel('subscribe');
    checkTopic(topic);
    if (typeof handler !== 'function') throw new TypeError('subscribe needs a handler function');
    if (this.topics.add(topic, handler, from) && this.isOpen()) this.write(JSON.stringify(this.topics.request(topic)));
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      if (this.topics.remove(topic, handler) && this.isOpen()) this.write(JSON.stringify({ type: 'unsubscribe', topic }));
    };
  }

  /** The last position seen in a topic, undefined before its first `subscribed`. */
  position(topic: string): TopicPosition | undefined {
    return this.topics.position(topic);
  }

  /** Listen to an event; returns the function that stops listening. */
  on<E extends keyof DuetClientEvents>(event: E, listener: (payload: DuetClientEvents[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const stored = listener as (payload: never) => void;
    set.add(stored);
    return () => void this.listeners.get(event)?.delete(stored);
  }

  /** (extra) Empty the offline queue. */
  clearQueue(): void {
    this.queue.clear();
  }

  // ---- connection lifecycle ----

  private connect(): void {
    if (this.offline()) {
      this.waitingForNetwork = true;
      return;
    }
    this.waitingForNetwork = false;
    const WebSocketClass = this.WebSocketClass;
    let socket: WebSocketLike;
    try {
      if (!WebSocketClass) throw new DuetError('DUET_NO_WEBSOCKET', 'no WebSocket implementation: pass options.WebSocket');
      socket = this.options.protocols === undefined ? new WebSocketClass(this.url) : new WebSocketClass(this.url, this.options.protocols);
    } catch (err) {
      // A bad URL or a missing WebSocket does not get better by retrying.
      this.emitError(err);
      this.giveUp();
      return;
    }
    this.current = socket;
    if (this.options.binaryType) socket.binaryType = this.options.binaryType;
    socket.onopen = () => this.onOpen(socket);
    socket.onmessage = (event: SocketEventLike) => this.onMessage(socket, event.data);
    socket.onerror = (event: SocketEventLike) => {
      if (socket === this.current) this.emitError(event.error instanceof Error ? event.error : new DuetError('DUET_SOCKET_ERROR', 'WebSocket error'));
    };
    socket.onclose = (event: SocketEventLike) => {
      if (socket === this.current) this.lost(closeInfo(event), false);
    };
    if (this.options.connectTimeout > 0) {
      this.connectTimer = this.clock.setTimeout(() => {
        this.connectTimer = null;
        this.drop({ code: 1006, reason: 'connect timeout', wasClean: false }, 4000);
      }, this.options.connectTimeout);
    }
  }

  private onOpen(socket: WebSocketLike): void {
    if (socket !== this.current) return;
    this.clearTimer('connectTimer');
    // Resubscribes first, then the queue in order, then the app hears 'open': whatever it
    // sends from its listener goes after what was sent while offline.
    if (this.options.channel) for (const topic of [...this.topics.names()]) this.write(JSON.stringify(this.topics.request(topic)));
    for (const data of this.queue.drain()) this.write(data);
    if (socket !== this.current) return;
    this.setStatus('open');
    this.emit('open', undefined);
    if (socket !== this.current) return;
    this.stableTimer = this.clock.setTimeout(() => {
      this.stableTimer = null;
      this.setRetries(0);
    }, this.options.stableAfter);
    this.schedulePing();
  }

  /** Abandon the current socket at once (it may be dead: waiting for its close could take minutes). */
  private drop(info: DuetCloseInfo, sendCode: number): void {
    const socket = this.current;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    try {
      socket.close(sendCode, info.reason);
    } catch {
      // Already closed or closing: nothing to tell it.
    }
    this.lost(info, true);
  }

  /** The connection ended. `forced`: we ended it ourselves (reconnect(), timeouts), so shouldReconnect is not asked. */
  private lost(info: DuetCloseInfo, forced: boolean): void {
    this.current = null;
    this.stopConnectionTimers();
    this.topics.unblock();
    this.reportClose(info);
    if (!this.active) return; // a close listener called close()
    let retry = forced;
    if (!forced) {
      try {
        retry = this.options.shouldReconnect(info);
      } catch (err) {
        this.emitError(err);
        retry = false;
      }
    }
    if (!retry || this.retryCount >= this.options.maxRetries) {
      this.giveUp();
      return;
    }
    const delay = backoffDelay(this.retryCount, this.options, this.options.random);
    this.setRetries(this.retryCount + 1);
    this.setStatus('reconnecting');
    if (!this.active || this.current) return; // a status listener closed or reconnected
    if (this.offline()) {
      this.waitingForNetwork = true;
      return;
    }
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private giveUp(): void {
    this.active = false;
    this.watch(false);
    this.clearTimer('reconnectTimer');
    this.waitingForNetwork = false;
    this.setStatus('closed');
  }

  /** Connect now instead of at the end of the backoff (network back, tab visible again). */
  private retryNow(): void {
    if (!this.active || this.current || this.offline()) return;
    if (this.reconnectTimer === null && !this.waitingForNetwork) return;
    this.clearTimer('reconnectTimer');
    this.connect();
  }

  private reportClose(info: DuetCloseInfo): void {
    this.lastCloseInfo = info;
    this.emit('close', info);
  }

  // ---- browser signals ----

  private readonly onOnline = (): void => this.retryNow();
  private readonly onOffline = (): void => this.probe();
  private readonly onVisibility = (): void => {
    if (this.env?.document?.visibilityState !== 'visible') return;
    this.retryNow();
    this.probe();
  };

  /** Start or stop listening to online/offline/visibilitychange, where they exist. */
  private watch(on: boolean): void {
    if (on === this.watching) return;
    this.watching = on;
    const env = this.env;
    const doc = env?.document;
    const method = on ? 'addEventListener' : 'removeEventListener';
    if (env && typeof env[method] === 'function') {
      env[method]('online', this.onOnline);
      env[method]('offline', this.onOffline);
    }
    if (doc && typeof doc[method] === 'function') doc[method]('visibilitychange', this.onVisibility);
  }

  private offline(): boolean {
    return this.env?.navigator?.onLine === false;
  }

  /** The network changed or the tab woke up: check an open connection now rather than at the next ping. */
  private probe(): void {
    if (this.currentStatus === 'open' && this.pendingPing === null && this.heartbeatOn()) {
      this.clearTimer('pingTimer');
      this.ping();
    }
  }

  // ---- heartbeat ----

  private heartbeatOn(): boolean {
    return this.options.channel && this.options.heartbeatInterval > 0;
  }

  private schedulePing(): void {
    if (!this.heartbeatOn()) return;
    this.pingTimer = this.clock.setTimeout(() => {
      this.pingTimer = null;
      this.ping();
    }, this.options.heartbeatInterval);
  }

  private ping(): void {
    if (!this.isOpen()) return;
    this.pendingPing = ++this.pingId;
    this.pingSentAt = this.clock.now();
    this.heardSincePing = false;
    this.write(JSON.stringify({ type: 'ping', id: this.pendingPing }));
    this.clearTimer('pongTimer');
    this.pongTimer = this.clock.setTimeout(() => {
      this.pongTimer = null;
      // Anything received proves the connection alive (the pong may have been refused by the
      // server's rate limit): ping again rather than dropping a working connection.
      if (this.heardSincePing) this.ping();
      else this.drop({ code: 1006, reason: 'heartbeat timeout', wasClean: false }, 4000);
    }, this.options.heartbeatTimeout);
  }

  private onPong(id: unknown): void {
    if (id !== this.pendingPing) return;
    this.pendingPing = null;
    this.clearTimer('pongTimer');
    this.lastLatency = this.clock.now() - this.pingSentAt;
    this.emit('latency', this.lastLatency);
    if (this.isOpen() && this.pingTimer === null) this.schedulePing();
  }

  private stopConnectionTimers(): void {
    this.clearTimer('connectTimer');
    this.clearTimer('stableTimer');
    this.clearTimer('pingTimer');
    this.clearTimer('pongTimer');
    this.pendingPing = null;
  }

  // ---- messages ----

  private onMessage(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.current) return;
    this.heardSincePing = true;
    if (!this.options.channel) {
      this.emit('message', data);
      return;
    }
    if (typeof data !== 'string') {
      this.emitError(new DuetError('DUET_BAD_MESSAGE', 'a binary message on a channel connection'));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(data);
    } catch {
      this.emitError(new DuetError('DUET_BAD_MESSAGE', 'a channel message that is not JSON'));
      return;
    }
    if (typeof msg !== 'object' || msg === null) {
      this.emitError(new DuetError('DUET_BAD_MESSAGE', 'a channel message that is not a JSON object'));
      return;
    }
    this.handle(msg as Record<string, unknown>);
    this.emit('message', msg);
  }

  private handle(msg: Record<string, unknown>): void {
    const topic = typeof msg.topic === 'string' ? msg.topic : undefined;
    switch (msg.type) {
      case 'pong':
        this.onPong(msg.id);
        return;
      case 'subscribed':
        if (topic !== undefined && typeof msg.epoch === 'string' && typeof msg.seq === 'number') {
          const reset = this.topics.subscribed(topic, msg.epoch, msg.seq, msg.recovered === true);
          if (reset) this.emit('reset', reset);
        }
        return;
      case 'message':
        if (topic !== undefined && typeof msg.seq === 'number') this.onTopicMessage(topic, msg.seq, msg.data);
        return;
      case 'error': {
        const code = typeof msg.code === 'string' ? msg.code : 'unknown';
        // A refused subscribe (or a rate-limited one, which names no topic) must not block the next.
        if (topic !== undefined || code === 'rate_limited') this.topics.unblock(topic);
        this.emitError(new DuetError(code, typeof msg.message === 'string' ? msg.message : code, topic));
        return;
      }
    }
  }

  private onTopicMessage(topic: string, seq: number, data: unknown): void {
    const verdict = this.topics.message(topic, seq);
    if (verdict === 'gap') {
      // Messages were skipped (the server's slow-consumer policy): ask for them again.
      this.write(JSON.stringify(this.topics.request(topic)));
      return;
    }
    if (verdict !== 'deliver') return;
    const meta = { topic, seq, epoch: this.topics.epoch(topic) };
    for (const handler of this.topics.handlers(topic)) {
      try {
        handler(data, meta);
      } catch (err) {
        this.emitError(err, true);
      }
    }
    this.emit('deliver', { ...meta, data });
  }

  // ---- helpers ----

  private isOpen(): boolean {
    return this.currentStatus === 'open' && this.current !== null && this.current.readyState === OPEN;
  }

  private write(data: SendData): void {
    try {
      this.current?.send(data);
    } catch (err) {
      this.emitError(err);
    }
  }

  private requireChannel(what: string): void {
    if (!this.options.channel) throw new DuetError('DUET_NOT_CHANNEL', `${what}() needs channel mode (options.channel is false)`);
  }

  private setStatus(status: DuetStatus): void {
    if (status === this.currentStatus) return;
    this.currentStatus = status;
    this.emit('status', status);
  }

  private setRetries(n: number): void {
    if (n === this.retryCount) return;
    this.retryCount = n;
    this.emit('retries', n);
  }

  private clearTimer(name: 'reconnectTimer' | 'connectTimer' | 'stableTimer' | 'pingTimer' | 'pongTimer'): void {
    if (this[name] !== null) {
      this.clock.clearTimeout(this[name]);
      this[name] = null;
    }
  }

  /** `loud`: also print it when nobody listens (a handler's bug should not vanish). */
  private emitError(err: unknown, loud = false): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (loud && !this.listeners.get('error')?.size) globalThis.console?.error(error);
    this.emit('error', error);
  }

  private emit<E extends keyof DuetClientEvents>(event: E, payload: DuetClientEvents[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E>)(payload);
      } catch (err) {
        // A listener's exception must not break the connection logic that emitted the event.
        globalThis.console?.error(err);
      }
    }
  }
}

function closeInfo(event: SocketEventLike): DuetCloseInfo {
  return { code: event.code ?? 1006, reason: event.reason ?? '', wasClean: event.wasClean ?? false };
}

function checkTopic(topic: string): void {
  if (typeof topic !== 'string' || topic.length === 0) throw new TypeError('topic must be a non-empty string');
}
