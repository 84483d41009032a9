/**
 * A token bucket kept as two plain numbers (tokens, last refill time) inside a caller's own
 * per-connection object: no timer, no closure and no object of its own per connection. The
 * channel uses one for its message rate and one, in bytes, for recovery replies.
 */

/** A bucket of `capacity` tokens that regains `capacity` every `perMs` milliseconds. */
export interface BucketRate {
  capacity: number;
  perMs: number;
}

/**
 * The tokens a bucket holds at `now`, refilled from `tokens` at time `at`, never above
 * `rate.capacity`. A clock that went backwards refills nothing.
 */
export function refilled(tokens: number, at: number, now: number, rate: BucketRate): number {
  const elapsed = now - at;
  if (elapsed <= 0) return tokens;
  return Math.min(rate.capacity, tokens + (elapsed * rate.capacity) / rate.perMs);
}

/** Milliseconds until a bucket holding `tokens` holds `wanted` (0 if it already does). */
export function waitFor(tokens: number, wanted: number, rate: BucketRate): number {
  if (tokens >= wanted) return 0;
  return Math.ceil(((wanted - tokens) * rate.perMs) / rate.capacity);
}
