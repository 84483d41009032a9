/**
 * ChannelSession on its own, with no socket: the test plays both the client around it (a host
 * that records what is written, emitted and reported, with the FakeClock of fakes.ts) and the
 * server (the messages handed to receive()). What it pins: which server messages are refused
 * and how, what each message type does, the subscribe and unsubscribe requests, the hello and
 * the resubscribes on a new connection, the retries after rate_limited and recovery_limited,
 * and lost(). client.test.ts pins the same protocol through DuetClient and a FakeWebSocket.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelSession } from '../../src/browser/channel.js';
import { DuetError } from '../../src/browser/errors.js';
import type { TopicHandler } from '../../src/browser/topics.js';
import { FakeClock } from './fakes.js';

function setup({ open = true } = {}) {
  const clock = new FakeClock();
  const host = {
    open,
    written: [] as string[],
    events: [] as [string, unknown][],
    errors: [] as { err: unknown; loud: boolean | undefined }[],
    pongs: [] as unknown[],
    resumes: 0,
    /** Calls of the publish and pacing side of the host, in order: [name, ...arguments]. */
    calls: [] as unknown[][],
    /** What refused() answers (true: the publish will be sent again). */
    retry: false,
  };
  const session = new ChannelSession({
    isOpen: () => host.open,
    write: (text) => void host.written.push(text),
    emit: (event, payload) => void host.events.push([event, payload]),
    error: (err, loud) => void host.errors.push({ err, loud }),
    pong: (id) => void host.pongs.push(id),
    pingAnswered: (id) => void host.calls.push(['pingAnswered', id]),
    resume: () => void host.resumes++,
    limits: (limits) => void host.calls.push(['limits', limits]),
    noLimits: () => void host.calls.push(['noLimits']),
    ack: (id, seq) => void host.calls.push(['ack', id, seq]),
    refused: (id, code, message, topic, retryAfter) => {
      host.calls.push(['refused', id, code, message, topic, retryAfter]);
      return host.retry;
    },
    rateLimited: (retryAfter) => void host.calls.push(['rateLimited', retryAfter]),
    clock,
  });
  /** Write the next waiting subscribe, as the client's pacer does; false when none waits. */
  const next = (): boolean => {
    const text = session.nextSubscribe();
    if (text === undefined) return false;
    host.written.push(text);
    return true;
  };
  return {
    clock,
    host,
    session,
    next,
    /** Write every waiting subscribe. */
    drain: () => {
      while (next());
    },
    /** What was written, parsed. */
    sent: () => host.written.map((text) => JSON.parse(text) as Record<string, unknown>),
    /** A server message, as JSON text. */
    receive: (msg: object) => session.receive(JSON.stringify(msg)),
    /** The events of one name, in order. */
    emitted: (name: string) => host.events.filter(([event]) => event === name).map(([, payload]) => payload),
    /** The codes (and topics) of the errors reported. */
    codes: () =>
      host.errors.map(({ err }) => {
        assert.ok(err instanceof DuetError, `not a DuetError: ${String(err)}`);
        return err.topic === undefined ? err.code : `${err.code} ${err.topic}`;
      }),
  };
}

const noop: TopicHandler = () => {};

/** A session with `topic` subscribed on an open connection and answered at (E, seq). */
function live(topic = 'chat', seq = 0) {
  const t = setup();
  const seen: unknown[] = [];
  t.session.subscribe(topic, (data, meta) => seen.push({ data, ...meta }));
  t.drain();
  t.receive({ type: 'subscribed', topic, epoch: 'E', seq, recovered: false });
  t.host.written.length = 0;
  t.host.events.length = 0;
  return { ...t, seen };
}

