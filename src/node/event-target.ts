/**
 * The WHATWG side of a connection's events: `onopen`/`onmessage`/`onerror`/`onclose` and
 * `addEventListener`/`removeEventListener` (with `once` and `signal`), layered over the
 * EventEmitter events that `ws` users listen to. Event objects are built only when such a
 * listener exists.
 */
import { EventEmitter } from 'node:events';
import { WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from './events.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
export type WsListener = (...args: any[]) => void;
type WhatwgListener = ((event: never) => void) | { handleEvent(event: never): void };
type HandlerType = 'open' | 'message' | 'error' | 'close';

/** Options of `addEventListener`. */
export interface AddEventListenerOptions {
  once?: boolean;
  /** Remove the listener when this signal aborts. */
  signal?: AbortSignal;
}

const kWhatwg = Symbol('whatwgListener');
type Tagged = WsListener & { [kWhatwg]?: WhatwgListener; listener?: Tagged };

/**
 * EventEmitter keeps its listeners in `_events`, made as a null-prototype object literal: in
 * V8 that is a dictionary-mode object, about 180 bytes per connection once a listener is on.
 * An object made by this constructor (prototype: an empty null-prototype object, so no
 * inherited names) stays in fast mode, as Node's own streams do for theirs.
 */
const ListenerTable = function ListenerTable() {} as unknown as new () => object;
ListenerTable.prototype = Object.create(null) as object;

export abstract class WsEventTarget extends EventEmitter {
  // Made when the first on* handler is set: most server-side connections never have one.
  private handlers: Partial<Record<HandlerType, ((event: never) => void) | null>> | undefined;

  abstract readyState: number;

  constructor() {
    super();
    (this as unknown as { _events: object })._events = new ListenerTable();
  }
  /**
   * Whether WHATWG listeners get the message being emitted: decided once per message (it was
   * received while OPEN), so close() in one listener does not hide it from the next.
   */
  protected whatwgDispatch = true;
  /** True when both Close frames were exchanged (for CloseEvent.wasClean). */
  abstract get wasClean(): boolean;
  /** True when the peer's Close frame arrived (otherwise a CloseEvent reports 1006). */
  protected abstract get closeFrameReceived(): boolean;
  /** `event.data` of a binary MessageEvent, from what `message` listeners got (by default the same). */
  protected whatwgMessageData(data: unknown): unknown {
    return data;
  }
  /** The origin reported in MessageEvent.origin. */
  protected abstract get eventOrigin(): string;

  get onopen(): ((event: WsEvent) => void) | null {
    return (this.handlers?.open as ((event: WsEvent) => void) | undefined) ?? null;
  }
  set onopen(fn: ((event: WsEvent) => void) | null) {
    this.setHandler('open', fn);
  }
  get onmessage(): ((event: WsMessageEvent) => void) | null {
    return (this.handlers?.message as ((event: WsMessageEvent) => void) | undefined) ?? null;
  }
  set onmessage(fn: ((event: WsMessageEvent) => void) | null) {
    this.setHandler('message', fn);
  }
  get onerror(): ((event: WsErrorEvent) => void) | null {
    return (this.handlers?.error as ((event: WsErrorEvent) => void) | undefined) ?? null;
  }
  set onerror(fn: ((event: WsErrorEvent) => void) | null) {
    this.setHandler('error', fn);
  }
  get onclose(): ((event: WsCloseEvent) => void) | null {
    return (this.handlers?.close as ((event: WsCloseEvent) => void) | undefined) ?? null;
  }
  set onclose(fn: ((event: WsCloseEvent) => void) | null) {
    this.setHandler('close', fn);
  }

  private setHandler(type: HandlerType, fn: ((event: never) => void) | null): void {
    const handlers = (this.handlers ??= {});
    const old = handlers[type];
    if (old) this.removeEventListener(type, old);
    handlers[type] = typeof fn === 'function' ? fn : null;
    if (typeof fn === 'function') this.addEventListener(type, fn);
  }

  /**
   * WHATWG-style listener: `message` events carry `data` (string for text) and `origin`,
   * `close` events `code`, `reason` and `wasClean`, `error` events the `Error`.
   */
  addEventListener(type: string, listener: WhatwgListener | null, options?: AddEventListenerOptions | boolean): void {
    if (listener === null || listener === undefined) return;
    const opts = typeof options === 'object' ? options : {};
    if (opts.signal?.aborted) return;
    for (const existing of this.rawListeners(type) as Tagged[]) {
      if (existing[kWhatwg] === listener || existing.listener?.[kWhatwg] === listener) return;
    }
    const call = (event: WsEvent): void => {
      if (typeof listener === 'function') (listener as (e: WsEvent) => void).call(this, event);
      else (listener.handleEvent as (e: WsEvent) => void).call(listener, event);
    };
    let wrapper: Tagged;
    switch (type) {
      case 'message':
        wrapper = (data: unknown, isBinary: boolean) => {
          // WHATWG: a message received once the socket is no longer OPEN is not dispatched.
          if (!this.whatwgDispatch) return;
          call(new WsMessageEvent(this, isBinary ? this.whatwgMessageData(data) : (data as Buffer).toString('utf8'), this.eventOrigin));
        };
        break;
      case 'close':
        wrapper = (code: number, reason: Buffer) => {
          // RFC 6455 7.1.5, which the WHATWG close event follows: without a Close frame from
          // the peer the connection close code is 1006, also when we failed the connection
          // with another code (ws-style listeners get that code; see docs/server.md).
          call(new WsCloseEvent(this, this.closeFrameReceived ? code : 1006, this.closeFrameReceived ? reason.toString('utf8') : '', this.wasClean));
        };
        break;
      case 'error':
        wrapper = (err: Error) => call(new WsErrorEvent(this, err));
        break;
      default:
        wrapper = () => call(new WsEvent(type, this));
    }
    wrapper[kWhatwg] = listener;
    if (opts.once) this.once(type, wrapper);
    else this.on(type, wrapper);
    opts.signal?.addEventListener('abort', () => this.removeEventListener(type, listener), { once: true });
  }

  removeEventListener(type: string, listener: WhatwgListener | null): void {
    if (listener === null || listener === undefined) return;
    for (const existing of this.rawListeners(type) as Tagged[]) {
      if (existing[kWhatwg] === listener || existing.listener?.[kWhatwg] === listener) {
        this.removeListener(type, existing);
        return;
      }
    }
  }

  /** Dispatch a WHATWG event object to `on*` handlers and `addEventListener` listeners of its type. */
  dispatchEvent(event: WsEvent): boolean {
    for (const l of this.rawListeners(event.type) as Tagged[]) {
      const target = l[kWhatwg] ?? l.listener?.[kWhatwg];
      if (target === undefined) continue;
      if (typeof target === 'function') (target as (e: WsEvent) => void).call(this, event);
      else (target.handleEvent as (e: WsEvent) => void).call(target, event);
    }
    return true;
  }
}
