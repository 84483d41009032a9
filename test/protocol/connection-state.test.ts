/**
 * The connection's wire state machine (src/protocol/connection-state.ts), without sockets: a
 * table of state x event -> next state and actions (as python-websockets tests its sans-I/O
 * Protocol), then properties over every state reachable from a new connection on either side.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Action,
  CLOSE_RECEIVED,
  CLOSE_SENT,
  CLOSED,
  CLOSING,
  CONNECTING,
  EOF_RECEIVED,
  FAILED,
  OPEN,
  SERVER,
  TCP_ENDING,
  canSend,
  closingHeld,
  connectionCloseCode,
  fail,
  initialState,
  opened,
  readyStateOf,
  receiveClose,
  receiveEof,
  startClosing,
  tcpClosed,
  terminate,
  wasClean,
  type Transition,
  type WireState,
} from '../../src/protocol/connection-state.js';

const { STOP_READING, SEND_CLOSE, ECHO_CLOSE, END_TCP, ARM_CLOSE_TIMER, DESTROY_TCP } = Action;

type Event = 'startClosing' | 'receiveClose' | 'fail' | 'receiveEof' | 'terminate';
const EVENTS: Record<Event, (s: WireState) => Transition> = { startClosing, receiveClose, fail, receiveEof, terminate };

/** A readable name for a state: readyState and flags. */
function describeState(s: WireState): string {
  const names = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
  const flags: Array<[number, string]> = [
    [SERVER, 'server'],
    [CLOSE_SENT, 'closeSent'],
    [CLOSE_RECEIVED, 'closeReceived'],
    [FAILED, 'failed'],
    [TCP_ENDING, 'tcpEnding'],
    [EOF_RECEIVED, 'eof'],
  ];
  return [names[readyStateOf(s)], ...flags.filter(([bit]) => (s & bit) !== 0).map(([, n]) => n)].join(' ');
}

function describeActions(a: number): string {
  const names: Array<[number, string]> = [
    [STOP_READING, 'STOP_READING'],
    [SEND_CLOSE, 'SEND_CLOSE'],
    [ECHO_CLOSE, 'ECHO_CLOSE'],
    [END_TCP, 'END_TCP'],
    [ARM_CLOSE_TIMER, 'ARM_CLOSE_TIMER'],
    [DESTROY_TCP, 'DESTROY_TCP'],
  ];
  return (
    names
      .filter(([bit]) => (a & bit) !== 0)
      .map(([, n]) => n)
      .join(' ') || '-'
  );
}

const SERVER_OPEN = opened(initialState(true));
const CLIENT_OPEN = opened(initialState(false));

