/**
 * Helpers for tests against a real Redis (REDIS_URL, default redis://127.0.0.1:6379): whether
 * it answers (else the suite is skipped with the reason printed, or fails under
 * REQUIRE_REDIS=1, as in CI), a key prefix of its own per test, and the cleanup of its keys.
 */
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { Subscriber } from '../../src/node/host.js';
import type { SharedMessage } from '../../src/node/shared-message.js';
import type { TopicPosition } from '../../src/push/broker.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** undefined when Redis answers a PING within 2 s; otherwise why not (the skip reason). */
export async function redisUnavailable(): Promise<string | undefined> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no answer in 2 s')), 2000)),
    ]);
    return undefined;
  } catch (err) {
    return `no Redis at ${REDIS_URL} (${err instanceof Error ? err.message : String(err)})`;
  } finally {
    client.disconnect();
  }
}

/**
 * The `skip` option for a suite that needs Redis: false when it answers; the reason when it
 * does not (printed by the test runner); a failure instead under REQUIRE_REDIS=1.
 */
export async function skipWithoutRedis(): Promise<string | false> {
  const reason = await redisUnavailable();
  if (reason === undefined) return false;
  if (process.env.REQUIRE_REDIS === '1') throw new Error(`REQUIRE_REDIS=1 but ${reason}`);
  console.log(`# skipping Redis tests: ${reason}`);
  return reason;
}

/** A key prefix no other test (or run) uses. */
export function testPrefix(name: string): string {
  return `duet-test:${name}:${randomBytes(4).toString('hex')}:`;
}

/** A plain connection for the test's own commands (CLIENT KILL, DEL, ...). */
export function adminClient(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
}

/** Delete every key under `prefix`. */
export async function deleteKeys(admin: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await admin.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Kill the Redis connections whose name starts with `name` (CLIENT KILL ID): a network drop. */
export async function killConnections(admin: Redis, name: string): Promise<number> {
  const list = (await admin.client('LIST')) as string;
  let killed = 0;
  for (const line of list.split('\n')) {
    const id = /\bid=(\d+)/.exec(line)?.[1];
    const connName = /\bname=(\S*)/.exec(line)?.[1] ?? '';
    if (id !== undefined && connName.startsWith(name)) {
      killed += Number(await admin.client('KILL', 'ID', id));
    }
  }
  return killed;
}

/** What a subscriber got: messages (with their text) and resets, in order. */
export type Received = { text: string } | { reset: TopicPosition };

/** A stand-in subscriber that records what the Hub writes to it. */
export class Recorder implements Subscriber {
  readonly got: Received[] = [];
  sendEncoded(message: SharedMessage): boolean {
    this.got.push({ text: message.payload.toString() });
    return true;
  }
  texts(): string[] {
    return this.got.flatMap((r) => ('text' in r ? [r.text] : []));
  }
}

/**
 * Check a stream of `<n>` texts (published as `${n}`, n = 1, 2, ...): in order, none twice,
 * and every jump announced by a reset just before it (the first number expected: start + 1).
 * Returns the numbers received.
 */
export function assertOrderedWithAnnouncedGaps(got: Received[], label: string, start = 0): number[] {
  const numbers: number[] = [];
  let last = start;
  let announced = false;
  for (const item of got) {
    if ('reset' in item) {
      announced = true;
      continue;
    }
    const n = Number(item.text);
    assert.ok(n > last, `${label}: ${n} after ${last} (out of order or twice)`);
    if (n !== last + 1) assert.ok(announced, `${label}: a silent gap from ${last} to ${n}`);
    announced = false;
    last = n;
    numbers.push(n);
  }
  return numbers;
}

/** Wait until `check()` is true (polling every 20 ms), at most `ms`; throws with `what` after. */
export async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
