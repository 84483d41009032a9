/**
 * DuetClient options: every default stated once, here, with the reason for it.
 */
import type { DuetClock, DuetCloseInfo, DuetEnvironment, QueuePolicy, WebSocketConstructorLike } from './types.js';

/** Options of `new DuetClient(url, options)`. Every field is optional. */
export interface DuetClientOptions {
  /** Subprotocols offered to the server. */
  protocols?: string | string[];
  /** WebSocket constructor; default globalThis.WebSocket (inject duet's WebSocket in Node 20, a fake in tests). */
  WebSocket?: WebSocketConstructorLike;
  /** Speak the duet channel protocol (subscribe/publish/ping). Default true. false = plain endpoint: only send/message, no heartbeat. */
  channel?: boolean;
  /** Backoff cap of the first retry, ms. Default 500: quick enough that a blip goes unnoticed. */
  minDelay?: number;
  /** Largest backoff cap, ms. Default 30000: a dead server is probed twice a minute per client. */
  maxDelay?: number;
  /** Growth of the cap per attempt. Default 2. */
  factor?: number;
  /** Reconnect attempts before giving up (status 'closed'). Default Infinity: a page should come back whenever the server does. */
  maxRetries?: number;
  /**
   * ms after which an open connection resets the retry counter even if it was never
   * confirmed. Channel mode resets it sooner, as soon as the connection is confirmed (the
   * server's `limits` arrived and every subscribe was answered); plain endpoints have nothing
   * to confirm. Default 5000, so a server that accepts and drops at once still gets backed off.
   */
  stableAfter?: number;
  /** Return false to stop reconnecting after this close. Default: no retry after 1002, 1003, 1007, 1008, 1009, 1010 (the server refused what this client sends; retrying would repeat it). After 1013 the client waits at least the delay the reason names (`retry after N ms`). */
  shouldReconnect?: (close: DuetCloseInfo) => boolean;
  /** ms between application pings (channel mode only); 0 = off. Default 20000: below the idle timeouts of common proxies (30-60 s). */
  heartbeatInterval?: number;
  /**
   * ms a ping may go unanswered (whatever else arrives) before the socket is treated as dead
   * and replaced. Default 10000: with the interval, a connection dead in either direction is
   * replaced within 30 s.
   */
  heartbeatTimeout?: number;
  /** ms an opening handshake may take before the attempt is abandoned and retried. Default 10000 (extra option): browsers can wait minutes on a stalled TCP connect. */
  connectTimeout?: number;
  /** Messages kept: raw ones not yet sent, publishes not yet acknowledged. Default 1000. */
  queueLimit?: number;
  /**
   * The pacer's burst until the server announces its limits (channel mode), and always on a
   * plain endpoint's queue: messages that may go at once when a connection opens. Default 10:
   * half of `duet serve`'s burst of 20, safe against any server with a limit of 10 or more.
   */
  flushBurst?: number;
  /**
   * The pacer's ms per message until the server announces its limits, and always on a plain
   * endpoint's queue; 0 = no pacing. Default 100 (10 per second), so that a client that knows
   * nothing yet of the server stays under any common limit.
   */
  flushInterval?: number;
  /** What gives when the queue is full. Default 'drop-oldest': the newest state usually matters most. */
  queuePolicy?: QueuePolicy;
  /** Connect in the constructor. Default true. */
  autoOpen?: boolean;
  /** binaryType of each socket (plain mode); default: the WebSocket's own ('blob' in browsers). */
  binaryType?: 'blob' | 'arraybuffer';
  /** Browser globals to watch (online/offline, visibility). Default globalThis; tests inject a fake. */
  environment?: DuetEnvironment;
  /** Timers and clock. Default the global setTimeout/clearTimeout and performance.now(). */
  clock?: DuetClock;
  /** Random numbers in [0, 1) for the jitter. Default Math.random. */
  random?: () => number;
}

/** Close codes after which the default shouldReconnect gives up. */
export const NO_RETRY_CODES: readonly number[] = [1002, 1003, 1007, 1008, 1009, 1010];

/** The default shouldReconnect. */
export function defaultShouldReconnect(close: DuetCloseInfo): boolean {
  return !NO_RETRY_CODES.includes(close.code);
}

/** Try Again Later: the server is overloaded or this client sent too fast. */
const TRY_AGAIN_LATER = 1013;
/** The longest wait a close reason may ask for: beyond it, maxDelay's reasoning applies. */
const MAX_HINT_MS = 300_000;