describe('ChannelSession.receive: what it refuses', () => {
  it('binary, not JSON, or JSON that is not an object: error WS_ERR_INVALID_CHANNEL_MESSAGE, nothing emitted', () => {
    const { session, host } = setup();
    session.receive(new ArrayBuffer(2));
    session.receive('{"type":');
    for (const text of ['1', 'null', '"pong"', 'true']) session.receive(text);
    const got = host.errors.map(({ err }) => {
      assert.ok(err instanceof DuetError);
      return [err.code, err.message];
    });
    const notObject = ['WS_ERR_INVALID_CHANNEL_MESSAGE', 'a channel message that is not a JSON object'];
    assert.deepEqual(got, [
      ['WS_ERR_INVALID_CHANNEL_MESSAGE', 'a binary message on a channel connection'],
      ['WS_ERR_INVALID_CHANNEL_MESSAGE', 'a channel message that is not JSON'],
      notObject,
      notObject,
      notObject,
      notObject,
    ]);
    assert.deepEqual(host.events, []);
  });

  it('a JSON array is not an object either: refused the same way, not emitted as `message` (it used to be)', () => {
    const { session, host } = setup();
    session.receive('[{"type":"pong","id":1}]');
    session.receive('[]');
    assert.deepEqual(
      host.errors.map(({ err }) => (err instanceof DuetError ? [err.code, err.message] : err)),
      [
        ['WS_ERR_INVALID_CHANNEL_MESSAGE', 'a channel message that is not a JSON object'],
        ['WS_ERR_INVALID_CHANNEL_MESSAGE', 'a channel message that is not a JSON object'],
      ],
    );
    assert.deepEqual(host.events, []);
    assert.deepEqual(host.pongs, []);
  });

  it('every JSON object is emitted as `message`, after it was handled; unknown types are only emitted', () => {
    const { receive, host } = live();
    receive({ type: 'message', topic: 'chat', seq: 1, data: 'x' });
    receive({ type: 'news', x: 1 });
    receive({ no: 'type' });
    assert.deepEqual(
      host.events.map(([event]) => event),
      ['deliver', 'message', 'message', 'message'],
    );
    assert.deepEqual(host.events.at(-2), ['message', { type: 'news', x: 1 }]);
    assert.deepEqual(host.errors, []);
    assert.deepEqual(host.written, []);
  });

  it('pong hands its id to the host, as received', () => {
    const { receive, host } = setup();
    receive({ type: 'pong', id: 7 });
    receive({ type: 'pong', id: 'x' });
    receive({ type: 'pong' });
    assert.deepEqual(host.pongs, [7, 'x', undefined]);
  });

  it("a server error becomes a DuetError with the server's code, message and topic; no code: WS_ERR_INVALID_CHANNEL_MESSAGE, no message: the code", () => {
    const { receive, host } = setup();
    receive({ type: 'error', code: 'bad_json', message: 'the text is not valid JSON' });
    receive({ type: 'error', code: 'forbidden', message: 'no', topic: 'ticker' });
    receive({ type: 'error', message: 'what went wrong' });
    receive({ type: 'error', code: 'too_big', message: 42 });
    receive({ type: 'error', code: 7 });
    const got = host.errors.map(({ err, loud }) => {
      assert.ok(err instanceof DuetError);
      return { code: err.code, message: err.message, topic: err.topic, loud };
    });
    assert.deepEqual(got, [
      { code: 'bad_json', message: 'the text is not valid JSON', topic: undefined, loud: undefined },
      { code: 'forbidden', message: 'no', topic: 'ticker', loud: undefined },
      { code: 'WS_ERR_INVALID_CHANNEL_MESSAGE', message: 'what went wrong', topic: undefined, loud: undefined },
      { code: 'too_big', message: 'too_big', topic: undefined, loud: undefined },
      {
        code: 'WS_ERR_INVALID_CHANNEL_MESSAGE',
        message: 'WS_ERR_INVALID_CHANNEL_MESSAGE',
        topic: undefined,
        loud: undefined,
      },
    ]);
  });
});

