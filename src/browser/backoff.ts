/**
 * Reconnect delays: exponential backoff with "full jitter" (a uniformly random delay between
 * 0 and the exponential cap). Spreading reconnects over the whole window keeps a crowd of
 * clients that lost the same server from coming back in lockstep.
 */

/** The backoff parameters (see DuetClientOptions for their defaults). */
export interface BackoffOptions {
  minDelay: number;
  maxDelay: number;
  factor: number;
}

/** The cap of attempt `attempt` (0-based): min(maxDelay, minDelay * factor^attempt). */
export function backoffCap(attempt: number, { minDelay, maxDelay, factor }: BackoffOptions): number {
  if (minDelay <= 0) return 0;
  const exp = minDelay * factor ** attempt;
  // factor^attempt overflows to Infinity after enough attempts; the cap is then maxDelay.
  return Number.isFinite(exp) ? Math.min(maxDelay, exp) : maxDelay;
}

/** The delay before attempt `attempt`: random(0, cap), `random` returning [0, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  return Math.floor(random() * backoffCap(attempt, options));
}
