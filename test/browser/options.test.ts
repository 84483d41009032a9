/**
 * resolveOptions on its own: every default, every value it refuses (with the error's class
 * and its exact message, which is what a user reads), the edges it accepts (0, Infinity
 * where documented, 2^31 - 1 ms), the default shouldReconnect, and defaultClock() over the
 * global timers and performance.now(). client.test.ts pins a few of these through the
 * DuetClient constructor.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  NO_RETRY_CODES,
  defaultClock,
  defaultShouldReconnect,
  resolveOptions,
  type DuetClientOptions,
} from '../../src/browser/options.js';

const MAX_DELAY = 2 ** 31 - 1;

/** resolveOptions(options) must throw `type` with exactly `message`. */
function refuses(options: DuetClientOptions, type: typeof RangeError | typeof TypeError, message: string): void {
  assert.throws(
    () => resolveOptions(options),
    (err: unknown) => {
      assert.ok(err instanceof type, `${JSON.stringify(options)}: ${String(err)} is not a ${type.name}`);
      assert.equal(err.message, message);
      return true;
    },
  );
}

/** A value of the wrong type, as plain JavaScript may pass it. */
const wrong = <T>(value: unknown): T => value as T;

describe('resolveOptions: defaults', () => {
  it('an empty object gives every default', () => {
    const resolved = resolveOptions({});
    assert.deepEqual(
      { ...resolved, shouldReconnect: undefined, random: undefined },
      {
        protocols: undefined,
        channel: true,
        minDelay: 500,
        maxDelay: 30_000,
        factor: 2,
        maxRetries: Infinity,
        stableAfter: 5000,
        shouldReconnect: undefined,
        heartbeatInterval: 20_000,
        heartbeatTimeout: 10_000,
        connectTimeout: 10_000,
        queueLimit: 1000,
        queuePolicy: 'drop-oldest',
        flushBurst: 10,
        flushInterval: 100,
        autoOpen: true,
        binaryType: undefined,
        random: undefined,
      },
    );
    assert.equal(resolved.shouldReconnect, defaultShouldReconnect);
    assert.equal(resolved.random, Math.random);
  });

  it('every given value is kept as given', () => {
    const shouldReconnect = (): boolean => false;
    const random = (): number => 0.5;
    const given: Required<
      Omit<DuetClientOptions, 'WebSocket' | 'environment' | 'clock' | 'shouldReconnect' | 'random'>
    > = {
      protocols: ['v1', 'v2'],
      channel: false,
      minDelay: 1,
      maxDelay: 2,
      factor: 3,
      maxRetries: 4,
      stableAfter: 5,
      heartbeatInterval: 6,
      heartbeatTimeout: 7,
      connectTimeout: 8,
      queueLimit: 9,
      queuePolicy: 'error',
      flushBurst: 11,
      flushInterval: 12,
      autoOpen: false,
      binaryType: 'arraybuffer',
    };
    const resolved = resolveOptions({ ...given, shouldReconnect, random });
    assert.deepEqual(
      { ...resolved, shouldReconnect: undefined, random: undefined },
      {
        ...given,
        shouldReconnect: undefined,
        random: undefined,
      },
    );
    assert.equal(resolved.shouldReconnect, shouldReconnect);
    assert.equal(resolved.random, random);
  });

  it('fields set to undefined take their defaults', () => {
    const resolved = resolveOptions({ minDelay: undefined, queuePolicy: undefined, channel: undefined });
    assert.equal(resolved.minDelay, 500);
    assert.equal(resolved.queuePolicy, 'drop-oldest');
    assert.equal(resolved.channel, true);
  });
});

describe('resolveOptions: the values it accepts at the edges', () => {
  it('0 for every delay (except a heartbeat timeout while the heartbeat is on), queueLimit and flushBurst', () => {
    const resolved = resolveOptions({
      minDelay: 0,
      maxDelay: 0,
      stableAfter: 0,
      heartbeatInterval: 0,
      heartbeatTimeout: 0,
      connectTimeout: 0,
      flushInterval: 0,
      queueLimit: 0,
      flushBurst: 0,
      maxRetries: 0,
    });
    assert.deepEqual(
      [resolved.minDelay, resolved.heartbeatTimeout, resolved.queueLimit, resolved.flushBurst, resolved.maxRetries],
      [0, 0, 0, 0, 0],
    );
  });

  it('2^31 - 1 ms for every delay: the longest a timer can wait', () => {
    for (const name of [
      'minDelay',
      'maxDelay',
      'stableAfter',
      'heartbeatInterval',
      'heartbeatTimeout',
      'connectTimeout',
      'flushInterval',
    ] as const) {
      assert.equal(resolveOptions({ [name]: MAX_DELAY })[name], MAX_DELAY, name);
    }
  });

  it('Infinity for maxRetries, flushBurst and factor; factor exactly 1', () => {
    const resolved = resolveOptions({ maxRetries: Infinity, flushBurst: Infinity, factor: Infinity });
    assert.deepEqual([resolved.maxRetries, resolved.flushBurst, resolved.factor], [Infinity, Infinity, Infinity]);
    assert.equal(resolveOptions({ factor: 1 }).factor, 1);
  });

  it('every queue policy', () => {
    for (const queuePolicy of ['drop-oldest', 'drop-newest', 'error'] as const)
      assert.equal(resolveOptions({ queuePolicy }).queuePolicy, queuePolicy);
  });
});

