/**
 * The Sender on its own, with no socket: the test plays the client around it (a host that
 * records what is written) and the server (limits, acks, refusals). What it pins: publish ids,
 * the priority of the lanes, one pacer for all of them, publishes waiting for the server's
 * limits, batches packed within maxBatch and maxMessageBytes, acks settling promises,
 * refusals (retried or final), the resend rules across connections (same dedupScope and
 * within dedupMs: the same id again; otherwise outcome unknown for what was sent, normal
 * sending for what was not), the queue's policies as promises see them, and cancel().
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DuetError } from '../../src/browser/errors.js';
import type { ServerLimits } from '../../src/browser/limits.js';
import { Sender, type SenderOptions } from '../../src/browser/sender.js';
import type { SendData } from '../../src/browser/types.js';
import { FakeClock } from './fakes.js';

const LIMITS: ServerLimits = {
  rate: { messages: 20, perMs: 1000 },
  maxMessageBytes: 16384,
  maxBatch: 50,
  dedupMs: 120_000,
  dedupScope: 'S1',
};

function setup(options: Partial<SenderOptions> = {}) {
  const clock = new FakeClock();
  const host = {
    open: true,
    written: [] as SendData[],
    subscribes: [] as string[],
    errors: [] as Error[],
    pending: [] as number[],
  };
  const sender = new Sender(
    clock,
    { channel: true, queueLimit: 1000, queuePolicy: 'drop-oldest', flushBurst: 10, flushInterval: 100, ...options },
    {
      writable: () => host.open,
      write: (data) => void host.written.push(data),
      nextSubscribe: () => host.subscribes.shift(),
      subscribesWaiting: () => host.subscribes.length > 0,
      error: (err) => void host.errors.push(err),
      pending: (count) => void host.pending.push(count),
    },
  );
  /** Outcomes of publishes, by label: 'seq 4' or an error code. */
  const outcomes = new Map<string, string>();
  const publish = (label: string, data: unknown = label, topic = 'chat'): Promise<number> => {
    const promise = sender.publish(topic, data);
    promise.then(
      (seq) => outcomes.set(label, `seq ${seq}`),
      (err: unknown) => outcomes.set(label, (err as DuetError).code),
    );
    return promise;
  };
  /** What was written, parsed; a raw message that is not JSON as `{ raw }`. */
  const sent = () =>
    host.written.map((d) => {
      try {
        return JSON.parse(d as string) as Record<string, unknown>;
      } catch {
        return { raw: d };
      }
    });
  /** The ids of what was written, flattening batches: [[...ids of message 0], ...]. */
  const ids = () =>
    sent().map((m) => (m.type === 'batch' ? (m.publishes as { id: string }[]).map((p) => p.id) : [m.id as string]));
  /** A connection opens, and its first message is `limits` (or not: null; 'later': not yet). */
  const connect = (limits: ServerLimits | null | 'later' = LIMITS) => {
    host.open = true;
    sender.opened();
    sender.pump();
    if (limits === null) sender.noLimits();
    else if (limits !== 'later') sender.announce(limits);
  };
  const drop = () => {
    host.open = false;
    sender.lost();
  };
  return { clock, host, sender, outcomes, publish, sent, ids, connect, drop };
}