/**
 * The ms a close 1013 asks the client to wait (`retry after N ms` in its reason, as duet's
 * channel sends when a connection kept sending past its rate limit); 0 for other closes.
 */
export function retryHint(close: DuetCloseInfo): number {
  if (close.code !== TRY_AGAIN_LATER) return 0;
  const match = /retry after (\d+) ms/.exec(close.reason);
  return match ? Math.min(Number(match[1]), MAX_HINT_MS) : 0;
}

export interface ResolvedOptions {
  protocols: string | string[] | undefined;
  channel: boolean;
  minDelay: number;
  maxDelay: number;
  factor: number;
  maxRetries: number;
  stableAfter: number;
  shouldReconnect: (close: DuetCloseInfo) => boolean;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  connectTimeout: number;
  queueLimit: number;
  queuePolicy: QueuePolicy;
  flushBurst: number;
  flushInterval: number;
  autoOpen: boolean;
  binaryType: 'blob' | 'arraybuffer' | undefined;
  random: () => number;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new RangeError(`${name} must be a number >= 0, got ${String(value)}`);
  }
  return value;
}

// setTimeout treats delays past 2^31 - 1 ms as 0 (it fires at once): refuse them.
const MAX_DELAY = 2_147_483_647;

function delay(name: string, value: number | undefined, fallback: number): number {
  const ms = nonNegative(name, value, fallback);
  if (ms > MAX_DELAY) throw new RangeError(`${name} must be at most ${MAX_DELAY} ms, got ${ms}`);
  return ms;
}

/** Fill in the defaults and check the values (RangeError/TypeError for bad ones). */
export function resolveOptions(options: DuetClientOptions): ResolvedOptions {
  const minDelay = delay('minDelay', options.minDelay, 500);
  const maxDelay = delay('maxDelay', options.maxDelay, 30_000);
  const factor = nonNegative('factor', options.factor, 2);
  if (factor < 1) throw new RangeError(`factor must be >= 1, got ${factor}`);
  const queueLimit = nonNegative('queueLimit', options.queueLimit, 1000);
  if (!Number.isInteger(queueLimit)) throw new RangeError(`queueLimit must be an integer, got ${queueLimit}`);
  const flushBurst = nonNegative('flushBurst', options.flushBurst, 10);
  if (!Number.isInteger(flushBurst) && flushBurst !== Infinity)
    throw new RangeError(`flushBurst must be an integer, got ${flushBurst}`);
  const flushInterval = delay('flushInterval', options.flushInterval, 100);
  const queuePolicy = options.queuePolicy ?? 'drop-oldest';
  if (!['drop-oldest', 'drop-newest', 'error'].includes(queuePolicy)) {
    throw new TypeError(`queuePolicy must be 'drop-oldest', 'drop-newest' or 'error', got ${String(queuePolicy)}`);
  }
  const heartbeatInterval = delay('heartbeatInterval', options.heartbeatInterval, 20_000);
  const heartbeatTimeout = delay('heartbeatTimeout', options.heartbeatTimeout, 10_000);
  if (heartbeatInterval > 0 && heartbeatTimeout === 0)
    throw new RangeError('heartbeatTimeout must be > 0 when the heartbeat is on');
  if (options.shouldReconnect !== undefined && typeof options.shouldReconnect !== 'function') {
    throw new TypeError('shouldReconnect must be a function');
  }
  // Checked here: it is first called at the first reconnect, inside the socket's close event.
  if (options.random !== undefined && typeof options.random !== 'function') {
    throw new TypeError('random must be a function');
  }
  return {
    protocols: options.protocols,
    channel: options.channel ?? true,
    minDelay,
    maxDelay,
    factor,
    maxRetries: nonNegative('maxRetries', options.maxRetries, Infinity),
    stableAfter: delay('stableAfter', options.stableAfter, 5000),
    shouldReconnect: options.shouldReconnect ?? defaultShouldReconnect,
    heartbeatInterval,
    heartbeatTimeout,
    connectTimeout: delay('connectTimeout', options.connectTimeout, 10_000),
    queueLimit,
    queuePolicy,
    flushBurst,
    flushInterval,
    autoOpen: options.autoOpen ?? true,
    binaryType: options.binaryType,
    random: options.random ?? Math.random,
  };
}

/** The defaults for the globals, looked up when a client is made (never at import, for SSR). */
export function defaultClock(): DuetClock {
  return {
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    now: () => (typeof performance !== 'undefined' ? performance.now() : Date.now()),
  };
}
