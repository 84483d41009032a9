/**
 * The browser client's Heartbeat on its own, on the FakeClock of fakes.ts (time moves only when
 * the test says): first ping one interval after start, the next one interval after each pong,
 * latency, death when the ping's own answer does not arrive within the timeout (nothing else
 * counts), answered() for a ping the server refused, probe(), stop().
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Heartbeat } from '../../src/browser/heartbeat.js';
import { FakeClock } from './fakes.js';

const INTERVAL = 25_000;
const TIMEOUT = 10_000;

function setup(interval = INTERVAL, timeout = TIMEOUT) {
  const clock = new FakeClock();
  const log: string[] = [];
  const pings: number[] = [];
  const latencies: number[] = [];
  const heartbeat = new Heartbeat(clock, interval, timeout, {
    ping: (id) => {
      pings.push(id);
      log.push(`ping ${id} at ${clock.now()}`);
    },
    dead: () => log.push(`dead at ${clock.now()}`),
    latency: (ms) => latencies.push(ms),
  });
  return { clock, heartbeat, log, pings, latencies };
}

describe('Heartbeat: pings and pongs', () => {
  it('the first ping goes out one interval after start, not before', () => {
    const { clock, heartbeat, log } = setup();
    heartbeat.start();
    assert.equal(clock.pending, 1);
    clock.advance(INTERVAL - 1);
    assert.deepEqual(log, []);
    clock.advance(1);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`]);
  });

  it('a pong reports the round trip and schedules the next ping one interval later; ids count up', () => {
    const { clock, heartbeat, log, pings, latencies } = setup();
    heartbeat.start();
    clock.advance(INTERVAL);
    clock.advance(120);
    heartbeat.pong(1);
    assert.deepEqual(latencies, [120]);
    assert.equal(clock.pending, 1, 'only the next ping is waiting (the pong timeout was cleared)');
    clock.advance(INTERVAL - 1);
    assert.equal(pings.length, 1);
    clock.advance(1);
    clock.advance(30);
    heartbeat.pong(2);
    assert.deepEqual(pings, [1, 2]);
    assert.deepEqual(latencies, [120, 30]);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`, `ping 2 at ${2 * INTERVAL + 120}`]);
  });

  it('a pong with another id (late, or never asked for) is ignored: no latency, no reschedule', () => {
    const { clock, heartbeat, latencies } = setup();
    heartbeat.start();
    heartbeat.pong(1); // before any ping
    clock.advance(INTERVAL);
    heartbeat.pong(0);
    heartbeat.pong('1');
    heartbeat.pong(undefined);
    assert.deepEqual(latencies, []);
    assert.equal(clock.pending, 1, 'still waiting for pong 1');
    heartbeat.pong(1);
    heartbeat.pong(1); // a duplicate
    assert.deepEqual(latencies, [0]);
    assert.equal(clock.pending, 1);
  });
});

describe('Heartbeat: a dead connection', () => {
  it('no pong within the timeout after a ping: dead, once, and no timers remain', () => {
    const { clock, heartbeat, log } = setup();
    heartbeat.start();
    clock.advance(INTERVAL + TIMEOUT - 1);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`]);
    clock.advance(1);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`, `dead at ${INTERVAL + TIMEOUT}`]);
    assert.equal(clock.pending, 0);
    clock.advance(10 * INTERVAL);
    assert.equal(log.length, 2);
  });

  it('only the answer to its own ping counts: a pong with another id on time is not one, dead at interval + timeout', () => {
    const { clock, heartbeat, log, latencies } = setup();
    heartbeat.start();
    clock.advance(INTERVAL + 5);
    heartbeat.pong(7);
    assert.equal(heartbeat.answered(7), false);
    clock.advance(TIMEOUT - 5);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`, `dead at ${INTERVAL + TIMEOUT}`]);
    assert.deepEqual(latencies, []);
    heartbeat.pong(1); // too late: the connection was declared dead
    assert.deepEqual(latencies, []);
    assert.equal(clock.pending, 0);
  });

  it('answered(id) (the server refused the ping for its rate limit): alive, no latency, next ping one interval later', () => {
    const { clock, heartbeat, log, latencies } = setup();
    heartbeat.start();
    clock.advance(INTERVAL + 100);
    assert.equal(heartbeat.answered(1), true);
    assert.equal(heartbeat.answered(1), false, 'once');
    assert.deepEqual(latencies, []);
    clock.advance(INTERVAL + TIMEOUT - 1);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`, `ping 2 at ${2 * INTERVAL + 100}`]);
    heartbeat.pong(2);
    assert.ok(!log.some((l) => l.startsWith('dead')));
    assert.equal(heartbeat.answered(null), false);
  });

  it('the bound: a path that dies right after a pong is declared dead interval + timeout later', () => {
    const { clock, heartbeat, log } = setup(20_000, 10_000);
    heartbeat.start();
    clock.advance(20_000);
    heartbeat.pong(1); // the last sign of life
    clock.advance(30_000 - 1);
    assert.ok(!log.some((l) => l.startsWith('dead')));
    clock.advance(1);
    assert.equal(log.at(-1), `dead at ${20_000 + 30_000}`);
  });
});

describe('Heartbeat: probe, stop, start, off', () => {
  it('probe() pings now instead of at the scheduled time; the schedule then restarts from the pong', () => {
    const { clock, heartbeat, log, latencies } = setup();
    heartbeat.start();
    clock.advance(1000);
    heartbeat.probe();
    assert.deepEqual(log, ['ping 1 at 1000']);
    assert.equal(clock.pending, 1, 'the scheduled ping was cancelled; only the pong timeout waits');
    clock.advance(40);
    heartbeat.pong(1);
    assert.deepEqual(latencies, [40]);
    clock.advance(INTERVAL);
    assert.deepEqual(log, ['ping 1 at 1000', `ping 2 at ${1040 + INTERVAL}`]);
  });

  it('probe() while a ping is unanswered, before start, or after stop does nothing', () => {
    const { clock, heartbeat, log } = setup();
    heartbeat.probe();
    assert.deepEqual([log, clock.pending], [[], 0]);
    heartbeat.start();
    clock.advance(INTERVAL);
    heartbeat.probe();
    assert.equal(log.length, 1);
    heartbeat.stop();
    heartbeat.probe();
    assert.deepEqual([log.length, clock.pending], [1, 0]);
  });

  it('stop() leaves no timer and ignores a pong that arrives afterwards', () => {
    const { clock, heartbeat, log, latencies } = setup();
    heartbeat.start();
    clock.advance(INTERVAL);
    heartbeat.stop();
    assert.equal(clock.pending, 0);
    heartbeat.pong(1);
    clock.advance(10 * INTERVAL);
    assert.deepEqual(latencies, []);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`]);
  });

  it('start() again (a new connection) starts over: one timer, the first ping one interval later, ids keep counting', () => {
    const { clock, heartbeat, log } = setup();
    heartbeat.start();
    clock.advance(INTERVAL); // ping 1, unanswered
    heartbeat.start();
    heartbeat.start();
    assert.equal(clock.pending, 1);
    heartbeat.pong(1); // belongs to the old connection
    clock.advance(INTERVAL);
    assert.deepEqual(log, [`ping 1 at ${INTERVAL}`, `ping 2 at ${2 * INTERVAL}`]);
  });

  it('interval 0 turns it off: disabled, start() schedules nothing, probe() sends nothing', () => {
    const { clock, heartbeat, log } = setup(0);
    assert.equal(heartbeat.enabled, false);
    heartbeat.start();
    heartbeat.probe();
    clock.advance(10 * TIMEOUT);
    assert.deepEqual([log, clock.pending], [[], 0]);
    assert.equal(setup().heartbeat.enabled, true);
  });
});