describe('resolveOptions: what it refuses, and the message', () => {
  const numeric = [
    'minDelay',
    'maxDelay',
    'factor',
    'maxRetries',
    'stableAfter',
    'heartbeatInterval',
    'heartbeatTimeout',
    'connectTimeout',
    'queueLimit',
    'flushBurst',
    'flushInterval',
  ] as const;

  it('a negative number, NaN or a non-number for any numeric option: RangeError "NAME must be a number >= 0, got V"', () => {
    for (const name of numeric) {
      refuses({ [name]: -1 }, RangeError, `${name} must be a number >= 0, got -1`);
      refuses({ [name]: -Infinity }, RangeError, `${name} must be a number >= 0, got -Infinity`);
      refuses({ [name]: Number.NaN }, RangeError, `${name} must be a number >= 0, got NaN`);
      refuses({ [name]: wrong<number>('5') }, RangeError, `${name} must be a number >= 0, got 5`);
      refuses({ [name]: wrong<number>(null) }, RangeError, `${name} must be a number >= 0, got null`);
    }
  });

  it('a delay over 2^31 - 1 ms (setTimeout would fire it at once), Infinity included', () => {
    for (const name of [
      'minDelay',
      'maxDelay',
      'stableAfter',
      'heartbeatInterval',
      'heartbeatTimeout',
      'connectTimeout',
      'flushInterval',
    ]) {
      refuses({ [name]: MAX_DELAY + 1 }, RangeError, `${name} must be at most ${MAX_DELAY} ms, got ${MAX_DELAY + 1}`);
      refuses({ [name]: Infinity }, RangeError, `${name} must be at most ${MAX_DELAY} ms, got Infinity`);
    }
  });

  it('factor below 1 (the delays would shrink)', () => {
    refuses({ factor: 0.5 }, RangeError, 'factor must be >= 1, got 0.5');
    refuses({ factor: 0 }, RangeError, 'factor must be >= 1, got 0');
  });

  it('queueLimit that is not a whole number, Infinity included (the queue is bounded)', () => {
    refuses({ queueLimit: 2.5 }, RangeError, 'queueLimit must be an integer, got 2.5');
    refuses({ queueLimit: Infinity }, RangeError, 'queueLimit must be an integer, got Infinity');
  });

  it('flushBurst that is neither a whole number nor Infinity', () => {
    refuses({ flushBurst: 1.5 }, RangeError, 'flushBurst must be an integer, got 1.5');
  });

  it('an unknown queuePolicy: TypeError listing the three', () => {
    for (const bad of ['drop', 'DROP-OLDEST', '', 42])
      refuses(
        { queuePolicy: wrong(bad) },
        TypeError,
        `queuePolicy must be 'drop-oldest', 'drop-newest' or 'error', got ${String(bad)}`,
      );
  });

  it('heartbeatTimeout 0 while the heartbeat is on (every ping would kill the connection), its default interval included', () => {
    refuses({ heartbeatTimeout: 0 }, RangeError, 'heartbeatTimeout must be > 0 when the heartbeat is on');
    refuses(
      { heartbeatInterval: 1, heartbeatTimeout: 0 },
      RangeError,
      'heartbeatTimeout must be > 0 when the heartbeat is on',
    );
    assert.equal(resolveOptions({ heartbeatInterval: 0, heartbeatTimeout: 0 }).heartbeatTimeout, 0);
  });

  it('a shouldReconnect that is not a function: TypeError', () => {
    for (const bad of [true, 'no', 0.5, {}, null])
      refuses({ shouldReconnect: wrong(bad) }, TypeError, 'shouldReconnect must be a function');
  });

  it('a random that is not a function: TypeError (it used to pass, and the first reconnect threw inside onclose)', () => {
    for (const bad of [true, 'no', 0.5, {}, null])
      refuses({ random: wrong(bad) }, TypeError, 'random must be a function');
  });

  it('the first bad value is the one reported', () => {
    refuses({ minDelay: -1, maxDelay: -2 }, RangeError, 'minDelay must be a number >= 0, got -1');
  });
});

describe('defaultShouldReconnect', () => {
  it('gives up after 1002, 1003, 1007, 1008, 1009 and 1010 (the server refused what this client sends)', () => {
    assert.deepEqual(NO_RETRY_CODES, [1002, 1003, 1007, 1008, 1009, 1010]);
    for (const code of NO_RETRY_CODES)
      assert.equal(defaultShouldReconnect({ code, reason: '', wasClean: true }), false, String(code));
  });

  it('retries after every other code: normal closes, going away, network loss, server errors, app codes', () => {
    for (const code of [1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 3000, 4000, 4999])
      assert.equal(defaultShouldReconnect({ code, reason: '', wasClean: false }), true, String(code));
  });
});

describe('defaultClock', () => {
  it('setTimeout and clearTimeout are the global timers, looked up at each call', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const clock = defaultClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('a'), 1000);
    const b = clock.setTimeout(() => fired.push('b'), 1000);
    clock.clearTimeout(b);
    t.mock.timers.tick(999);
    assert.deepEqual(fired, []);
    t.mock.timers.tick(1);
    assert.deepEqual(fired, ['a']);
  });

  it('now() is performance.now()', (t) => {
    t.mock.method(performance, 'now', () => 1234.5);
    assert.equal(defaultClock().now(), 1234.5);
  });

  it('now() falls back to Date.now() where there is no performance', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 5_000 });
    const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'performance');
    assert.ok(descriptor?.configurable);
    const clock = defaultClock();
    Object.defineProperty(globalThis, 'performance', { value: undefined, configurable: true, writable: true });
    try {
      assert.equal(clock.now(), 5_000);
    } finally {
      Object.defineProperty(globalThis, 'performance', descriptor);
    }
    assert.equal(typeof performance.now(), 'number');
  });
});