describe('connection state: table of state x event -> state, actions', () => {
  // [side, path of events from OPEN, event, expected state, expected actions]
  const rows: Array<[string, Event[], Event, string, string]> = [
    // Closing from OPEN.
    ['server', [], 'startClosing', 'CLOSING server closeSent', 'SEND_CLOSE ARM_CLOSE_TIMER'],
    ['client', [], 'startClosing', 'CLOSING closeSent', 'SEND_CLOSE ARM_CLOSE_TIMER'],
    ['server', [], 'receiveClose', 'CLOSING server closeReceived', 'ECHO_CLOSE'],
    ['client', [], 'receiveClose', 'CLOSING closeReceived', 'ECHO_CLOSE'],
    // The echo: the server closes TCP first (7.1.1), the client waits for it.
    [
      'server',
      ['receiveClose'],
      'startClosing',
      'CLOSING server closeSent closeReceived tcpEnding',
      'SEND_CLOSE END_TCP ARM_CLOSE_TIMER',
    ],
    ['client', ['receiveClose'], 'startClosing', 'CLOSING closeSent closeReceived', 'SEND_CLOSE ARM_CLOSE_TIMER'],
    // The peer answers our Close.
    ['server', ['startClosing'], 'receiveClose', 'CLOSING server closeSent closeReceived tcpEnding', 'END_TCP'],
    ['client', ['startClosing'], 'receiveClose', 'CLOSING closeSent closeReceived', '-'],
    // Once only.
    ['server', ['startClosing'], 'startClosing', 'CLOSING server closeSent', '-'],
    ['server', ['receiveClose'], 'receiveClose', 'CLOSING server closeReceived', '-'],
    [
      'server',
      ['startClosing', 'receiveClose'],
      'startClosing',
      'CLOSING server closeSent closeReceived tcpEnding',
      '-',
    ],
    // Failing (7.1.7): a Close if none was sent, stop reading, close TCP at once (both sides).
    [
      'server',
      [],
      'fail',
      'CLOSING server closeSent failed tcpEnding',
      'STOP_READING SEND_CLOSE END_TCP ARM_CLOSE_TIMER',
    ],
    ['client', [], 'fail', 'CLOSING closeSent failed tcpEnding', 'STOP_READING SEND_CLOSE END_TCP ARM_CLOSE_TIMER'],
    ['client', ['startClosing'], 'fail', 'CLOSING closeSent failed tcpEnding', 'STOP_READING END_TCP ARM_CLOSE_TIMER'],
    [
      'server',
      ['startClosing', 'receiveClose'],
      'fail',
      'CLOSING server closeSent closeReceived failed tcpEnding',
      'STOP_READING ARM_CLOSE_TIMER',
    ],
    // After failing, a Close from the peer is not processed.
    ['server', ['fail'], 'receiveClose', 'CLOSING server closeSent failed tcpEnding', '-'],
    ['server', ['fail'], 'startClosing', 'CLOSING server closeSent failed tcpEnding', '-'],
    // The peer's FIN.
    ['server', [], 'receiveEof', 'CLOSING server tcpEnding eof', 'STOP_READING END_TCP ARM_CLOSE_TIMER'],
    [
      'client',
      ['startClosing', 'receiveClose'],
      'receiveEof',
      'CLOSING closeSent closeReceived tcpEnding eof',
      'STOP_READING END_TCP ARM_CLOSE_TIMER',
    ],
    [
      'server',
      ['startClosing', 'receiveClose'],
      'receiveEof',
      'CLOSING server closeSent closeReceived tcpEnding eof',
      'STOP_READING ARM_CLOSE_TIMER',
    ],
    // terminate(): drop TCP, no handshake.
    ['server', [], 'terminate', 'CLOSING server', 'DESTROY_TCP'],
    ['client', ['startClosing'], 'terminate', 'CLOSING closeSent', 'DESTROY_TCP'],
  ];
  for (const [side, path, event, expectedState, expectedActions] of rows) {
    it(`${side} ${['OPEN', ...path].join(' -> ')} + ${event} => ${expectedState} / ${expectedActions}`, () => {
      let state = side === 'server' ? SERVER_OPEN : CLIENT_OPEN;
      for (const step of path) state = EVENTS[step](state).state;
      const { state: next, actions } = EVENTS[event](state);
      assert.equal(describeState(next), expectedState);
      assert.equal(describeActions(actions), expectedActions);
    });
  }

  it("CONNECTING: closing is the opening handshake's business (no Close frame); failing ends TCP without one", () => {
    const s = initialState(false);
    assert.deepEqual(startClosing(s), { state: s, actions: 0 });
    const failed = fail(s);
    assert.equal(describeState(failed.state), 'CLOSING closeSent failed tcpEnding');
    assert.equal(describeActions(failed.actions), 'STOP_READING END_TCP ARM_CLOSE_TIMER');
    assert.equal(opened(s), CLIENT_OPEN);
    assert.equal(opened(CLIENT_OPEN), CLIENT_OPEN, 'opened twice changes nothing');
  });

  it('CLOSED is final: every event is a no-op', () => {
    for (const open of [SERVER_OPEN, CLIENT_OPEN]) {
      const closed = tcpClosed(open);
      assert.equal(readyStateOf(closed), CLOSED);
      for (const [name, event] of Object.entries(EVENTS))
        assert.deepEqual(event(closed), { state: closed, actions: 0 }, name);
      assert.equal(opened(closed), closed);
      assert.equal(closingHeld(closed), closed);
    }
  });

  it('closingHeld: CLOSING with no Close yet; nothing may be sent; the Close follows with startClosing', () => {
    const held = closingHeld(SERVER_OPEN);
    assert.equal(describeState(held), 'CLOSING server');
    assert.equal(canSend(held), false);
    assert.equal(describeActions(startClosing(held).actions), 'SEND_CLOSE ARM_CLOSE_TIMER');
    assert.equal(closingHeld(held), held);
  });

  it('canSend only while OPEN without a Close sent', () => {
    assert.equal(canSend(initialState(true)), false);
    assert.equal(canSend(SERVER_OPEN), true);
    assert.equal(canSend(CLIENT_OPEN), true);
    assert.equal(canSend(receiveClose(SERVER_OPEN).state), false, 'CLOSING after a Close received: only the echo');
    assert.equal(canSend(startClosing(SERVER_OPEN).state), false);
  });

  it('the close code (7.1.5): the received one, 1005 without one, 1006 without a Close frame', () => {
    const received = receiveClose(SERVER_OPEN).state;
    assert.equal(connectionCloseCode(received, 4000), 4000);
    assert.equal(connectionCloseCode(received, undefined), 1005);
    assert.equal(connectionCloseCode(startClosing(SERVER_OPEN).state, 4000), 1006);
    assert.equal(connectionCloseCode(tcpClosed(SERVER_OPEN), undefined), 1006);
  });

  it('wasClean only with both Close frames', () => {
    assert.equal(wasClean(startClosing(SERVER_OPEN).state), false);
    assert.equal(wasClean(receiveClose(startClosing(SERVER_OPEN).state).state), true);
    assert.equal(wasClean(startClosing(receiveClose(CLIENT_OPEN).state).state), true);
  });
});

