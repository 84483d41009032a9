/**
 * The WHATWG side of a connection's events: `onopen`/`onmessage`/`onerror`/`onclose` and
 * `addEventListener`/`removeEventListener` (with `once` and `signal`), layered over the
 * EventEmitter events that `ws` users listen to. Event objects are built only when such a
 * listener exists. WHATWG listeners follow the DOM's rules (a listener removed during a
 * dispatch is not called, `once` also under dispatchEvent, an on* attribute is its own entry
 * and keeps its place when reassigned); ws-style ones keep EventEmitter's.
 */
import { EventEmitter } from 'node:events';
import { WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from './events.js';

/**
 * A WHATWG listener: a function, or an object with a `handleEvent` method (looked up at each
 * dispatch), called with the event object.
 */
export type WsEventListener<E = WsEvent> = ((event: E) => void) | { handleEvent(event: E): void };

/** The event objects of the events a connection dispatches to WHATWG listeners. */
export interface WsEventMap {
  open: WsEvent;
  message: WsMessageEvent;
  error: WsErrorEvent;
  close: WsCloseEvent;
}

type HandlerType = keyof WsEventMap;
/** Any WHATWG listener, whatever event type it declares (the list stores them all). */
type WhatwgListener = WsEventListener<never>;

/** Options of `addEventListener`. */
export interface AddEventListenerOptions {
  /** Remove the listener before its first call. */
  once?: boolean;
  /** Remove the listener when this signal aborts. */
  signal?: AbortSignal;
}

/**
 * A WHATWG listener is registered with EventEmitter as a wrapper function (one closure, so
 * ws-style and WHATWG listeners share one list and one order) that carries its listener and
 * flags as properties. `kWhatwg` is the listener, or `kHandler` for an on* attribute's entry.
 */
const kWhatwg = Symbol('whatwgListener');
/** The DOM's "once": removed before its first call. */
const kOnce = Symbol('once');
/** The DOM's "removed" flag: a listener removed during a dispatch is not called by it. */
const kRemoved = Symbol('removed');
/**
 * The listener entry of an event handler attribute (HTML "event handler"): its own entry in
 * the list, distinct from any addEventListener of the same function; it calls whatever the
 * attribute holds at the time.
 */
const kHandler = Symbol('eventHandler');
type Wrapper = ((a?: unknown, b?: unknown) => void) & {
  [kWhatwg]: WhatwgListener | typeof kHandler;
  [kOnce]?: true;
  [kRemoved]?: true;
};

/** Whether an entry of EventEmitter's list is a WHATWG listener's wrapper (not a ws-style listener). */
function isWrapper(l: unknown): l is Wrapper {
  return typeof l === 'function' && (l as Partial<Wrapper>)[kWhatwg] !== undefined;
}

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
   * @internal
   */
  protected whatwgDispatch = true;
  /** True when both Close frames were exchanged (for CloseEvent.wasClean). */
  abstract get wasClean(): boolean;
  // The hooks below are internal (left out of the published .d.ts) together with their
  // implementations in the connection: an abstract member declared there but implemented by
  // stripped members would make the published WebSocket class look unfinished.
  /** True when the peer's Close frame arrived (otherwise a CloseEvent reports 1006). @internal */
  protected abstract get closeFrameReceived(): boolean;
  /** `event.data` of a binary MessageEvent, from what `message` listeners got (by default the same). @internal */
  protected whatwgMessageData(data: unknown): unknown {
    return data;
  }
  /** The origin reported in MessageEvent.origin. @internal */
  protected abstract get eventOrigin(): string;

  /** The `open` event handler (browser style); null removes it. */
  get onopen(): ((event: WsEvent) => void) | null {
    return this.handler('open') as ((event: WsEvent) => void) | null;
  }
  set onopen(fn: ((event: WsEvent) => void) | null) {
    this.setHandler('open', fn);
  }
  /** The `message` event handler (browser style): `event.data` is a string for text. */
  get onmessage(): ((event: WsMessageEvent) => void) | null {
    return this.handler('message') as ((event: WsMessageEvent) => void) | null;
  }
  set onmessage(fn: ((event: WsMessageEvent) => void) | null) {
    this.setHandler('message', fn);
  }
  /** The `error` event handler (browser style): `event.error` is the Error, with its `code`. */
  get onerror(): ((event: WsErrorEvent) => void) | null {
    return this.handler('error') as ((event: WsErrorEvent) => void) | null;
  }
  set onerror(fn: ((event: WsErrorEvent) => void) | null) {
    this.setHandler('error', fn);
  }
  /** The `close` event handler (browser style): `event.code`, `event.reason`, `event.wasClean`. */
  get onclose(): ((event: WsCloseEvent) => void) | null {
    return this.handler('close') as ((event: WsCloseEvent) => void) | null;
  }
  set onclose(fn: ((event: WsCloseEvent) => void) | null) {
    this.setHandler('close', fn);
  }

  /**
   * The function an on* attribute holds: null once its entry left the list, also through the
   * EventEmitter side (`removeAllListeners()`), as in ws.
   */
  private handler(type: HandlerType): ((event: never) => void) | null {
    const fn = this.handlers?.[type];
    return fn != null && this.findWrapper(type, kHandler) !== undefined ? fn : null;
  }

  /**
   * HTML's event handler IDL attribute setter: null (or a non-function) removes the handler's
   * listener entry; a function adds it at the end of the list the first time, and after that
   * only replaces the function it calls, so the handler keeps its place among the listeners.
   */
  private setHandler(type: HandlerType, fn: ((event: never) => void) | null): void {
    const value = typeof fn === 'function' ? fn : null;
    if (value === null && this.handlers === undefined) return;
    const handlers = (this.handlers ??= {});
    handlers[type] = value;
    const entry = this.findWrapper(type, kHandler);
    if (value === null) {
      if (entry !== undefined) this.removeWrapper(type, entry);
    } else if (entry === undefined) {
      this.addWrapper(type, kHandler, false);
    }
  }

  /**
   * WHATWG-style listener: `message` events carry `data` (string for text) and `origin`,
   * `close` events `code`, `reason` and `wasClean`, `error` events the `Error`.
   */
  addEventListener<K extends keyof WsEventMap>(
    type: K,
    listener: WsEventListener<WsEventMap[K]> | null,
    options?: AddEventListenerOptions | boolean,
  ): void;
  /**
   * A listener of another event type (one `dispatchEvent` sends), or one that declares its own
   * event type: it gets whatever event object was dispatched.
   */
  addEventListener<E = WsEvent>(
    type: string,
    listener: WsEventListener<E> | null,
    options?: AddEventListenerOptions | boolean,
  ): void;
  addEventListener(type: string, listener: WhatwgListener | null, options?: AddEventListenerOptions | boolean): void {
    if (listener === null || listener === undefined) return;
    const opts = typeof options === 'object' ? options : {};
    const signal = opts.signal;
    if (signal?.aborted) return;
    if (this.findWrapper(type, listener) !== undefined) return;
    const wrapper = this.addWrapper(type, listener, opts.once === true);
    // DOM: the signal removes this entry (not a later addEventListener of the same listener).
    signal?.addEventListener('abort', () => this.removeWrapper(type, wrapper), { once: true });
  }

  /** Remove a listener added with `addEventListener` (the same function or object, the same type). */
  removeEventListener(type: string, listener: WhatwgListener | null): void {
    if (listener === null || listener === undefined) return;
    const wrapper = this.findWrapper(type, listener);
    if (wrapper !== undefined) this.removeWrapper(type, wrapper);
  }

  /**
   * Dispatch a WHATWG event object to the `on*` handler and `addEventListener` listeners of its
   * type (not to ws-style listeners, which take other arguments), by the DOM's rules: in the
   * order of the list when the dispatch starts, skipping entries removed meanwhile, `once`
   * entries removed before they are called.
   */
  dispatchEvent(event: WsEvent): boolean {
    const type = event.type;
    for (const l of this.rawListeners(type)) {
      if (isWrapper(l) && l[kRemoved] === undefined) this.invoke(type, l, event);
    }
    return true;
  }

  private findWrapper(type: string, listener: WhatwgListener | typeof kHandler): Wrapper | undefined {
    for (const l of this.rawListeners(type)) {
      if (isWrapper(l) && l[kWhatwg] === listener) return l;
    }
    return undefined;
  }

  private removeWrapper(type: string, wrapper: Wrapper): void {
    wrapper[kRemoved] = true;
    this.removeListener(type, wrapper);
  }

  /** Register a WHATWG listener (or the entry of an on* attribute) at the end of the list. */
  private addWrapper(type: string, listener: WhatwgListener | typeof kHandler, once: boolean): Wrapper {
    // One closure per listener; what it needs beyond `this` and `type` is on the function.
    const wrapper = ((a?: unknown, b?: unknown): void => {
      if (wrapper[kRemoved] !== undefined) return;
      const event = this.whatwgEvent(type, a, b);
      if (event !== undefined) this.invoke(type, wrapper, event);
    }) as Wrapper;
    wrapper[kWhatwg] = listener;
    if (once) wrapper[kOnce] = true;
    this.on(type, wrapper);
    return wrapper;
  }

  /** The event object for what the connection emitted; undefined when it is not dispatched. */
  private whatwgEvent(type: string, a: unknown, b: unknown): WsEvent | undefined {
    switch (type) {
      case 'message':
        // WHATWG: a message received once the socket is no longer OPEN is not dispatched.
        if (!this.whatwgDispatch) return undefined;
        return new WsMessageEvent(
          this,
          b ? this.whatwgMessageData(a) : (a as Buffer).toString('utf8'),
          this.eventOrigin,
        );
      case 'close': {
        // RFC 6455 7.1.5, which the WHATWG close event follows: without a Close frame from
        // the peer the connection close code is 1006, also when we failed the connection
        // with another code (ws-style listeners get that code; see docs/server.md).
        const received = this.closeFrameReceived;
        return new WsCloseEvent(
          this,
          received ? (a as number) : 1006,
          received ? (b as Buffer).toString('utf8') : '',
          this.wasClean,
        );
      }
      case 'error':
        return new WsErrorEvent(this, a as Error);
      default:
        return new WsEvent(type, this);
    }
  }

  /** Call one entry's listener with `event` (DOM "inner invoke", for one listener). */
  private invoke(type: string, wrapper: Wrapper, event: WsEvent): void {
    if (wrapper[kOnce] !== undefined) this.removeWrapper(type, wrapper);
    const listener = wrapper[kWhatwg];
    if (listener === kHandler) {
      const handler = this.handlers?.[type as HandlerType];
      if (typeof handler === 'function') (handler as (e: WsEvent) => void).call(this, event);
    } else if (typeof listener === 'function') {
      (listener as (e: WsEvent) => void).call(this, event);
    } else {
      (listener.handleEvent as (e: WsEvent) => void).call(listener, event);
    }
  }
}
