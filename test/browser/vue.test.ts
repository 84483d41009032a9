/**
 * useDuet in an effect scope with a fake WebSocket and clock: refs follow the client,
 * subscriptions end with their scope, scope.stop() closes everything; SSR creates nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRenderer, createSSRApp, defineComponent, effectScope, h, nextTick } from 'vue';
import { renderToString } from 'vue/server-renderer';
import { useDuet, type UseDuet } from '../../src/browser/vue.js';
import { FakeClock, FakeEnvironment, FakeWebSocket } from './fakes.js';

function inScope(options: Parameters<typeof useDuet>[1] = {}) {
  FakeWebSocket.reset();
  const clock = new FakeClock();
  const env = new FakeEnvironment();
  const scope = effectScope();
  const duet = scope.run(() =>
    useDuet('ws://127.0.0.1:1/channel', {
      WebSocket: FakeWebSocket,
      clock,
      environment: env,
      random: () => 0.5,
      ...options,
    }),
  ) as UseDuet;
  return { scope, duet, clock, env };
}

describe('useDuet', () => {
  it('status, retries, latency, lastClose, error and data refs follow the client', async () => {
    const { scope, duet, clock } = inScope({ heartbeatInterval: 1000 });
    assert.ok(duet.client);
    assert.equal(duet.status.value, 'connecting');
    let socket = FakeWebSocket.last;
    socket.open();
    assert.equal(duet.status.value, 'open');
    const got: unknown[] = [];
    duet.subscribe('chat', (d) => got.push(d));
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    socket.message({ type: 'message', topic: 'chat', seq: 1, data: { text: 'hi' } });
    assert.deepEqual(duet.data.value, { text: 'hi' });
    assert.deepEqual(got, [{ text: 'hi' }]);
    clock.advance(1000);
    clock.advance(12);
    socket.message({ type: 'pong', id: 1 });
    assert.equal(duet.latency.value, 12);
    socket.message({ type: 'error', code: 'forbidden', message: 'no', topic: 'chat' });
    assert.equal((duet.error.value as { code?: string } | null)?.code, 'forbidden');
    socket.serverClose(1006);
    assert.equal(duet.status.value, 'reconnecting');
    assert.equal(duet.retries.value, 1);
    assert.deepEqual(duet.lastClose.value, { code: 1006, reason: '', wasClean: false });
    clock.advance(250);
    socket = FakeWebSocket.last;
    socket.open();
    assert.equal(duet.error.value, null, 'cleared on open');
    clock.advance(5000);
    assert.equal(duet.retries.value, 0);
    await nextTick();
    scope.stop();
    assert.equal(duet.status.value, 'closed');
    assert.deepEqual(socket.closeCalls, [[1000, '']]);
    assert.equal(clock.pending, 0);
  });

  it('plain mode: data is the last raw message', () => {
    const { scope, duet } = inScope({ channel: false });
    FakeWebSocket.last.open();
    FakeWebSocket.last.rawMessage('plain text');
    assert.equal(duet.data.value, 'plain text');
    duet.send('out');
    assert.deepEqual(FakeWebSocket.last.sent, ['out']);
    scope.stop();
  });

  it('a subscribe made in a child scope ends with it; scope.stop() leaves no socket, timer or listener', () => {
    const { scope, duet, clock, env } = inScope();
    const socket = FakeWebSocket.last;
    socket.open();
    const child = scope.run(() => effectScope())!;
    child.run(() => duet.subscribe('chat', () => {}));
    assert.deepEqual(socket.sentJson, [{ type: 'subscribe', topic: 'chat' }]);
    child.stop();
    assert.deepEqual(socket.sentJson.at(-1), { type: 'unsubscribe', topic: 'chat' });
    scope.stop();
    assert.equal(duet.client?.status, 'closed');
    assert.equal(duet.client?.socket, null);
    assert.equal(clock.pending, 0);
    assert.equal(env.listening, 0);
    socket.serverClose(1000, '', true);
    clock.advance(60_000);
    assert.equal(FakeWebSocket.instances.length, 1, 'never reconnects after dispose');
  });

  it('subscribe/unsubscribe cycles in a long-lived scope do not pile up dispose hooks', () => {
    const { scope, duet } = inScope();
    FakeWebSocket.last.open();
    // Vue keeps a scope's dispose hooks in an internal array; one hook per subscribe() call
    // would keep every unsubscribed handler alive until the scope ends.
    const hooks = (): number => {
      const cleanups = (scope as unknown as { cleanups?: unknown[] }).cleanups;
      assert.ok(Array.isArray(cleanups), 'Vue internals changed: EffectScope.cleanups');
      return cleanups.length;
    };
    const before = hooks();
    scope.run(() => {
      for (let i = 0; i < 100; i++) duet.subscribe('chat', () => {})();
    });
    assert.ok(hooks() <= before + 1, `${hooks() - before} hooks for 100 finished subscriptions`);
    let calls = 0;
    scope.run(() => duet.subscribe('chat', () => calls++));
    FakeWebSocket.last.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    FakeWebSocket.last.message({ type: 'message', topic: 'chat', seq: 1, data: 1 });
    assert.equal(calls, 1);
    assert.deepEqual(duet.client?.position('chat'), { epoch: 'E', seq: 1 });
    scope.stop();
    assert.equal(duet.client?.position('chat'), undefined, 'the live one still ends with the scope');
  });

  it('autoOpen false waits for open()', () => {
    const { scope, duet } = inScope({ autoOpen: false });
    assert.equal(FakeWebSocket.instances.length, 0);
    assert.equal(duet.status.value, 'closed');
    duet.open();
    assert.equal(duet.status.value, 'connecting');
    assert.equal(FakeWebSocket.instances.length, 1);
    scope.stop();
  });
});

/** A renderer into plain objects: enough to mount components in Node, which has no DOM. */
function objectRenderer() {
  interface Node {
    text: string;
    children: Node[];
  }
  const node = (text = ''): Node => ({ text, children: [] });
  const { createApp } = createRenderer<Node, Node>({
    createElement: () => node(),
    createText: (text) => node(text),
    createComment: () => node(),
    setText: (n, text) => void (n.text = text),
    setElementText: (n, text) => void (n.text = text),
    insert: (child, parent) => void parent.children.push(child),
    remove: () => {},
    parentNode: () => null,
    nextSibling: () => null,
    patchProp: () => {},
  });
  return { createApp, root: node() };
}

