/**
 * `duet/client`: a WebSocket client that stays connected. It reconnects with backoff and
 * jitter, waits for the network to come back, detects dead connections with an application
 * ping, queues what is sent while offline, paces what it sends to the server's announced
 * rate, and (over duet's channel protocol, docs/protocol.md) resubscribes after every
 * reconnect so each topic's messages arrive exactly once, and resends unacknowledged
 * publishes with their ids so each is published exactly once.
 *
 *   const client = new DuetClient('wss://example.com/channel');
 *   client.subscribe('chat', (data, { seq }) => render(data));
 *   const seq = await client.publish('chat', { text: 'hi' });
 *
 * Runs in browsers and in Node (inject a WebSocket: `new DuetClient(url, { WebSocket })`).
 * It uses no DOM types and touches browser globals only after checking they exist.
 *
 * Why one file of ~570 lines: DuetClient is the state machine of one reconnecting connection
 * (connecting, open, waiting, closed) and its public API; the parts that stand alone already
 * have their files (backoff, heartbeat, network, sender, pacer, send-queue, topics, channel,
 * options).
 */
import { backoffDelay } from './backoff.js';
import { ChannelSession, type ChannelIdentity } from './channel.js';
import { Emitter, type DuetClientEvents } from './events.js';
import { Heartbeat } from './heartbeat.js';
import type { ServerLimits } from './limits.js';
import { NetworkWatcher } from './network.js';
import { defaultClock, resolveOptions, retryHint, type DuetClientOptions, type ResolvedOptions } from './options.js';
import { Sender } from './sender.js';
import type { TopicHandler } from './topics.js';
import { DuetError } from './errors.js';
import {
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

export { CLIENT_ERROR_CODES, CLIENT_RENAMED_ERROR_CODES, DuetError } from './errors.js';
export type { ClientErrorInfo, DuetClientErrorCode } from './errors.js';
export { NO_RETRY_CODES, defaultShouldReconnect, retryHint } from './options.js';
export type { ServerLimits } from './limits.js';
export { backoffCap, backoffDelay } from './backoff.js';
export type { DuetClientOptions } from './options.js';
export type { Delivery, DuetClientEvents } from './events.js';
export type { MessageMeta, MessageSender, ResetInfo, TopicHandler } from './topics.js';
export type { ChannelIdentity } from './channel.js';
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

const OPEN = 1;

/** A reconnecting WebSocket client, optionally speaking duet's channel protocol. */
export class DuetClient {
  /** The URL every connection goes to. */
  readonly url: string;
  private readonly options: ResolvedOptions;
  private readonly WebSocketClass: WebSocketConstructorLike | undefined;
  private readonly network: NetworkWatcher;
  private readonly heartbeat: Heartbeat;
  private readonly clock: DuetClock;
  private readonly sender: Sender;
  private readonly channel: ChannelSession;
  private readonly events = new Emitter();

  private currentStatus: DuetStatus = 'closed';
  private retryCount = 0;
  private lastCloseInfo: DuetCloseInfo | null = null;
  private lastLatency: number | null = null;
  private current: WebSocketLike | null = null;
  /** Between open() and close() or giving up: the client wants to be connected. */
  private active = false;
  private waitingForNetwork = false;

  private reconnectTimer: unknown = null;
  private connectTimer: unknown = null;
  private stableTimer: unknown = null;
  /** The current connection has not been confirmed yet (see confirm()). */
  private confirming = false;

  /** @param url a ws:// or wss:// URL. */
  constructor(url: string, options: DuetClientOptions = {}) {
    this.url = url;
    this.options = resolveOptions(options);
    this.WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket;
    // Mistakes that no retry fixes are thrown here, where the caller sees them (an error event
    // from inside the constructor would reach no listener).
    if (!this.WebSocketClass)
      throw new DuetError(
        'WS_ERR_NO_WEBSOCKET',
        "no WebSocket implementation: pass options.WebSocket (for example duet's WebSocket in Node 20)",
      );
    checkUrl(url);
    this.clock = options.clock ?? defaultClock();
    // The cast is needed where this file is compiled without the DOM lib (the Node tests).
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    this.network = new NetworkWatcher(options.environment ?? (globalThis as DuetEnvironment), {
      online: () => this.retryNow(),
      offline: () => this.heartbeat.probe(),
      visible: () => {
        this.retryNow();
        this.heartbeat.probe();
      },
    });
    const heartbeatInterval = this.options.channel ? this.options.heartbeatInterval : 0;
    this.heartbeat = new Heartbeat(this.clock, heartbeatInterval, this.options.heartbeatTimeout, {
      ping: (id) => this.sender.sendPing(JSON.stringify({ type: 'ping', id })),
      dead: () => this.drop({ code: 1006, reason: 'heartbeat timeout', wasClean: false }, 4000),
      latency: (ms) => {
        this.lastLatency = ms;
        this.events.emit('latency', ms);
      },
    });
    this.channel = new ChannelSession({
      isOpen: () => this.isOpen(),
      write: (text) => this.sender.sendControl(text),
      emit: (event, payload) => this.emit(event, payload),
      error: (err, loud) => this.emitError(err, loud),
      pong: (id) => this.heartbeat.pong(id),
      pingAnswered: (id) => this.heartbeat.answered(id),
      resume: () => this.sender.pump(),
      limits: (limits) => this.sender.announce(limits),
      noLimits: () => this.sender.noLimits(),
      ack: (id, seq) => this.sender.ack(id, seq),
      refused: (id, code, message, topic, retryAfter) => this.sender.refused(id, code, message, topic, retryAfter),
      rateLimited: (retryAfter) => this.sender.rateLimited(retryAfter),
      clock: this.clock,
    });
    this.sender = new Sender(this.clock, this.options, {
      writable: () => this.current !== null && this.current.readyState === OPEN,
      write: (data) => this.write(data),
      nextSubscribe: () => this.channel.nextSubscribe(),
      subscribesWaiting: () => this.channel.waiting,
      error: (err) => this.emitError(err),
      pending: (count) => this.emit('pending', count),
    });
    if (this.options.autoOpen) this.open();
    this.constructing = false;
  }

  /** Errors raised while the constructor runs are emitted a microtask later, once listeners exist. */
  private constructing = true;

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
  /** (extra) Messages waiting to be sent: while not open, or paced after a reconnect or a burst. */
  get queued(): number {
    return this.sender.queued;
  }
  /** Publishes not yet acknowledged by the server (waiting, or sent and waiting for the `ack`). */
  get pending(): number {
    return this.sender.pending;
  }
  /** (extra) Messages the full queue discarded so far. */
  get dropped(): number {
    return this.sender.dropped;
  }
  /** The current connection's `limits` from the server; undefined before they arrive (or from a server that sends none). */
  get limits(): ServerLimits | undefined {
    return this.sender.serverLimits;
  }

  /** (Re)start after close() or after giving up; a no-op while active. */
  open(): void {
    if (this.active) return;
    this.active = true;
    this.setRetries(0);
    this.network.watch(true);
    this.setStatus('connecting');
    this.connect();
  }

  /**
   * User close: no reconnect afterwards, every timer cleared. Unacknowledged publishes are
   * rejected (WS_ERR_PUBLISH_CANCELLED); raw messages of send() stay queued for a later open().
   */
  close(code = 1000, reason = ''): void {
    if (code !== 1000 && (!Number.isInteger(code) || code < 3000 || code > 4999)) {
      throw new RangeError(`close code must be 1000 or 3000-4999, got ${code}`);
    }
    this.active = false;
    this.sender.cancel('close() was called', false);
    this.network.watch(false);
    this.clearTimer('reconnectTimer');
    this.waitingForNetwork = false;
    const socket = this.current;
    if (socket) {
      this.stopConnectionTimers();
      this.current = null;
      this.channel.lost();
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

  /**
   * Send a raw message. Channel mode: through the pacer, in order with publishes; plain mode:
   * at once when open and nothing waits. Queued while not open.
   */
  send(data: SendData): void {
    this.sender.send(data);
  }

  /**
   * Publish `data` (any JSON value) to a topic (channel mode). Resolves with the message's
   * `seq` once the server acknowledged it; queued while not open, and sent again after a
   * reconnect (same id: the server publishes it once) until acknowledged. Rejects only when
   * it can never be sent: dropped by the queue's policy (WS_ERR_PUBLISH_DROPPED), close(),
   * clearQueue() or giving up (WS_ERR_PUBLISH_CANCELLED), refused by the server (its code,
   * e.g. `forbidden`), too big (WS_ERR_PUBLISH_TOO_BIG), or sent to a server that can no
   * longer tell whether it was published (WS_ERR_OUTCOME_UNKNOWN). Ignoring the promise is
   * fine: a rejection is never reported as unhandled.
   */
  publish(topic: string, data: unknown): Promise<number> {
    this.requireChannel('publish');
    checkTopic(topic);
    if (data === undefined) throw new TypeError('publish data must be a JSON value (undefined is not)');
    return this.sender.publish(topic, data);
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
    return this.channel.subscribe(topic, handler, from);
  }

  /**
   * Give this client a nick on the server (channel mode): sent as `hello` now if open, and
   * first on every connection. The server stamps it, with the connection's id, on everything
   * this client publishes (`meta.from` for the receivers); nobody can publish under another
   * connection's id.
   */
  setNick(nick: string): void {
    this.requireChannel('setNick');
    if (typeof nick !== 'string' || nick.length === 0) throw new TypeError('nick must be a non-empty string');
    this.channel.setNick(nick);
  }

  /** This connection's `{ id, nick }` as the server answered the nick (null before that, and while not connected). */
  get identity(): ChannelIdentity | null {
    return this.channel.identity;
  }

  /** The last position seen in a topic, undefined before its first `subscribed`. */
  position(topic: string): TopicPosition | undefined {
    return this.channel.position(topic);
  }

  /** Listen to an event; returns the function that stops listening. */
  on<E extends keyof DuetClientEvents>(event: E, listener: (payload: DuetClientEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** (extra) Empty the queue: raw messages are dropped, unacknowledged publishes rejected (WS_ERR_PUBLISH_CANCELLED). */
  clearQueue(): void {
    this.sender.cancel('clearQueue() was called', true);
  }

  // ---- connection lifecycle ----

  private connect(): void {
    if (this.network.offline) {
      this.waitingForNetwork = true;
      return;
    }
    this.waitingForNetwork = false;
    const WebSocketClass = this.WebSocketClass;
    let socket: WebSocketLike;
    try {
      if (!WebSocketClass)
        throw new DuetError('WS_ERR_NO_WEBSOCKET', 'no WebSocket implementation: pass options.WebSocket');
      socket =
        this.options.protocols === undefined
          ? new WebSocketClass(this.url)
          : new WebSocketClass(this.url, this.options.protocols);
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
      if (socket === this.current)
        this.emitError(event.error instanceof Error ? event.error : new DuetError('WS_ERR_SOCKET', 'WebSocket error'));
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
    // Resubscribes first, then the queue in order (as far as the pacer allows now), then the
    // app hears 'open': whatever it sends from its listener goes after what was sent while offline.
    this.sender.opened();
    if (this.options.channel) this.channel.resubscribe();
    this.sender.pump();
    if (socket !== this.current) return;
    this.setStatus('open');
    this.emit('open', undefined);
    if (socket !== this.current) return;
    // The retry counter starts over when the connection is confirmed (channel: the server's
    // limits and every subscription answered), or, with nothing to confirm, after stableAfter.
    this.confirming = this.options.channel;
    this.stableTimer = this.clock.setTimeout(() => {
      this.stableTimer = null;
      this.confirming = false;
      this.setRetries(0);
    }, this.options.stableAfter);
    this.heartbeat.start();
    this.confirm();
  }

  /**
   * Start the backoff over once this connection proved itself: the server spoke first
   * (`limits`, or any message from a server that sends none) and answered every subscribe.
   * A connection that dies before that keeps the delay growing, so a server that accepts
   * and drops at once is not hammered.
   */
  private confirm(): void {
    if (!this.confirming || !this.sender.limitsKnown || !this.channel.settled) return;
    this.confirming = false;
    this.clearTimer('stableTimer');
    this.setRetries(0);
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
    this.channel.lost();
    this.reportClose(info);
    // Listeners run from here on (close, shouldReconnect, retries, status) may call close(),
    // open() or reconnect(); what they did stands, so each step checks before going on.
    if (this.superseded()) return;
    let retry = forced;
    if (!forced) {
      try {
        retry = this.options.shouldReconnect(info);
      } catch (err) {
        this.emitError(err);
        retry = false;
      }
      if (this.superseded()) return;
    }
    if (!retry || this.retryCount >= this.options.maxRetries) {
      this.giveUp();
      return;
    }
    // A server closing with 1013 says when to come back ("retry after N ms"): no sooner.
    const delay = Math.max(backoffDelay(this.retryCount, this.options, this.options.random), retryHint(info));
    this.setRetries(this.retryCount + 1);
    if (this.superseded()) return;
    this.setStatus('reconnecting');
    if (this.superseded()) return;
    if (this.network.offline) {
      this.waitingForNetwork = true;
      return;
    }
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  /** A listener closed the client or started another connection meanwhile. */
  private superseded(): boolean {
    return !this.active || this.current !== null;
  }

  private giveUp(): void {
    this.active = false;
    const last = this.lastCloseInfo;
    this.sender.cancel(
      last === null
        ? 'the client gave up connecting'
        : `the client stopped reconnecting after close ${last.code}${last.reason ? ` '${last.reason}'` : ''}`,
      false,
    );
    this.network.watch(false);
    this.clearTimer('reconnectTimer');
    this.waitingForNetwork = false;
    this.setStatus('closed');
  }

  /** Connect now instead of at the end of the backoff (network back, tab visible again). */
  private retryNow(): void {
    if (!this.active || this.current || this.network.offline) return;
    if (this.reconnectTimer === null && !this.waitingForNetwork) return;
    this.clearTimer('reconnectTimer');
    this.connect();
  }

  private reportClose(info: DuetCloseInfo): void {
    this.lastCloseInfo = info;
    this.emit('close', info);
  }

  private stopConnectionTimers(): void {
    this.clearTimer('connectTimer');
    this.clearTimer('stableTimer');
    this.confirming = false;
    this.heartbeat.stop();
    this.sender.lost();
  }

  // ---- messages ----

  private onMessage(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.current) return;
    if (this.options.channel) {
      this.channel.receive(data);
      if (socket === this.current) this.confirm();
    } else this.emit('message', data);
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
    if (!this.options.channel)
      throw new DuetError('WS_ERR_NOT_CHANNEL', `${what}() needs channel mode (options.channel is false)`);
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

  private clearTimer(name: 'reconnectTimer' | 'connectTimer' | 'stableTimer'): void {
    if (this[name] !== null) {
      this.clock.clearTimeout(this[name]);
      this[name] = null;
    }
  }

  /** `loud`: also print it when nobody listens (a handler's bug should not vanish). */
  private emitError(err: unknown, loud = false): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.constructing) {
      queueMicrotask(() => this.emitError(error, loud));
      return;
    }
    if (loud && !this.events.has('error')) globalThis.console?.error(error);
    this.emit('error', error);
  }

  private emit<E extends keyof DuetClientEvents>(event: E, payload: DuetClientEvents[E]): void {
    this.events.emit(event, payload);
  }
}

/** The URL rules of `new WebSocket(url)`: ws, wss, http or https, relative to the page if there is one. */
function checkUrl(url: string): void {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  let parsed: URL;
  try {
    parsed = new URL(url, base);
  } catch {
    throw new DuetError('WS_ERR_INVALID_URL', `invalid URL: ${String(url)}`);
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(parsed.protocol)) {
    throw new DuetError(
      'WS_ERR_INVALID_URL',
      `the URL's scheme must be ws, wss, http or https, not ${parsed.protocol.slice(0, -1)}`,
    );
  }
}

function closeInfo(event: SocketEventLike): DuetCloseInfo {
  return { code: event.code ?? 1006, reason: event.reason ?? '', wasClean: event.wasClean ?? false };
}

function checkTopic(topic: string): void {
  if (typeof topic !== 'string' || topic.length === 0) throw new TypeError('topic must be a non-empty string');
}
