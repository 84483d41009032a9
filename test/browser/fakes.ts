/**
 * Test doubles for the browser client: a WebSocket driven by hand, a clock whose time only
 * moves when a test says so, and a window/document pair with online state and visibility.
 */
import type { DuetClock, DuetEnvironment, SendData } from '../../src/browser/client.js';

type Handler = ((event: never) => void) | null;

/** A WebSocket whose server side the test plays: open(), message(), serverClose(). */
export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  static reset(): void {
    FakeWebSocket.instances = [];
  }
  /** The newest socket. */
  static get last(): FakeWebSocket {
    const socket = FakeWebSocket.instances.at(-1);
    if (!socket) throw new Error('no socket was created');
    return socket;
  }

  readonly url: string;
  readonly protocols: string | string[] | undefined;
  readyState = 0;
  binaryType = 'blob';
  /** What the test says the socket still holds unsent. */
  bufferedAmount = 0;
  readonly sent: SendData[] = [];
  /** close() calls by the client: [code, reason]. */
  readonly closeCalls: [number | undefined, string | undefined][] = [];
  onopen: Handler = null;
  onmessage: Handler = null;
  onerror: Handler = null;
  onclose: Handler = null;

  constructor(url: string, protocols?: string | string[]) {
    this.url = url;
    this.protocols = protocols;
    FakeWebSocket.instances.push(this);
  }

  send(data: SendData): void {
    if (this.readyState === 0) throw new Error('InvalidStateError: still CONNECTING');
    if (this.readyState === 1) this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closeCalls.push([code, reason]);
    if (this.readyState < 2) this.readyState = 2;
  }

  /** Text messages the client sent, parsed as JSON. */
  get sentJson(): Record<string, unknown>[] {
    return this.sent.map((d) => JSON.parse(d as string) as Record<string, unknown>);
  }

  open(): void {
    this.readyState = 1;
    this.fire('onopen', {});
  }

  message(data: unknown): void {
    this.fire('onmessage', { data: typeof data === 'string' ? data : JSON.stringify(data) });
  }

  rawMessage(data: unknown): void {
    this.fire('onmessage', { data });
  }

  /** The connection ends (server close, or network loss with 1006). */
  serverClose(code = 1006, reason = '', wasClean = false): void {
    this.readyState = 3;
    if (code === 1006) this.fire('onerror', {});
    this.fire('onclose', { code, reason, wasClean });
  }

  private fire(name: 'onopen' | 'onmessage' | 'onerror' | 'onclose', event: object): void {
    const handler = this[name] as ((event: object) => void) | null;
    handler?.(event);
  }
}

interface Timer {
  at: number;
  order: number;
  callback: () => void;
  ms: number;
}

/** A clock that moves only in advance(); every timer the client starts is visible. */
export class FakeClock implements DuetClock {
  time = 0;
  private next = 1;
  private readonly timers = new Map<number, Timer>();
  /** The delay of every setTimeout call, in order. */
  readonly delays: number[] = [];

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.time + ms, order: id, callback, ms });
    this.delays.push(ms);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  now(): number {
    return this.time;
  }

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** The delays of the pending timers, soonest first. */
  pendingDelays(): number[] {
    return [...this.timers.values()].sort((a, b) => a.at - b.at).map((t) => t.ms);
  }

  /** Move time forward, firing due timers in time order (timers they start included). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let due: [number, Timer] | undefined;
      for (const entry of this.timers) {
        if (
          entry[1].at <= end &&
          (!due || entry[1].at < due[1].at || (entry[1].at === due[1].at && entry[1].order < due[1].order))
        )
          due = entry;
      }
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
    }
    this.time = end;
  }
}

/** window + document + navigator, with events the test dispatches. */
export class FakeEnvironment implements DuetEnvironment {
  navigator = { onLine: true };
  private readonly windowTarget = new EventTarget();
  private readonly documentTarget = new EventTarget();
  document = {
    visibilityState: 'visible',
    addEventListener: (type: string, listener: () => void) => {
      this.count(type, 1);
      this.documentTarget.addEventListener(type, listener);
    },
    removeEventListener: (type: string, listener: () => void) => {
      this.count(type, -1);
      this.documentTarget.removeEventListener(type, listener);
    },
  };
  /** Listeners currently registered, by type (to check that close() removes them). */
  readonly counts = new Map<string, number>();

  /** Registered listeners over window and document together. */
  get listening(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  private count(type: string, delta: number): void {
    this.counts.set(type, (this.counts.get(type) ?? 0) + delta);
  }

  addEventListener(type: string, listener: () => void): void {
    this.count(type, 1);
    this.windowTarget.addEventListener(type, listener);
  }

  removeEventListener(type: string, listener: () => void): void {
    this.count(type, -1);
    this.windowTarget.removeEventListener(type, listener);
  }

  goOffline(): void {
    this.navigator.onLine = false;
    this.windowTarget.dispatchEvent(new Event('offline'));
  }

  goOnline(): void {
    this.navigator.onLine = true;
    this.windowTarget.dispatchEvent(new Event('online'));
  }

  setVisibility(state: 'visible' | 'hidden'): void {
    this.document.visibilityState = state;
    this.documentTarget.dispatchEvent(new Event('visibilitychange'));
  }
}