describe('ChannelSession: subscribe and unsubscribe', () => {
  it('on an open connection the first handler of a topic queues its subscribe for the pacer (resume); later ones nothing', () => {
    const { session, sent, host, drain } = setup();
    session.subscribe('chat', noop);
    session.subscribe('chat', () => {});
    session.subscribe('ticker', noop, { epoch: 'E', seq: 41 });
    assert.equal(host.resumes, 2);
    assert.deepEqual(host.written, [], 'written when the pacer takes them');
    drain();
    assert.deepEqual(sent(), [
      { type: 'subscribe', topic: 'chat' },
      { type: 'subscribe', topic: 'ticker', since: 41, epoch: 'E' },
    ]);
    assert.deepEqual(session.position('ticker'), { epoch: 'E', seq: 41 });
    assert.equal(session.position('chat'), undefined);
  });

  it('while not open nothing is written: the subscribe waits for resubscribe()', () => {
    const { session, host } = setup({ open: false });
    const off = session.subscribe('chat', noop);
    off();
    session.subscribe('chat', noop);
    assert.deepEqual(host.written, []);
    assert.equal(session.waiting, false);
  });

  it("the last handler's off() sends unsubscribe (when open), once; other handlers' off() sends nothing", () => {
    const { session, sent, host } = setup();
    const offA = session.subscribe('chat', noop);
    const offB = session.subscribe('chat', () => {});
    host.written.length = 0;
    offA();
    assert.deepEqual(host.written, []);
    offB();
    offB();
    assert.deepEqual(sent(), [{ type: 'unsubscribe', topic: 'chat' }]);
    host.open = false;
    session.subscribe('x', noop)();
    assert.equal(host.written.length, 1, 'closed: no unsubscribe either');
  });

  it('the position goes with the last handler: a later subscribe starts fresh, without since', () => {
    const { session, receive, sent, host, drain } = setup();
    const off = session.subscribe('chat', noop);
    drain();
    receive({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 5, recovered: false });
    assert.deepEqual(session.position('chat'), { epoch: 'E', seq: 5 });
    off();
    assert.equal(session.position('chat'), undefined);
    host.written.length = 0;
    session.subscribe('chat', noop);
    drain();
    assert.deepEqual(sent(), [{ type: 'subscribe', topic: 'chat' }]);
  });
});

describe('ChannelSession: a new connection', () => {
  it('resubscribe() queues every topic; nextSubscribe() gives one subscribe per call, in subscription order, from its position', () => {
    const { session, sent, host, next } = setup({ open: false });
    session.subscribe('b', noop);
    session.subscribe('a', noop, { epoch: 'E', seq: 3 });
    session.subscribe('c', noop);
    host.open = true;
    session.resubscribe();
    assert.equal(session.waiting, true);
    assert.deepEqual(host.written, [], 'nothing before the pacer asks');
    assert.equal(next(), true);
    assert.equal(next(), true);
    assert.equal(next(), true);
    assert.equal(session.waiting, false);
    assert.equal(next(), false);
    assert.deepEqual(sent(), [
      { type: 'subscribe', topic: 'b' },
      { type: 'subscribe', topic: 'a', since: 3, epoch: 'E' },
      { type: 'subscribe', topic: 'c' },
    ]);
  });

  it('a topic unsubscribed before its turn is not subscribed', () => {
    const { session, sent, host, drain } = setup({ open: false });
    session.subscribe('a', noop);
    const offB = session.subscribe('b', noop);
    host.open = true;
    session.resubscribe();
    offB();
    drain();
    assert.deepEqual(sent(), [
      { type: 'unsubscribe', topic: 'b' },
      { type: 'subscribe', topic: 'a' },
    ]);
  });

  it('setNick: hello at once when open; otherwise first thing at resubscribe(), on every connection', () => {
    const { session, sent, host, next } = setup({ open: false });
    session.subscribe('chat', noop);
    session.setNick('ada');
    assert.deepEqual(host.written, []);
    host.open = true;
    session.resubscribe();
    assert.deepEqual(sent(), [{ type: 'hello', nick: 'ada' }], 'hello before any subscribe');
    next();
    session.setNick('eve');
    session.resubscribe();
    assert.deepEqual(sent().slice(2), [
      { type: 'hello', nick: 'eve' },
      { type: 'hello', nick: 'eve' },
    ]);
  });

  it('identity comes from welcome, and is null again after resubscribe() or lost()', () => {
    const { session, receive } = setup();
    assert.equal(session.identity, null);
    receive({ type: 'welcome', id: 'ID1', nick: 'ada' });
    assert.deepEqual(session.identity, { id: 'ID1', nick: 'ada' });
    receive({ type: 'welcome', id: 7, nick: 'bad' });
    receive({ type: 'welcome', id: 'ID2' });
    assert.deepEqual(session.identity, { id: 'ID1', nick: 'ada' }, 'a malformed welcome is ignored');
    session.resubscribe();
    assert.equal(session.identity, null);
    receive({ type: 'welcome', id: 'ID3', nick: 'ada' });
    session.lost();
    assert.equal(session.identity, null);
  });
});

