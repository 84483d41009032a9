/**
 * The Pacer (the client's one token bucket) on the FakeClock: a full bucket per connection,
 * the default pace until the server announces its limit, then 90 % of the announced rate with
 * what was spent since the connection opened taken off, pauses for `rate_limited`, no limit.
 * And the property that matters: a client taking tokens as fast as the pacer gives them never
 * overdraws a server bucket of the announced size, even when each message arrives early.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer, SERVER_RATE_SHARE } from '../../src/browser/pacer.js';
import { FakeClock } from './fakes.js';

/** Take every token there is now; returns how many. */
function takeAll(pacer: Pacer): number {
  let n = 0;
  while (n < 10_000 && pacer.take()) n++;
  return n;
}

describe('Pacer: the default pace', () => {
  it('a full bucket at reset(), then one token per interval; wait() says when the next one comes', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(10, 100);
    assert.equal(takeAll(pacer), 10);
    assert.equal(pacer.wait(), 100);
    clock.advance(99);
    assert.equal(pacer.take(), false);
    assert.equal(pacer.wait(), 1);
    clock.advance(1);
    assert.equal(pacer.wait(), 0);
    assert.equal(takeAll(pacer), 1);
    clock.advance(100_000);
    assert.equal(takeAll(pacer), 10, 'never more than the burst');
    pacer.reset(3, 100);
    assert.equal(takeAll(pacer), 3, 'a new connection: a full bucket of the new size');
  });

  it('interval 0: no limit at all', () => {
    const pacer = new Pacer(new FakeClock());
    pacer.reset(1, 0);
    assert.equal(takeAll(pacer), 10_000);
    assert.equal(pacer.wait(), 0);
  });

  it('fractions add up to whole tokens without drift (100 refills of one token each)', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(1, 30);
    pacer.take();
    let taken = 0;
    for (let i = 0; i < 300; i++) {
      clock.advance(10);
      if (pacer.take()) taken++;
    }
    assert.equal(taken, 100);
  });
});

describe('Pacer: the announced limit', () => {
  it('switches to the server rate (90 %) and burst, minus what was spent since the connection opened', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(10, 100);
    assert.equal(takeAll(pacer), 10);
    clock.advance(50); // half a default token back, and nothing counted for it
    pacer.announce({ messages: 20, perMs: 1000 });
    assert.equal(takeAll(pacer), 0, 'the server has 20 - 10 spent = 10, but ours had half a token: we keep the lower');
    const perToken = 1000 / 20 / SERVER_RATE_SHARE;
    assert.equal(pacer.wait(), Math.ceil(perToken / 2), 'the half token carries over, at the new rate');
    clock.advance(10 * perToken);
    assert.equal(takeAll(pacer), 10);
    clock.advance(60_000);
    assert.equal(takeAll(pacer), 20, 'the burst is the server one');
  });

  it('a smaller server bucket than the default: what was spent is taken from it', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(10, 100);
    pacer.take();
    pacer.take();
    pacer.take();
    pacer.announce({ messages: 5, perMs: 1000 });
    assert.equal(takeAll(pacer), 2);
  });

  it('rate null: no limit', () => {
    const pacer = new Pacer(new FakeClock());
    pacer.reset(2, 100);
    pacer.announce(null);
    assert.equal(takeAll(pacer), 10_000);
  });

  it('sending as fast as allowed never overdraws the server bucket, even when every other message is 5 ms late', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(20, 50); // a default as large as the server's: the client starts as full as the server
    const rate = { messages: 20, perMs: 1000 };
    pacer.announce(rate);
    // The server's bucket, refilled by the time it sees each message: every other one takes
    // 5 ms longer on the way, so the next one, on time, follows it 5 ms closer than it was sent.
    let serverTokens = 20;
    let serverAt = 0;
    let lowest = serverTokens;
    let sent = 0;
    for (let step = 0; step < 20_000; step++) {
      while (pacer.take()) {
        const arrival = Math.max(serverAt, clock.now() + (sent % 2 === 0 ? 5 : 0));
        serverTokens = Math.min(20, serverTokens + ((arrival - serverAt) * rate.messages) / rate.perMs) - 1;
        serverAt = arrival;
        lowest = Math.min(lowest, serverTokens);
        sent++;
      }
      clock.advance(1);
    }
    assert.ok(sent > 300, `sent ${sent} in 20 s`);
    assert.ok(lowest >= 0, `the server bucket went down to ${lowest}`);
  });
});

describe('Pacer: pause()', () => {
  it('nothing during the pause, then an empty bucket that refills from its end', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(10, 100);
    pacer.pause(500);
    assert.equal(pacer.take(), false);
    assert.equal(pacer.wait(), 600);
    clock.advance(500);
    assert.equal(pacer.take(), false);
    clock.advance(100);
    assert.equal(pacer.take(), true);
    pacer.pause(200);
    pacer.pause(50); // an earlier end does not shorten it
    assert.equal(pacer.wait(), 300);
  });

  it('a pause holds even without a limit; reset() (a new connection) ends it', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(1, 0);
    pacer.pause(300);
    assert.equal(pacer.take(), false);
    assert.equal(pacer.wait(), 300);
    clock.advance(300);
    assert.equal(pacer.take(), true);
    pacer.pause(300);
    pacer.reset(1, 0);
    assert.equal(pacer.take(), true);
  });

  it('limits announced during a pause keep it: the bucket starts empty at its end', () => {
    const clock = new FakeClock();
    const pacer = new Pacer(clock);
    pacer.reset(10, 100);
    pacer.pause(200);
    pacer.announce({ messages: 20, perMs: 1000 });
    assert.equal(pacer.take(), false);
    clock.advance(200);
    assert.equal(pacer.take(), false);
    clock.advance(56);
    assert.equal(pacer.take(), true);
  });
});
