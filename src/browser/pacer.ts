/**
 * The one token bucket every message of a connection goes through. A channel server limits
 * each connection's rate (every client message costs a token, a `batch` one) and announces
 * that limit in its first message, `limits`; a client that stays inside the same bucket is
 * never refused. Until the announcement arrives the client uses a conservative bucket of
 * its own (`flushBurst`, one token per `flushInterval`).
 */
import type { DuetClock } from './types.js';

/**
 * The share of the server's refill rate the client uses. Messages spaced by the client's
 * clock can arrive a few ms closer together than they left; the 10 % left over refills the
 * server's bucket faster than the client drains it, so that jitter never finds it empty.
 */
export const SERVER_RATE_SHARE = 0.9;

/** Rounding: 0.3 + 0.7 tokens is a token. */
const EPSILON = 1e-9;

export class Pacer {
  private readonly clock: DuetClock;
  /** Most tokens the bucket holds; Infinity: no limit. */
  private capacity = Infinity;
  /** ms per token regained. */
  private msPerToken = 0;
  private tokens = 0;
  private at = 0;
  /** Spent since the last reset(): what the server's fresh bucket has lost too. */
  private spent = 0;
  /** No token before this time (a `rate_limited` answer said when). */
  private pausedUntil = 0;

  constructor(clock: DuetClock) {
    this.clock = clock;
  }

  /**
   * A connection opened: the server's bucket for it is full, so is ours. `capacity` tokens,
   * one more every `interval` ms; `interval` 0 (or Infinity tokens): no limit.
   */
  reset(capacity: number, interval: number): void {
    if (interval > 0) this.set(capacity, interval);
    else this.set(Infinity, 0);
    this.tokens = this.capacity;
    this.spent = 0;
    this.pausedUntil = 0;
  }

  /**
   * The server announced its limit: `messages` per `perMs` ms, or null for none. What was
   * spent since the connection opened is taken from the new bucket; what refilled meanwhile
   * is not counted, so the estimate never runs ahead of the server's.
   */
  announce(rate: { messages: number; perMs: number } | null): void {
    if (rate === null) {
      this.set(Infinity, 0);
      return;
    }
    const current = this.available();
    this.set(rate.messages, rate.perMs / rate.messages / SERVER_RATE_SHARE);
    this.tokens = Math.max(0, Math.min(current, this.capacity - this.spent));
  }

  /** Take a token if there is one now. */
  take(): boolean {
    if (this.available() < 1 - EPSILON) return false;
    if (this.capacity !== Infinity) this.tokens--;
    this.spent++;
    return true;
  }

  /** ms until take() can succeed (0: now). */
  wait(): number {
    const paused = Math.max(0, this.pausedUntil - this.clock.now());
    if (this.capacity === Infinity) return paused;
    // During a pause the bucket is empty, and it refills from the pause's end.
    const tokens = paused > 0 ? this.tokens : this.available();
    return paused + (tokens >= 1 - EPSILON ? 0 : Math.ceil((1 - tokens) * this.msPerToken - EPSILON));
  }

  /** The server refused a message for its rate: nothing goes out for `ms`, and the bucket starts empty then. */
  pause(ms: number): void {
    const until = this.clock.now() + ms;
    if (until > this.pausedUntil) this.pausedUntil = until;
    if (this.capacity !== Infinity) {
      this.tokens = 0;
      this.at = this.pausedUntil;
    }
  }

  private set(capacity: number, msPerToken: number): void {
    this.capacity = capacity;
    this.msPerToken = msPerToken;
    this.at = Math.max(this.clock.now(), this.pausedUntil);
  }

  /** Tokens now (refilled up to the capacity; none during a pause). */
  private available(): number {
    const now = this.clock.now();
    if (now < this.pausedUntil) return 0;
    if (this.capacity === Infinity) return Infinity;
    if (now > this.at) {
      this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) / this.msPerToken);
      this.at = now;
    }
    return this.tokens;
  }
}