describe('ChannelSession: subscribed and message', () => {
  it('a first subscribed reports a reset; a recovered one does not; a malformed one changes nothing', () => {
    const { session, receive, emitted, next } = setup();
    session.subscribe('chat', noop);
    receive({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 'x', recovered: false });
    receive({ type: 'subscribed', topic: 'chat', seq: 2, recovered: false });
    receive({ type: 'subscribed', epoch: 'E', seq: 2, recovered: false });
    assert.deepEqual(emitted('reset'), []);
    assert.equal(session.position('chat'), undefined);
    receive({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 2, recovered: false });
    assert.deepEqual(emitted('reset'), [{ topic: 'chat', epoch: 'E', seq: 2, previous: null }]);
    session.resubscribe();
    next();
    receive({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 9, recovered: true });
    assert.equal(emitted('reset').length, 1);
    assert.deepEqual(session.position('chat'), { epoch: 'E', seq: 2 }, 'the replay brings 3..9');
  });

  it('a message in order goes to every handler with its meta, then out as `deliver`', () => {
    const { session, receive, seen, emitted } = live();
    const second: unknown[] = [];
    session.subscribe('chat', (data, meta) => second.push([data, meta.seq]));
    receive({ type: 'message', topic: 'chat', seq: 1, data: { text: 'hi' } });
    assert.deepEqual(seen, [{ data: { text: 'hi' }, topic: 'chat', seq: 1, epoch: 'E' }]);
    assert.deepEqual(second, [[{ text: 'hi' }, 1]]);
    assert.deepEqual(emitted('deliver'), [{ topic: 'chat', seq: 1, epoch: 'E', data: { text: 'hi' } }]);
    assert.deepEqual(session.position('chat'), { epoch: 'E', seq: 1 });
  });

  it('meta.from is set only from a well-formed sender: { id } or { id, nick } with strings', () => {
    const { receive, seen } = live();
    const froms = [
      { id: 'A', nick: 'ada' },
      { id: 'B' },
      { id: 'C', nick: 5 },
      { id: 7, nick: 'x' },
      { nick: 'x' },
      'A',
      null,
    ];
    froms.forEach((from, i) => receive({ type: 'message', topic: 'chat', seq: i + 1, data: i, from }));
    receive({ type: 'message', topic: 'chat', seq: froms.length + 1, data: 'none' });
    assert.deepEqual(
      seen.map((m) => (m as { from?: unknown }).from),
      [{ id: 'A', nick: 'ada' }, { id: 'B' }, { id: 'C' }, undefined, undefined, undefined, undefined, undefined],
    );
    assert.equal(seen.filter((m) => 'from' in (m as object)).length, 3, 'no from key at all when there is no sender');
  });

  it('a gap asks again from the position; seen seqs, unknown topics and messages without a seq are dropped', () => {
    const { receive, seen, sent, emitted } = live('chat', 4);
    receive({ type: 'message', topic: 'chat', seq: 4, data: 'old' });
    receive({ type: 'message', topic: 'other', seq: 5, data: 'not ours' });
    receive({ type: 'message', topic: 'chat', data: 'no seq' });
    receive({ type: 'message', topic: 'chat', seq: '5', data: 'string seq' });
    assert.deepEqual(sent(), []);
    receive({ type: 'message', topic: 'chat', seq: 7, data: 'after a gap' });
    assert.deepEqual(sent(), [{ type: 'subscribe', topic: 'chat', since: 4, epoch: 'E' }]);
    assert.deepEqual(seen, []);
    assert.deepEqual(emitted('deliver'), []);
    assert.equal(emitted('message').length, 5, 'each still emitted as message');
  });

  it('a handler that throws is reported loud; the other handlers and deliver still run', () => {
    const { session, receive, host, emitted } = live();
    const bug = new Error('handler bug');
    session.subscribe('chat', () => {
      throw bug;
    });
    const after: unknown[] = [];
    session.subscribe('chat', (data) => after.push(data));
    receive({ type: 'message', topic: 'chat', seq: 1, data: 'x' });
    assert.deepEqual(host.errors, [{ err: bug, loud: true }]);
    assert.deepEqual(after, ['x']);
    assert.equal(emitted('deliver').length, 1);
  });
});