/** Let promise callbacks run. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Sender: ids and the first publish', () => {
  it('ids are <session>.<n>: one session of 16 base64url characters (96 bits) per sender, n counting from 1', () => {
    const a = setup();
    const b = setup();
    a.connect();
    b.connect();
    void a.publish('x');
    void a.publish('y');
    void b.publish('z');
    const [first, second] = a.ids().flat();
    const [other] = b.ids().flat();
    assert.match(first, /^[A-Za-z0-9_-]{16}\.1$/);
    assert.equal(second, `${first.split('.')[0]}.2`);
    assert.notEqual(other.split('.')[0], first.split('.')[0], 'two clients never share a session');
  });

  it('a publish is `{"type":"publish","topic","data","id"}`; its promise resolves with the seq of its ack', async () => {
    const { sender, host, outcomes, publish, sent, connect } = setup();
    connect();
    const promise = publish('one', { text: 'héllo' });
    assert.deepEqual(sent(), [{ type: 'publish', topic: 'chat', data: { text: 'héllo' }, id: sent()[0].id }]);
    assert.deepEqual(host.pending, [1]);
    sender.ack('other.1', 9); // not ours
    sender.ack(sent()[0].id, 'nine'); // not a seq
    await settled();
    assert.equal(outcomes.size, 0);
    sender.ack(sent()[0].id, 42);
    assert.equal(await promise, 42);
    assert.deepEqual(host.pending, [1, 0]);
    assert.equal(sender.pending, 0);
  });

  it('publishes wait for the server limits (an older server would refuse the id); raw messages before them go', () => {
    const { sender, host, publish, connect } = setup();
    connect('later');
    sender.send('raw 1');
    void publish('p');
    sender.send('raw 2');
    assert.deepEqual(host.written, ['raw 1'], 'raw 2 stays behind the publish: order is kept');
    assert.equal(sender.limitsKnown, false);
    sender.announce(LIMITS);
    assert.equal(sender.limitsKnown, true);
    assert.deepEqual(sender.serverLimits, LIMITS);
    assert.equal(host.written.length, 3);
    assert.equal(host.written[2], 'raw 2');
  });

  it('a server that sends no limits first: publishes go out without id and reject as outcome unknown', async () => {
    const { sender, host, outcomes, publish, connect } = setup();
    connect('later');
    void publish('p', { a: 1 });
    sender.noLimits();
    sender.noLimits();
    sender.announce(LIMITS); // too late: the first message was something else
    assert.deepEqual(host.written, ['{"type":"publish","topic":"chat","data":{"a":1}}']);
    await settled();
    assert.equal(outcomes.get('p'), 'WS_ERR_OUTCOME_UNKNOWN');
    assert.equal(sender.serverLimits, undefined);
  });

  it('data that is not JSON throws at the call, and nothing is queued', () => {
    const { sender } = setup();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => sender.publish('chat', cyclic), TypeError);
    assert.throws(() => sender.publish('chat', () => 1), TypeError);
    assert.equal(sender.pending, 0);
  });
});

describe('Sender: one pacer, lanes in order of priority', () => {
  it('ping, then control, then subscribes, then the queue; each costs a token of the default bucket', () => {
    const { sender, host, clock } = setup({ flushBurst: 2 });
    host.open = false;
    sender.send('q1');
    host.subscribes.push('s1', 's2');
    sender.opened();
    host.open = true;
    sender.sendControl('c1');
    assert.deepEqual(host.written, ['c1', 's1']);
    sender.sendPing('ping');
    sender.sendControl('c2');
    clock.advance(100);
    clock.advance(100);
    clock.advance(100);
    clock.advance(100);
    assert.deepEqual(host.written, ['c1', 's1', 'ping', 'c2', 's2', 'q1']);
  });

  it('nothing is written while the socket is not writable; lost() forgets pings and control messages', () => {
    const { sender, host, connect, drop } = setup();
    host.open = false;
    sender.sendPing('ping');
    sender.sendControl('c');
    sender.send('raw');
    assert.deepEqual(host.written, []);
    drop();
    connect();
    assert.deepEqual(host.written, ['raw']);
    assert.equal(sender.queued, 0);
  });

  it('plain mode (no channel): a raw message goes straight out when nothing waits, without a token', () => {
    const { sender, host } = setup({ channel: false, flushBurst: 1 });
    sender.opened();
    for (let i = 0; i < 5; i++) sender.send(`m${i}`);
    assert.equal(host.written.length, 5);
  });
});

describe('Sender: batches', () => {
  it('publishes waiting together go out as one batch (one token); a single one as a publish', () => {
    const { sender, sent, ids, connect, drop, publish } = setup();
    for (let i = 0; i < 5; i++) void publish(`p${i}`);
    connect();
    assert.equal(sent().length, 1);
    assert.equal(sent()[0].type, 'batch');
    assert.deepEqual(
      (sent()[0].publishes as { data: unknown }[]).map((p) => p.data),
      ['p0', 'p1', 'p2', 'p3', 'p4'],
    );
    assert.equal(ids()[0].length, 5);
    drop();
    assert.equal(sender.queued, 5);
  });

  it('a long queue drains within the rate: 1000 publishes in 20 batches of maxBatch, in order', () => {
    const { sender, host, sent, connect, publish, clock } = setup();
    for (let i = 0; i < 1000; i++) void publish(`p${i}`, i);
    connect();
    clock.advance(2000);
    assert.equal(sender.queued, 0);
    const batches = sent();
    assert.equal(batches.length, 20);
    assert.ok(batches.every((b) => (b.publishes as unknown[]).length === 50));
    assert.deepEqual(
      batches.flatMap((b) => (b.publishes as { data: number }[]).map((p) => p.data)),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.ok(
      host.written.every((d) => (d as string).length <= LIMITS.maxMessageBytes),
      'every frame within maxMessageBytes',
    );
  });

  it('packs until the next entry would not fit maxMessageBytes (bytes of UTF-8, exact); a raw message ends a batch', () => {
    const { sender, host, sent, publish, connect } = setup();
    const text = 'é'.repeat(25); // 50 bytes of UTF-8, 25 characters
    for (let i = 0; i < 4; i++) void publish(`p${i}`, text);
    sender.send('raw');
    void publish('p4', text);
    // Each entry is {"topic":"chat","data":"<text>","id":"<16 characters>.<n>"} (n < 10).
    const entry = Buffer.byteLength(JSON.stringify({ topic: 'chat', data: text, id: `${'x'.repeat(16)}.1` }));
    const frame = (n: number) => 29 + n * entry + (n - 1) + 2;
    connect({ ...LIMITS, maxMessageBytes: frame(3) });
    assert.deepEqual(
      sent()
        .slice(0, 2)
        .map((m) => (m.type === 'batch' ? (m.publishes as unknown[]).length : m.type)),
      [3, 'publish'],
    );
    assert.equal(Buffer.byteLength(host.written[0] as string), frame(3), 'the batch fills the limit exactly');
    assert.equal(host.written[2], 'raw');
    assert.equal(sent()[3].type, 'publish');
  });

  it('maxBatch 1 or absent: one publish per message', () => {
    const { sent, publish, connect } = setup();
    for (let i = 0; i < 3; i++) void publish(`p${i}`);
    connect({ ...LIMITS, maxBatch: 0, rate: null });
    assert.deepEqual(
      sent().map((m) => m.type),
      ['publish', 'publish', 'publish'],
    );
  });

  it('a publish too big for maxMessageBytes on its own is refused without being sent (WS_ERR_PUBLISH_TOO_BIG)', async () => {
    const { sender, outcomes, publish, sent, connect } = setup();
    void publish('big', 'x'.repeat(200));
    void publish('small');
    connect({ ...LIMITS, maxMessageBytes: 150 });
    await settled();
    assert.equal(outcomes.get('big'), 'WS_ERR_PUBLISH_TOO_BIG');
    assert.deepEqual(
      sent().map((m) => m.data),
      ['small'],
    );
    assert.equal(sender.pending, 1);
  });

  it('acks settles every entry of a batch by id; refused entries reject with their code', async () => {
    const { sender, outcomes, publish, ids, connect } = setup();
    for (const label of ['a', 'b', 'c']) void publish(label);
    connect();
    const [a, b, c] = ids()[0];
    sender.ack(a, 1);
    sender.ack(b, 2);
    assert.equal(sender.refused(c, 'forbidden', 'no', 'chat', undefined), false);
    await settled();
    assert.deepEqual(Object.fromEntries(outcomes), { a: 'seq 1', b: 'seq 2', c: 'forbidden' });
    assert.equal(sender.pending, 0);
  });
});

describe('Sender: refusals', () => {
  it('rate_limited with the id: sent again after retryAfter, same id; not reported', async () => {
    const { sender, ids, publish, connect, clock, host, outcomes } = setup();
    connect();
    void publish('a');
    const [id] = ids()[0];
    assert.equal(sender.refused(id, 'rate_limited', 'slow down', 'chat', 300), true);
    clock.advance(299);
    assert.equal(host.written.length, 1);
    clock.advance(1 + 56);
    assert.deepEqual(ids()[1], [id]);
    sender.ack(id, 5);
    await settled();
    assert.equal(outcomes.get('a'), 'seq 5');
    assert.deepEqual(host.errors, []);
  });

  it('unavailable with the id: publishes hold for retryAfter while pings and control messages go on', () => {
    const { sender, ids, publish, connect, clock, host } = setup();
    connect();
    void publish('a');
    const [id] = ids()[0];
    assert.equal(sender.refused(id, 'unavailable', 'broker away', 'chat', 1000), true);
    void publish('b');
    sender.sendPing('ping');
    assert.equal(host.written.at(-1), 'ping');
    clock.advance(999);
    assert.equal(host.written.length, 2);
    clock.advance(1);
    assert.deepEqual(ids()[2], [id, ids()[2][1]], 'a then b, in one batch');
  });

  it('rate_limited without an id (a batch, a ping...): a pause, and batches still unanswered go again', () => {
    const { sender, ids, publish, connect, clock } = setup();
    connect();
    void publish('single');
    void publish('a');
    void publish('b');
    // single went alone; a and b are written too (tokens were there), one at a time.
    sender.pump();
    const before = ids().length;
    sender.rateLimited(500);
    clock.advance(500 + 56);
    assert.equal(ids().length, before, 'publishes sent on their own name their id when refused: not sent again');
    const { sender: s2, ids: ids2, publish: publish2, connect: connect2, clock: clock2 } = setup();
    for (const label of ['x', 'y']) void publish2(label);
    connect2();
    const batch = ids2()[0];
    s2.rateLimited(undefined); // no retryAfter: 1000 ms
    clock2.advance(999);
    assert.equal(ids2().length, 1);
    clock2.advance(1 + 56);
    assert.deepEqual(ids2()[1], batch, 'the batch again, same ids');
  });

  it('an id that is not waiting here is not handled (the error is reported as usual)', () => {
    const { sender } = setup();
    assert.equal(sender.refused('nope.1', 'rate_limited', 'x', undefined, 1), false);
    assert.equal(sender.refused(7, 'forbidden', 'x', undefined, 1), false);
  });
});

describe('Sender: after a reconnect (the resend rules)', () => {
  it('same dedupScope: every unacknowledged publish goes again with the same id, in order, before newer ones', async () => {
    const { sender, ids, publish, connect, drop, outcomes, host } = setup();
    connect();
    for (const label of ['a', 'b', 'c']) void publish(label);
    const sentIds = ids().flat();
    sender.ack(sentIds[0], 1);
    drop();
    void publish('d'); // never sent
    host.written.length = 0;
    connect();
    assert.deepEqual(ids().flat(), [...sentIds.slice(1), ids().flat()[2]]);
    sender.ack(sentIds[1], 2); // the server answers a repeat with the original ack (duplicate)
    sender.ack(sentIds[1], 2);
    await settled();
    assert.equal(outcomes.get('b'), 'seq 2');
    assert.deepEqual(host.errors, []);
  });

  it('another dedupScope: publishes already sent reject as outcome unknown (and are reported); never-sent ones go', async () => {
    const { sender, ids, publish, connect, drop, outcomes, host } = setup();
    connect();
    void publish('sent');
    drop();
    void publish('queued');
    host.written.length = 0;
    connect({ ...LIMITS, dedupScope: 'S2' });
    await settled();
    assert.equal(outcomes.get('sent'), 'WS_ERR_OUTCOME_UNKNOWN');
    assert.equal(host.errors.length, 1);
    assert.match(host.errors[0].message, /no longer remembers/);
    assert.equal((host.errors[0] as DuetError).topic, 'chat');
    assert.equal(ids().length, 1);
    assert.deepEqual(
      (JSON.parse(host.written[0] as string) as { data: string }).data,
      'queued',
      'the never-sent one goes normally',
    );
    assert.equal(sender.pending, 1);
  });

  it('same scope but longer ago than dedupMs, dedup off (0), no scope, or a server with no limits: outcome unknown', async () => {
    for (const [name, limits, waited] of [
      ['dedupMs passed', LIMITS, 120_000],
      ['dedup off', { ...LIMITS, dedupMs: 0 }, 0],
      ['no scope', { ...LIMITS, dedupScope: undefined }, 0],
      ['no limits', null, 0],
    ] as const) {
      const { publish, connect, drop, outcomes, clock } = setup();
      connect(name === 'no scope' ? limits : LIMITS);
      void publish('a');
      drop();
      clock.advance(waited);
      connect(limits);
      await settled();
      assert.equal(outcomes.get('a'), 'WS_ERR_OUTCOME_UNKNOWN', name);
    }
  });

  it('dedupMs counts from the first time it was sent, not the last resend', async () => {
    const { publish, connect, drop, outcomes, clock, ids } = setup();
    connect();
    void publish('a');
    drop();
    clock.advance(100_000);
    connect();
    assert.equal(ids().length, 2, 'resent at 100 s');
    drop();
    clock.advance(20_000);
    connect();
    await settled();
    assert.equal(outcomes.get('a'), 'WS_ERR_OUTCOME_UNKNOWN', '120 s after the first send');
  });
});

describe('Sender: the queue and the end of it', () => {
  it("a full queue's policy rejects what it drops (WS_ERR_PUBLISH_DROPPED); 'error' throws and keeps nothing", async () => {
    const oldest = setup({ queueLimit: 2, queuePolicy: 'drop-oldest' });
    for (const label of ['a', 'b', 'c']) void oldest.publish(label);
    const newest = setup({ queueLimit: 2, queuePolicy: 'drop-newest' });
    for (const label of ['a', 'b', 'c']) void newest.publish(label);
    const strict = setup({ queueLimit: 1, queuePolicy: 'error' });
    void strict.publish('a');
    assert.throws(() => strict.sender.publish('chat', 'b'), { code: 'WS_ERR_QUEUE_FULL' });
    await settled();
    assert.deepEqual(Object.fromEntries(oldest.outcomes), { a: 'WS_ERR_PUBLISH_DROPPED' });
    assert.deepEqual(Object.fromEntries(newest.outcomes), { c: 'WS_ERR_PUBLISH_DROPPED' });
    assert.equal(oldest.sender.pending, 2);
    assert.equal(newest.sender.dropped, 1);
    assert.equal(strict.sender.pending, 1);
  });

  it('cancel(reason, false) rejects every publish (WS_ERR_PUBLISH_CANCELLED) and keeps raw messages; true drops them too', async () => {
    const { sender, outcomes, publish, host, connect } = setup();
    host.open = false;
    sender.send('raw');
    void publish('a');
    sender.cancel('close() was called', false);
    await settled();
    assert.equal(outcomes.get('a'), 'WS_ERR_PUBLISH_CANCELLED');
    assert.equal(sender.queued, 1);
    void publish('b');
    sender.cancel('clearQueue() was called', true);
    await settled();
    assert.equal(outcomes.get('b'), 'WS_ERR_PUBLISH_CANCELLED');
    assert.equal(sender.queued, 0);
    connect();
    assert.deepEqual(host.written, []);
  });

  it('a rejected promise nobody handles is not an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      const { sender } = setup();
      void sender.publish('chat', 1);
      sender.cancel('test', true);
      await settled();
      await settled();
    } finally {
      process.off('unhandledRejection', listener);
    }
    assert.deepEqual(unhandled, []);
  });

  it('stop() clears the pacing timer; what waits stays', () => {
    const { sender, clock, connect } = setup({ flushBurst: 1 });
    connect('later');
    sender.send('a');
    sender.send('b');
    assert.equal(clock.pending, 1);
    sender.stop();
    assert.equal(clock.pending, 0);
    assert.equal(sender.queued, 1);
  });
});