describe('useDuet in a component', () => {
  it('connects when mounted, so the first render shows what the server rendered (status closed)', async () => {
    FakeWebSocket.reset();
    const clock = new FakeClock();
    const renders: string[] = [];
    let duet: UseDuet | undefined;
    const Chat = defineComponent({
      setup() {
        duet = useDuet('ws://127.0.0.1:1/channel', {
          WebSocket: FakeWebSocket,
          clock,
          environment: new FakeEnvironment(),
        });
        const d = duet;
        return () => {
          renders.push(`${d.status.value}, ${FakeWebSocket.instances.length} sockets`);
          return h('p', `status: ${d.status.value}`);
        };
      },
    });
    const { createApp, root } = objectRenderer();
    const app = createApp(Chat);
    app.mount(root);
    assert.equal(renders[0], 'closed, 0 sockets', 'the first render matches the server HTML');
    assert.equal(FakeWebSocket.instances.length, 1, 'connected once mounted');
    assert.equal(duet?.status.value, 'connecting');
    await nextTick();
    assert.equal(renders.at(-1), 'connecting, 1 sockets');
    app.unmount();
    assert.equal(duet?.client?.status, 'closed');
    assert.equal(clock.pending, 0);

    // close() in setup, before the mount, is not undone by it.
    FakeWebSocket.reset();
    const Closed = defineComponent({
      setup() {
        useDuet('ws://127.0.0.1:1/channel', {
          WebSocket: FakeWebSocket,
          clock,
          environment: new FakeEnvironment(),
        }).close();
        return () => h('p');
      },
    });
    const other = objectRenderer();
    other.createApp(Closed).mount(other.root);
    assert.equal(FakeWebSocket.instances.length, 0);
  });
});

describe('useDuet during SSR', () => {
  it('renderToString creates no client, socket or timer, with or without an injected WebSocket', async () => {
    FakeWebSocket.reset();
    const clock = new FakeClock();
    const results: (UseDuet | undefined)[] = [];
    for (const options of [{}, { WebSocket: FakeWebSocket, clock }]) {
      const Chat = defineComponent({
        setup() {
          const duet = useDuet('ws://127.0.0.1:1/channel', options);
          duet.subscribe('chat', () => {});
          void duet.publish('chat', 'x');
          results.push(duet);
          return () => h('p', `status: ${duet.status.value}`);
        },
      });
      const html = await renderToString(createSSRApp(Chat));
      assert.equal(html, '<p>status: closed</p>');
    }
    assert.equal(results.length, 2);
    for (const r of results) assert.equal(r?.client, null);
    assert.equal(FakeWebSocket.instances.length, 0);
    assert.equal(clock.pending, 0);
  });

  it('outside a browser and without options.WebSocket it does nothing; publish rejects (WS_ERR_NO_WEBSOCKET)', async () => {
    const scope = effectScope();
    const duet = scope.run(() => useDuet('ws://127.0.0.1:1/channel'))!;
    assert.equal(duet.client, null);
    assert.equal(duet.status.value, 'closed');
    assert.equal(duet.pending.value, 0);
    await assert.rejects(duet.publish('chat', 1), { code: 'WS_ERR_NO_WEBSOCKET' });
    scope.stop();
  });

  it('publish returns the client promise (the seq of the ack); pending counts what is not acknowledged', async () => {
    const { scope, duet } = inScope({ heartbeatInterval: 0 });
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message({ type: 'limits', rate: null, maxBatch: 50, dedupMs: 1000, dedupScope: 'S' });
    const first = duet.publish('chat', 'a');
    const second = duet.publish('chat', 'b');
    assert.equal(duet.pending.value, 2);
    const [a, b] = socket.sentJson.map((m) => m.id);
    socket.message({ type: 'ack', id: a, topic: 'chat', seq: 3 });
    assert.equal(duet.pending.value, 1);
    assert.equal(await first, 3);
    scope.stop();
    await assert.rejects(second, { code: 'WS_ERR_PUBLISH_CANCELLED' });
    assert.equal(duet.pending.value, 0, 'close() on scope.stop() rejected it');
    assert.notEqual(b, undefined);
  });
});