describe('ChannelSession: refusals and retries', () => {
  it('an error naming a topic ends its pending subscribe: no retry for it, and no subscribe from the resubscribe queue', () => {
    const { session, receive, host, sent, codes, drain } = setup();
    session.subscribe('a', noop);
    session.subscribe('b', noop);
    drain();
    host.resumes = 0;
    receive({ type: 'error', code: 'unknown_topic', message: 'no topic "a"', topic: 'a' });
    assert.deepEqual(codes(), ['unknown_topic a']);
    receive({ type: 'error', code: 'rate_limited', message: 'slow down' });
    assert.equal(host.resumes, 1);
    host.written.length = 0;
    drain();
    assert.deepEqual(sent(), [{ type: 'subscribe', topic: 'b' }], 'only the one still unanswered');
  });

  it('rate_limited: every unanswered subscribe waits to go out again, one resume(); none unanswered, no resume', () => {
    const { session, receive, host, sent, drain } = setup();
    session.subscribe('a', noop);
    session.subscribe('b', noop);
    drain();
    host.resumes = 0;
    receive({ type: 'subscribed', topic: 'b', epoch: 'E', seq: 0, recovered: false });
    host.written.length = 0;
    receive({ type: 'error', code: 'rate_limited', message: 'slow down' });
    receive({ type: 'error', code: 'rate_limited', message: 'slow down' });
    assert.equal(host.resumes, 2);
    assert.equal(session.waiting, true);
    drain();
    assert.deepEqual(sent(), [{ type: 'subscribe', topic: 'a' }], 'once, however many errors');
    receive({ type: 'subscribed', topic: 'a', epoch: 'E', seq: 0, recovered: false });
    receive({ type: 'error', code: 'rate_limited', message: 'slow down' });
    assert.equal(host.resumes, 2, 'nothing pending: nothing to resume');
  });

  it('recovery_limited: the subscribe waits retryAfter ms on the clock, then goes out through resume()', () => {
    const { session, receive, host, sent, clock, codes, next, drain } = setup();
    session.subscribe('chat', noop);
    drain();
    host.resumes = 0;
    host.written.length = 0;
    receive({ type: 'error', code: 'recovery_limited', message: 'later', topic: 'chat', retryAfter: 2500 });
    assert.deepEqual(codes(), ['recovery_limited chat']);
    assert.deepEqual(clock.pendingDelays(), [2500]);
    receive({ type: 'error', code: 'rate_limited', message: 'slow down' });
    assert.equal(host.resumes, 0, 'a deferred topic is not retried early by rate_limited');
    clock.advance(2499);
    assert.equal(session.waiting, false);
    clock.advance(1);
    assert.equal(host.resumes, 1);
    assert.equal(next(), true);
    assert.deepEqual(sent(), [{ type: 'subscribe', topic: 'chat' }]);
    assert.equal(clock.pending, 0);
  });

  it('unavailable (the server cannot reach its broker) defers a pending subscribe like recovery_limited; for a topic with no subscribe pending (a refused publish) it is only reported', () => {
    const { session, receive, host, sent, clock, codes, next, drain } = setup();
    session.subscribe('chat', noop);
    drain();
    host.resumes = 0;
    host.written.length = 0;
    receive({ type: 'error', code: 'unavailable', message: 'later', topic: 'chat', retryAfter: 1000 });
    assert.deepEqual(codes(), ['unavailable chat']);
    assert.deepEqual(clock.pendingDelays(), [1000]);
    clock.advance(1000);
    assert.equal(host.resumes, 1);
    assert.equal(next(), true);
    assert.deepEqual(sent(), [{ type: 'subscribe', topic: 'chat' }]);
    receive({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    receive({ type: 'error', code: 'unavailable', message: 'not published', topic: 'chat', retryAfter: 1000 });
    assert.equal(clock.pending, 0, 'nothing to retry for a topic already subscribed');
    assert.deepEqual(codes(), ['unavailable chat', 'unavailable chat']);
  });

  it('recovery_limited without a usable retryAfter waits 1000 ms', () => {
    for (const retryAfter of [undefined, -1, 'soon', null]) {
      const { session, receive, clock, drain } = setup();
      session.subscribe('chat', noop);
      drain();
      receive({ type: 'error', code: 'recovery_limited', message: 'later', topic: 'chat', retryAfter });
      assert.deepEqual(clock.pendingDelays(), [1000], String(retryAfter));
    }
  });

  it('one timer for every deferred topic, due at the earliest time asked for', () => {
    const { session, receive, clock, sent, host, drain } = setup();
    for (const topic of ['a', 'b', 'c']) session.subscribe(topic, noop);
    drain();
    host.resumes = 0;
    host.written.length = 0;
    receive({ type: 'error', code: 'recovery_limited', topic: 'a', retryAfter: 3000 });
    receive({ type: 'error', code: 'recovery_limited', topic: 'b', retryAfter: 1000 });
    receive({ type: 'error', code: 'recovery_limited', topic: 'c', retryAfter: 5000 });
    assert.deepEqual(clock.pendingDelays(), [1000], 'the later ones do not add timers');
    clock.advance(1000);
    assert.equal(host.resumes, 1);
    drain();
    assert.deepEqual(
      sent().map((m) => m.topic),
      ['a', 'b', 'c'],
      'all deferred topics go at the first due time',
    );
  });

  it('a deferred topic answered or unsubscribed meanwhile is not asked again; nothing left: no resume', () => {
    const { session, receive, clock, host, drain } = setup();
    session.subscribe('a', noop);
    const offB = session.subscribe('b', noop);
    drain();
    host.resumes = 0;
    receive({ type: 'error', code: 'recovery_limited', topic: 'a', retryAfter: 100 });
    receive({ type: 'error', code: 'recovery_limited', topic: 'b', retryAfter: 100 });
    receive({ type: 'subscribed', topic: 'a', epoch: 'E', seq: 0, recovered: false });
    offB();
    clock.advance(100);
    assert.equal(host.resumes, 0);
    assert.equal(session.waiting, false);
  });

  it('recovery_limited for a topic that is not pending is reported and sets no timer', () => {
    const { receive, clock, codes } = live();
    receive({ type: 'error', code: 'recovery_limited', topic: 'chat', retryAfter: 100 });
    receive({ type: 'error', code: 'recovery_limited', topic: 'nope', retryAfter: 100 });
    assert.deepEqual(codes(), ['recovery_limited chat', 'recovery_limited nope']);
    assert.equal(clock.pending, 0);
  });

  it('lost(): the retry timer goes, nothing waits, and messages are no longer held for a pending subscribe', () => {
    const { session, receive, clock, seen, next } = live('chat', 0);
    session.subscribe('other', noop);
    receive({ type: 'message', topic: 'chat', seq: 2, data: 2 }); // a gap: chat is pending again
    receive({ type: 'error', code: 'recovery_limited', topic: 'chat', retryAfter: 500 });
    session.resubscribe();
    session.lost();
    assert.equal(clock.pending, 0);
    assert.equal(session.waiting, false);
    assert.equal(next(), false);
    receive({ type: 'message', topic: 'chat', seq: 1, data: 1 });
    assert.deepEqual(
      seen.map((m) => (m as { seq: number }).seq),
      [1],
      'chat is no longer pending',
    );
  });
});

describe('ChannelSession: limits, acks and refusals of publishes', () => {
  it('limits as the first message goes to the host, read; any other first message means the server sends none', () => {
    const a = setup();
    a.receive({ type: 'limits', rate: { messages: 20, perMs: 1000 }, maxBatch: 50, dedupMs: 1, dedupScope: 'S' });
    a.receive({ type: 'pong', id: 1 });
    assert.deepEqual(a.host.calls, [
      [
        'limits',
        { rate: { messages: 20, perMs: 1000 }, maxMessageBytes: 0, maxBatch: 50, dedupMs: 1, dedupScope: 'S' },
      ],
    ]);
    const b = setup();
    b.receive({ type: 'welcome', id: 'ID', nick: 'n' });
    b.receive({ type: 'limits' });
    assert.deepEqual(
      b.host.calls.map(([name]) => name),
      ['noLimits', 'limits'],
      'a late limits is still handed on (the sender ignores it)',
    );
    b.session.resubscribe(); // a new connection: its first message counts again
    b.receive({ type: 'limits' });
    assert.equal(b.host.calls.at(-1)?.[0], 'limits');
    assert.equal(b.host.calls.length, 3);
  });

  it('ack and every entry of acks go to the host; entries with a code are refusals, reported unless retried', () => {
    const { receive, host, codes } = setup();
    receive({ type: 'ack', id: 'S.1', topic: 'chat', seq: 4 });
    receive({
      type: 'acks',
      acks: [
        { id: 'S.2', topic: 'chat', seq: 5 },
        { id: 'S.3', topic: 'chat', seq: 3, duplicate: true },
        { id: 'S.4', topic: 'x', code: 'forbidden', message: 'no' },
        { id: 'S.5', code: 'rate_limited', retryAfter: 50 },
        null,
        7,
      ],
    });
    receive({ type: 'acks', acks: 'nope' });
    assert.deepEqual(host.calls.slice(1), [
      ['ack', 'S.1', 4],
      ['ack', 'S.2', 5],
      ['ack', 'S.3', 3],
      ['refused', 'S.4', 'forbidden', 'no', 'x', undefined],
      ['refused', 'S.5', 'rate_limited', 'rate_limited', undefined, 50],
    ]);
    assert.deepEqual(codes(), ['forbidden x', 'rate_limited']);
    host.retry = true;
    receive({ type: 'acks', acks: [{ id: 'S.6', code: 'unavailable', retryAfter: 9 }] });
    assert.equal(codes().length, 2, 'a refusal the sender retries is not reported');
  });

  it('an error with a publish id: the host decides (retried: not reported; refused: reported with its topic)', () => {
    const { receive, host, codes } = setup();
    host.retry = true;
    receive({ type: 'error', code: 'rate_limited', message: 'slow', id: 'S.1', retryAfter: 20 });
    assert.deepEqual(codes(), []);
    host.retry = false;
    receive({ type: 'error', code: 'forbidden', message: 'no', topic: 'ticker', id: 'S.2' });
    assert.deepEqual(codes(), ['forbidden ticker']);
    assert.deepEqual(host.calls.slice(1), [
      ['refused', 'S.1', 'rate_limited', 'slow', undefined, 20],
      ['refused', 'S.2', 'forbidden', 'no', 'ticker', undefined],
    ]);
  });

  it('rate_limited without a publish id pauses the sender; with a numeric id it also answers that ping', () => {
    const { receive, host, codes } = setup();
    receive({ type: 'error', code: 'rate_limited', message: 'slow', retryAfter: 30 });
    receive({ type: 'error', code: 'rate_limited', message: 'slow', id: 3, retryAfter: 40 });
    assert.deepEqual(host.calls.slice(1), [
      ['rateLimited', 30],
      ['pingAnswered', 3],
      ['rateLimited', 40],
    ]);
    assert.deepEqual(codes(), ['rate_limited', 'rate_limited']);
  });

  it('settled: nothing waiting, pending or deferred', () => {
    const { session, receive, drain, clock } = setup();
    assert.equal(session.settled, true);
    session.subscribe('a', noop);
    assert.equal(session.settled, false, 'waiting');
    drain();
    assert.equal(session.settled, false, 'pending');
    receive({ type: 'error', code: 'recovery_limited', topic: 'a', retryAfter: 10 });
    assert.equal(session.settled, false, 'deferred');
    clock.advance(10);
    drain();
    receive({ type: 'subscribed', topic: 'a', epoch: 'E', seq: 0, recovered: false });
    assert.equal(session.settled, true);
  });
});