describe('connection state: properties over every reachable state', () => {
  /** Every state reachable from OPEN (and CONNECTING) on both sides, with the actions on the way. */
  function explore(): Array<{ path: string[]; state: WireState; sent: number; ended: number; destroyed: number }> {
    const seen = new Map<
      string,
      { path: string[]; state: WireState; sent: number; ended: number; destroyed: number }
    >();
    const queue = [initialState(true), initialState(false), SERVER_OPEN, CLIENT_OPEN].map((state) => ({
      path: [] as string[],
      state,
      sent: 0,
      ended: 0,
      destroyed: 0,
    }));
    while (queue.length > 0) {
      const node = queue.shift()!;
      // Counts above 1 are already a failure: capping them keeps the space finite.
      const key = `${node.state}/${Math.min(node.sent, 2)}/${Math.min(node.ended, 2)}`;
      if (seen.has(key)) continue;
      seen.set(key, node);
      for (const [name, event] of Object.entries(EVENTS)) {
        const { state, actions } = event(node.state);
        queue.push({
          path: [...node.path, name],
          state,
          sent: node.sent + ((actions & SEND_CLOSE) !== 0 ? 1 : 0),
          ended: node.ended + ((actions & END_TCP) !== 0 ? 1 : 0),
          destroyed: node.destroyed + ((actions & DESTROY_TCP) !== 0 ? 1 : 0),
        });
      }
      queue.push({ ...node, path: [...node.path, 'tcpClosed'], state: tcpClosed(node.state) });
    }
    return [...seen.values()];
  }
  const all = explore();

  it('explores a bounded state space', () => {
    assert.ok(all.length > 20 && all.length < 2000, `${all.length} states`);
  });

  it('at most one Close frame and one FIN per connection, on every path', () => {
    for (const n of all) {
      assert.ok(n.sent <= 1, `two Close frames: ${n.path.join(' ')}`);
      assert.ok(n.ended <= 1, `two FINs: ${n.path.join(' ')}`);
    }
  });

  it('a Close is sent only after the connection was open; flags are never cleared', () => {
    for (const n of all) {
      if (n.sent > 0) assert.ok((n.state & CLOSE_SENT) !== 0, n.path.join(' '));
    }
    for (const n of all) {
      for (const event of Object.values(EVENTS)) {
        const next = event(n.state).state;
        for (const bit of [CLOSE_SENT, CLOSE_RECEIVED, FAILED, TCP_ENDING, EOF_RECEIVED, SERVER]) {
          if ((n.state & bit) !== 0) assert.ok((next & bit) !== 0, `flag cleared from ${describeState(n.state)}`);
        }
        assert.ok(
          readyStateOf(next) >= readyStateOf(n.state) || readyStateOf(n.state) === CONNECTING,
          'readyState never goes back',
        );
      }
    }
  });

  it('a clean handshake on the client side never ends TCP first; on the server side it does once both Closes are exchanged', () => {
    for (const n of all) {
      const clean = n.path.every((step) => step === 'startClosing' || step === 'receiveClose');
      if (!clean || !wasClean(n.state)) continue;
      if ((n.state & SERVER) !== 0) assert.equal(n.ended, 1, `server: ${n.path.join(' ')}`);
      else assert.equal(n.ended, 0, `client: ${n.path.join(' ')}`);
    }
  });

  it('nothing can be sent in any state but OPEN', () => {
    for (const n of all) {
      if (canSend(n.state)) assert.equal(readyStateOf(n.state), OPEN);
      if (readyStateOf(n.state) === CLOSING || readyStateOf(n.state) === CLOSED) assert.equal(canSend(n.state), false);
    }
    assert.equal(readyStateOf(closingHeld(CLIENT_OPEN)), CLOSING);
  });
});
