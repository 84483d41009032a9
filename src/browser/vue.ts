/**
 * `duet/vue`: DuetClient as a Vue 3 composable. The client's state arrives as refs, and
 * everything it started (socket, timers, listeners, subscriptions) ends with the component or
 * effect scope that called it. On the server (SSR) it creates nothing.
 *
 *   const { status, publish, subscribe } = useDuet('wss://example.com/channel');
 *   subscribe('chat', (data) => messages.value.push(data));
 *
 * `vue` is an optional peer dependency: only this file imports it.
 */
import {
  getCurrentInstance,
  getCurrentScope,
  inject,
  onMounted,
  onScopeDispose,
  ref,
  shallowRef,
  ssrContextKey,
  type EffectScope,
  type Ref,
} from 'vue';
import {
  DuetClient,
  DuetError,
  type DuetClientOptions,
  type DuetCloseInfo,
  type DuetStatus,
  type SendData,
  type TopicHandler,
  type TopicPosition,
  type WebSocketConstructorLike,
} from './client.js';

export type { DuetClientOptions, DuetCloseInfo, DuetStatus } from './client.js';

/** What useDuet returns. */
export interface UseDuet {
  /** The client, null during SSR. */
  client: DuetClient | null;
  status: Ref<DuetStatus>;
  /** The last raw message (plain mode) or the data of the last delivered channel message. */
  data: Ref<unknown>;
  /** The last error; cleared when a connection opens. */
  error: Ref<Error | null>;
  retries: Ref<number>;
  latency: Ref<number | null>;
  lastClose: Ref<DuetCloseInfo | null>;
  /** Publishes not yet acknowledged by the server (client.pending). */
  pending: Ref<number>;
  send(data: SendData): void;
  /** The client's publish: resolves with the seq once acknowledged (see DuetClient.publish). */
  publish(topic: string, data: unknown): Promise<number>;
  /** Auto-unsubscribed when the calling scope is disposed. */
  subscribe(topic: string, handler: TopicHandler, from?: TopicPosition): () => void;
  open(): void;
  close(code?: number, reason?: string): void;
  reconnect(): void;
}

/**
 * Connect to `url` for as long as the calling component (or effectScope) lives. Call it in
 * `setup()`; outside any scope nothing is cleaned up automatically (call `close()` yourself).
 *
 * In Node without a `window`, pass `options.WebSocket` to connect anyway (tests, scripts);
 * during server-side rendering it never connects.
 */
export function useDuet(url: string, options: DuetClientOptions = {}): UseDuet {
  const status = ref<DuetStatus>('closed');
  const data = shallowRef<unknown>(null);
  const error = shallowRef<Error | null>(null);
  const retries = ref(0);
  const latency = ref<number | null>(null);
  const lastClose = shallowRef<DuetCloseInfo | null>(null);
  const pending = ref(0);
  const refs = { status, data, error, retries, latency, lastClose, pending };

  const globals = globalThis as { window?: unknown; WebSocket?: WebSocketConstructorLike };
  const WebSocketClass = options.WebSocket ?? (globals.window !== undefined ? globals.WebSocket : undefined);
  if (WebSocketClass === undefined || serverRendering()) {
    const nothing = (): void => {};
    return {
      client: null,
      ...refs,
      send: nothing,
      publish: () => {
        const refused = Promise.reject<number>(
          new DuetError('WS_ERR_NO_WEBSOCKET', 'no client here (server-side rendering, or Node without a WebSocket)'),
        );
        refused.catch(() => {});
        return refused;
      },
      subscribe: () => nothing,
      open: nothing,
      close: nothing,
      reconnect: nothing,
    };
  }

  // autoOpen is applied after the listeners are in place, so the refs see the first status.
  const client = new DuetClient(url, { ...options, WebSocket: WebSocketClass, autoOpen: false });
  const channel = options.channel ?? true;
  const sync = (): void => {
    status.value = client.status;
    retries.value = client.retries;
    latency.value = client.latency;
    lastClose.value = client.lastClose;
    pending.value = client.pending;
  };
  const offs = [
    client.on('status', sync),
    client.on('retries', sync),
    client.on('close', sync),
    client.on('latency', sync),
    client.on('pending', sync),
    client.on('open', () => {
      error.value = null;
    }),
    client.on('error', (err) => {
      error.value = err;
    }),
    channel
      ? client.on('deliver', (delivery) => {
          data.value = delivery.data;
        })
      : client.on('message', (message) => {
          data.value = message;
        }),
  ];
  if (getCurrentScope()) {
    onScopeDispose(() => {
      client.close();
      for (const off of offs) off();
    });
  }
  // In a component, connect once it is mounted: its first render, which hydration compares
  // with the server's HTML (rendered without a client), then shows 'closed' as well.
  // An open() or close() called before that has decided already.
  let decided = false;
  if (options.autoOpen ?? true) {
    if (getCurrentInstance()) {
      onMounted(() => {
        if (!decided) client.open();
      });
    } else client.open();
  }
  sync();

  // One dispose hook per scope, holding only the subscriptions still live: a hook per call
  // would keep every unsubscribed handler alive for as long as a long-lived scope runs.
  const scoped = new WeakMap<EffectScope, Set<() => void>>();
  const subscribe = (topic: string, handler: TopicHandler, from?: TopicPosition): (() => void) => {
    const off = client.subscribe(topic, handler, from);
    const scope = getCurrentScope();
    if (!scope) return off;
    let live = scoped.get(scope);
    if (!live) {
      const set = new Set<() => void>();
      scoped.set(scope, (live = set));
      onScopeDispose(() => {
        for (const unsubscribe of [...set]) unsubscribe();
      });
    }
    const set = live;
    const unsubscribe = (): void => {
      set.delete(unsubscribe);
      off();
    };
    set.add(unsubscribe);
    return unsubscribe;
  };

  return {
    client,
    ...refs,
    send: (message) => client.send(message),
    publish: (topic, value) => client.publish(topic, value),
    subscribe,
    open: () => {
      decided = true;
      client.open();
    },
    close: (code, reason) => {
      decided = true;
      client.close(code, reason);
    },
    reconnect: () => client.reconnect(),
  };
}

/** True inside a component that renderToString is rendering. */
function serverRendering(): boolean {
  if (!getCurrentInstance()) return false;
  return inject(ssrContextKey, null) !== null;
}
