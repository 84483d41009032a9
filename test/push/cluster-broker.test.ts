/**
 * ClusterBroker (src/push/cluster-broker.ts) and its primary (src/push/cluster-primary.ts).
 *
 * First a real cluster (test/push/fixtures/cluster-app.ts: a primary with serveClusterBroker
 * and three workers, each a WebSocketServer on 127.0.0.1 with a ClusterBroker), driven by `ws`
 * clients from this process, once over JSON IPC and once with advanced serialization: every
 * subscriber in every worker gets every message once in seq order, publishers in several
 * workers; the sender left out; recovery from another worker's history; foreign IPC messages
 * left alone; a worker killed with SIGKILL disturbs nobody; the ticker lease.
 *
 * Then in one process, over fake IPC channels (fixtures/cluster-wire.ts), what a real cluster
 * cannot show on demand: the request bound, a closed channel, a primary that never answers, a
 * worker that stops reading, malformed messages, lease expiry, history configured twice.
 *
 * Longer than ~400 lines: the two halves share the Recorder and the cluster's set-up; the
 * primary has no test file of its own because it only works with workers (the brief's one file).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import WS from 'ws';
import {
  ClusterBroker,
  DuetError,
  Hub,
  serveClusterBroker,
  type OutgoingMessage,
  type Recovery,
  type TopicPosition,
} from '../../src/index.js';
import type { Subscriber } from '../../src/node/host.js';
import type { SharedMessage } from '../../src/node/shared-message.js';
import { HOST, waitFor } from '../helpers.js';
import { NOISE, type PrimaryCommand, type WorkerCommand } from './fixtures/cluster-protocol.js';
import { fakeCluster, type Serialization } from './fixtures/cluster-wire.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/cluster-app.ts', import.meta.url));
const WAIT_MS = 30_000;

// ---- a real cluster ------------------------------------------------------------------------

interface WorkerInfo {
  id: number;
  port: number;
  pid: number;
}

/** A command to the primary, without the `ref` its answer comes back with. */
type Command = PrimaryCommand extends infer C ? (C extends { ref: number } ? Omit<C, 'ref'> : never) : never;

/** The fixture's primary, as this process drives it over IPC. */
class ClusterApp {
  readonly events: Array<Record<string, unknown>> = [];
  workers: WorkerInfo[] = [];
  exited = false;
  private ref = 0;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (message: Record<string, unknown>) => this.events.push(message));
    child.on('exit', () => (this.exited = true));
  }

  static async start(serialization: Serialization, workers: number): Promise<ClusterApp> {
    const child = fork(FIXTURE, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, SERIALIZATION: serialization, WORKERS: String(workers) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const app = new ClusterApp(child);
    await waitFor(
      () => app.exited || app.events.some((e) => e.type === 'ready'),
      WAIT_MS,
      () => 'the cluster to start',
    );
    assert.ok(!app.exited, 'the cluster app exited at start');
    app.workers = app.events.find((e) => e.type === 'ready')!.workers as WorkerInfo[];
    return app;
  }

  /** Send a command to the primary and wait for its reply. */
  async ask<T>(command: Command): Promise<T> {
    const ref = ++this.ref;
    this.child.send({ ...command, ref });
    const reply = (): Record<string, unknown> | undefined =>
      this.events.find((e) => e.type === 'reply' && e.ref === ref);
    await waitFor(
      () => reply() !== undefined,
      WAIT_MS,
      () => `the answer to ${JSON.stringify(command)}`,
    );
    return reply()!.body as T;
  }

  /** A command for one worker, relayed by the primary. */
  worker<T>(id: number, body: WorkerCommand): Promise<T> {
    return this.ask<T>({ cmd: 'worker', id, body });
  }

  /** A command for one worker that gets no answer (it exits). */
  tell(id: number, body: WorkerCommand): void {
    this.child.send({ cmd: 'worker', id, body, ref: ++this.ref } satisfies PrimaryCommand);
  }

  exitOf(id: number): Record<string, unknown> | undefined {
    return this.events.find((e) => e.type === 'exit' && e.id === id);
  }

  /** Close every worker and the primary; SIGKILL if they do not go in time. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.send({ cmd: 'shutdown' } satisfies PrimaryCommand);
    try {
      await waitFor(
        () => this.exited,
        WAIT_MS,
        () => 'the cluster app to exit',
      );
    } finally {
      if (!this.exited) {
        for (const w of this.workers) if (this.exitOf(w.id) === undefined) killQuietly(w.pid);
        this.child.kill('SIGKILL');
        await once(this.child, 'exit');
      }
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** A channel-protocol message as a client sees it. */
interface Msg {
  type: string;
  topic?: string;
  seq?: number;
  epoch?: string;
  recovered?: boolean;
  data?: { w?: number; n?: number; worker?: number; run?: number; text?: string };
  ready?: boolean;
}

/** A `ws` client of one worker: every message kept, in order. */
class Peer {
  readonly got: Msg[] = [];
  readonly frames: Array<{ data: Buffer; binary: boolean }> = [];
  closed = false;

  private constructor(readonly ws: WS) {
    ws.on('message', (data: Buffer, binary: boolean) => {
      this.frames.push({ data, binary });
      const text = binary ? '' : data.toString('utf8');
      if (text.startsWith('{')) this.got.push(JSON.parse(text) as Msg);
    });
    ws.on('close', () => (this.closed = true));
    ws.on('error', () => {});
  }

  static async open(port: number, path = '/channel'): Promise<Peer> {
    const ws = new WS(`ws://${HOST}:${port}${path}`, { handshakeTimeout: WAIT_MS });
    const peer = new Peer(ws); // listening before 'open': a first message may come in the same read
    await once(ws, 'open');
    return peer;
  }

  send(message: object | string | Buffer): void {
    this.ws.send(typeof message === 'object' && !Buffer.isBuffer(message) ? JSON.stringify(message) : message);
  }

  messages(topic: string): Msg[] {
    return this.got.filter((m) => m.type === 'message' && m.topic === topic);
  }

  /** Subscribe over the channel protocol and wait for the `subscribed` answer. */
  async subscribe(topic: string, since?: { seq: number; epoch: string }): Promise<Msg> {
    const before = this.got.length;
    this.send({ type: 'subscribe', topic, ...(since && { since: since.seq, epoch: since.epoch }) });
    const answer = (): Msg | undefined =>
      this.got.slice(before).find((m) => m.type === 'subscribed' && m.topic === topic);
    await waitFor(
      () => answer() !== undefined,
      WAIT_MS,
      () => `subscribed to ${topic}`,
    );
    return answer()!;
  }

  close(): void {
    this.ws.terminate();
  }
}

/** The seqs of `messages`, checked to be `from`, from + 1, ... (none missing, none twice). */
function assertContiguous(messages: Msg[], from: number, label: string): void {
  const seqs = messages.map((m) => m.seq);
  assert.deepEqual(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => from + i),
    `${label}: not every seq once, in order`,
  );
}

for (const serialization of ['json', 'advanced'] as const) {
  describe(`ClusterBroker in a real cluster (${serialization} IPC)`, { timeout: 180_000 }, () => {
    let app: ClusterApp;
    const peers: Peer[] = [];
    const open = async (worker: WorkerInfo, path?: string): Promise<Peer> => {
      const peer = await Peer.open(worker.port, path);
      peers.push(peer);
      return peer;
    };

    before(async () => {
      app = await ClusterApp.start(serialization, 3);
    });
    after(async () => {
      for (const peer of peers) peer.close();
      await app?.stop();
    });

    it('every subscriber in every worker gets every message once, in seq order, from publishers in three workers', async () => {
      const subscribers: Array<{ peer: Peer; first: number }> = [];
      for (const worker of app.workers) {
        for (let i = 0; i < 2; i++) {
          const peer = await open(worker);
          const answer = await peer.subscribe('order');
          subscribers.push({ peer, first: answer.seq! + 1 });
        }
      }
      const publishers = await Promise.all(app.workers.map((w) => open(w)));
      const PER = 40;
      for (let n = 0; n < PER; n++) {
        for (const [w, publisher] of publishers.entries())
          publisher.send({ type: 'publish', topic: 'order', data: { w, n } });
      }
      const total = PER * publishers.length;
      await waitFor(
        () => subscribers.every((s) => s.peer.messages('order').length >= total),
        WAIT_MS,
        () => `every delivery: ${subscribers.map((s) => s.peer.messages('order').length).join(', ')}`,
      );
      const reference = subscribers[0].peer.messages('order');
      assertContiguous(reference, subscribers[0].first, 'subscriber 0');
      for (const [i, { peer }] of subscribers.entries()) {
        assert.deepEqual(peer.messages('order'), reference, `subscriber ${i} saw another order`);
      }
      // Each publisher's messages in the order it sent them, all of them.
      for (let w = 0; w < publishers.length; w++) {
        const ns = reference.filter((m) => m.data?.w === w).map((m) => m.data?.n);
        assert.deepEqual(
          ns,
          Array.from({ length: PER }, (_, n) => n),
          `publisher ${w}`,
        );
      }
      const stats = await app.worker<{ errors: string[]; primaryInWorker: string }>(app.workers[1].id, {
        app: 'stats',
      });
      assert.deepEqual(stats.errors, []);
      assert.match(stats.primaryInWorker, /runs in the cluster primary, not in a worker/);
    });

    it('publish ids: every worker announces the primary’s dedup scope; a repeat through another worker gets the original ack', async () => {
      const [w0, w1, w2] = app.workers;
      const [a, b, watcher] = [await open(w0), await open(w1), await open(w2)];
      await watcher.subscribe('ids');
      const limits = [a, b].map((p) => p.got[0] as unknown as Record<string, unknown>);
      assert.equal(limits[0].type, 'limits');
      assert.equal(typeof limits[0].dedupScope, 'string');
      assert.equal(limits[0].dedupMs, 120000);
      assert.deepEqual(limits[1], limits[0], 'the same limits and scope in every worker');
      const acks = (p: Peer): Array<Record<string, unknown>> =>
        (p.got as unknown as Array<Record<string, unknown>>).filter((m) => m.type === 'ack');
      const publish = { type: 'publish', topic: 'ids', data: { text: 'once' }, id: 'session.1' };
      a.send(publish);
      await waitFor(
        () => acks(a).length === 1,
        WAIT_MS,
        () => 'the ack',
      );
      const [ack] = acks(a);
      assert.deepEqual(ack, { type: 'ack', id: 'session.1', topic: 'ids', seq: ack.seq });
      b.send(publish); // the client reconnected to another worker and resent it
      await waitFor(
        () => acks(b).length === 1,
        WAIT_MS,
        () => 'the second ack',
      );
      assert.deepEqual(acks(b), [{ ...ack, duplicate: true }]);
      b.send({ type: 'publish', topic: 'ids', data: { text: 'next' }, id: 'session.2' });
      await waitFor(
        () => watcher.messages('ids').length === 2,
        WAIT_MS,
        () => 'the next message',
      );
      assert.deepEqual(
        watcher.messages('ids').map((m) => m.data?.text),
        ['once', 'next'],
      );
    });

    it('a publish leaves out its sender, in its own worker only; binary payloads arrive byte for byte', async () => {
      const [w0, w1] = app.workers;
      const sender = await open(w0, '/raw?topic=exclude');
      const neighbour = await open(w0, '/raw?topic=exclude');
      const remote = await open(w1, '/raw?topic=exclude');
      for (const peer of [sender, neighbour, remote]) {
        await waitFor(
          () => peer.got.some((m) => m.ready === true),
          WAIT_MS,
          () => `ready: ${peer.frames.map((f) => f.data.toString()).join(' | ')}`,
        );
      }
      const texts = (peer: Peer): string[] =>
        peer.frames.slice(1).map((f) => (f.binary ? `binary:${f.data.length}` : f.data.toString()));
      sender.send('hello');
      await waitFor(
        () => texts(remote).length === 1,
        WAIT_MS,
        () => 'hello at the remote',
      );
      neighbour.send('again'); // numbered after 'hello': had 'hello' gone to the sender, it came first
      await waitFor(
        () => texts(remote).length === 2,
        WAIT_MS,
        () => 'again at the remote',
      );
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
      remote.send(bytes); // numbered after 'again', from the other worker
      await waitFor(
        () => texts(sender).length === 2 && texts(neighbour).length === 2 && texts(remote).length === 2,
        WAIT_MS,
        () => `the deliveries: ${texts(sender).join()} | ${texts(neighbour).join()} | ${texts(remote).join()}`,
      );
      assert.deepEqual(texts(sender), ['again', 'binary:256']);
      assert.deepEqual(texts(neighbour), ['hello', 'binary:256']);
      assert.deepEqual(texts(remote), ['hello', 'again']);
      for (const peer of [sender, neighbour]) assert.deepEqual(peer.frames[2], { data: bytes, binary: true });
    });

    it("recovery with since/epoch from another worker's history, also while messages keep coming", async () => {
      const [w0, w1, w2] = app.workers;
      const watcher = await open(w0);
      const subscribed = await watcher.subscribe('rec');
      const { epoch } = subscribed;
      const start = subscribed.seq!;
      const publisher = await open(w0);
      for (let n = 1; n <= 30; n++) publisher.send({ type: 'publish', topic: 'rec', data: { n } });
      await waitFor(
        () => watcher.messages('rec').length === 30,
        WAIT_MS,
        () => 'the first 30',
      );
      // Another worker recovers from the primary's history.
      const late = await open(w1);
      const answer = await late.subscribe('rec', { seq: start + 10, epoch: epoch! });
      assert.deepEqual([answer.recovered, answer.epoch, answer.seq], [true, epoch, start + 30]);
      await waitFor(
        () => late.messages('rec').length === 20,
        WAIT_MS,
        () => 'the replay',
      );
      // A third recovers while 100 more are published.
      for (let n = 31; n <= 130; n++) publisher.send({ type: 'publish', topic: 'rec', data: { n } });
      await waitFor(
        () => watcher.messages('rec').length >= 60,
        WAIT_MS,
        () => 'publishing under way',
      );
      const racing = await open(w2);
      const raced = await racing.subscribe('rec', { seq: start + 35, epoch: epoch! });
      assert.equal(raced.recovered, true);
      await waitFor(
        () => [watcher, late, racing].every((p) => p.messages('rec').at(-1)?.seq === start + 130),
        WAIT_MS,
        () => 'the last message everywhere',
      );
      assertContiguous(watcher.messages('rec'), start + 1, 'the watcher');
      assertContiguous(late.messages('rec'), start + 11, 'recovered after 10');
      assertContiguous(racing.messages('rec'), start + 36, 'recovered after 35 while publishing');
      assert.deepEqual(
        racing.messages('rec').map((m) => m.data?.n),
        Array.from({ length: 95 }, (_, i) => 36 + i),
      );
      // Another epoch cannot be recovered: told so, and live messages follow.
      const stranger = await open(w1);
      const refused = await stranger.subscribe('rec', { seq: 3, epoch: 'not-the-epoch' });
      assert.deepEqual([refused.recovered, refused.seq], [false, start + 130]);
      publisher.send({ type: 'publish', topic: 'rec', data: { n: 131 } });
      await waitFor(
        () => stranger.messages('rec').length === 1,
        WAIT_MS,
        () => 'a live message',
      );
      assert.equal(stranger.messages('rec')[0].seq, start + 131);
    });

    it('IPC messages that are not the broker’s are left to the application, both ways; malformed ones are counted', async () => {
      const [w0, w1] = app.workers;
      assert.deepEqual(await app.ask({ cmd: 'noise', id: w1.id }), { sent: NOISE.length });
      assert.deepEqual(await app.worker(w1.id, { app: 'noise' }), { sent: NOISE.length });
      // A round trip through the broker after them (IPC keeps order): they were read by now.
      const here = await open(w1);
      const there = await open(w0);
      await here.subscribe('after-noise');
      await there.subscribe('after-noise');
      here.send({ type: 'publish', topic: 'after-noise', data: { text: 'still fine' } });
      await waitFor(
        () => here.messages('after-noise').length === 1 && there.messages('after-noise').length === 1,
        WAIT_MS,
        () => 'the message after the noise',
      );
      const worker = await app.worker<{ stats: { malformed: number }; errors: string[]; foreign: unknown[] }>(w1.id, {
        app: 'stats',
      });
      assert.deepEqual(worker.foreign, NOISE, 'the application got every message of its own');
      assert.equal(worker.stats.malformed, 0);
      assert.deepEqual(worker.errors, []);
      const primary = await app.ask<{
        stats: { malformed: number };
        appMessages: Array<{ id: number; body: unknown }>;
      }>({
        cmd: 'stats',
      });
      assert.deepEqual(
        primary.appMessages.filter((m) => m.id === w1.id).map((m) => m.body),
        NOISE,
      );
      assert.equal(primary.stats.malformed, 0);
      assert.deepEqual(
        app.events.filter((e) => e.type === 'primary-error'),
        [],
      );
      // Tagged as the broker's but unreadable: counted, reported, skipped.
      await app.ask({ cmd: 'malformed', id: w1.id });
      await app.worker(w1.id, { app: 'malformed' });
      const after = await app.worker<{ stats: { malformed: number }; errors: string[] }>(w1.id, { app: 'stats' });
      assert.equal(after.stats.malformed, 3);
      assert.deepEqual(after.errors, Array(3).fill('WS_ERR_BROKER_MESSAGE'));
      await waitFor(
        () => app.events.some((e) => e.type === 'primary-error'),
        WAIT_MS,
        () => "the primary's report",
      );
      assert.deepEqual(
        app.events.filter((e) => e.type === 'primary-error').map((e) => e.code),
        ['WS_ERR_BROKER_MESSAGE'],
      );
    });

    it('a worker killed with SIGKILL in the middle of a stream disturbs none of the others', async () => {
      const [w0, w1, w2] = app.workers;
      const errorsBefore = await Promise.all(
        [w0, w1].map(async (w) => (await app.worker<{ errors: string[] }>(w.id, { app: 'stats' })).errors),
      );
      const subscribers = await Promise.all([w0, w0, w1, w2].map((w) => open(w)));
      const starts = await Promise.all(subscribers.map((s) => s.subscribe('kill')));
      const publishers = await Promise.all([w0, w1, w2].map((w) => open(w)));
      for (let n = 0; n < 100; n++) {
        for (const [w, p] of publishers.entries()) p.send({ type: 'publish', topic: 'kill', data: { w, n } });
      }
      await waitFor(
        () => subscribers[0].messages('kill').length >= 20,
        WAIT_MS,
        () => 'the stream under way',
      );
      assert.deepEqual(await app.ask({ cmd: 'kill', id: w2.id }), { killed: true });
      await waitFor(
        () => app.exitOf(w2.id) !== undefined,
        WAIT_MS,
        () => 'the killed worker’s exit',
      );
      assert.equal(app.exitOf(w2.id)!.signal, 'SIGKILL');
      // The survivors keep publishing after the kill.
      for (let n = 100; n < 120; n++) {
        for (const [w, p] of publishers.slice(0, 2).entries())
          p.send({ type: 'publish', topic: 'kill', data: { w, n } });
      }
      const survivors = subscribers.slice(0, 3);
      const complete = (peer: Peer): boolean =>
        [0, 1].every((w) => peer.messages('kill').filter((m) => m.data?.w === w).length === 120);
      await waitFor(
        () => survivors.every(complete),
        WAIT_MS,
        () => 'every message of the survivors',
      );
      for (const [i, peer] of survivors.entries()) {
        assertContiguous(peer.messages('kill'), starts[i].seq! + 1, `survivor ${i}`);
        assert.deepEqual(peer.messages('kill'), survivors[0].messages('kill'));
      }
      const { stats } = await app.ask<{ stats: { workers: number } }>({ cmd: 'stats' });
      assert.equal(stats.workers, 2, 'the dead worker was forgotten');
      for (const [i, w] of [w0, w1].entries()) {
        const s = await app.worker<{ errors: string[] }>(w.id, { app: 'stats' });
        assert.deepEqual(s.errors, errorsBefore[i], 'no error in the survivors');
      }
    });

    it('the ticker lease: one worker publishes the ticks; when it exits another takes over', async () => {
      const [w0, w1] = app.workers; // w2 was killed above
      const observers = await Promise.all([w0, w1].map((w) => open(w)));
      for (const o of observers) await o.subscribe('ticker');
      const ticks = (peer: Peer): Array<number | undefined> => peer.messages('ticker').map((m) => m.data?.worker);
      await waitFor(
        () => observers.every((o) => ticks(o).length >= 5),
        WAIT_MS,
        () => 'some ticks',
      );
      const holder = ticks(observers[0])[0]!;
      assert.ok([w0.id, w1.id].includes(holder));
      for (const o of observers) assert.ok(new Set(ticks(o)).size === 1 && ticks(o)[0] === holder, 'one ticker');
      const survivor = holder === w0.id ? w1 : w0;
      const observer = observers[holder === w0.id ? 1 : 0];
      const before = ticks(observer).length;
      // The lease lasts 60 s: only the holder's exit can hand it over within this wait.
      app.tell(holder, { app: 'crash' });
      await waitFor(
        () => app.exitOf(holder) !== undefined,
        WAIT_MS,
        () => 'the holder’s exit',
      );
      await waitFor(
        () =>
          ticks(observer)
            .slice(before)
            .filter((w) => w === survivor.id).length >= 5,
        WAIT_MS,
        () => `ticks from the survivor: ${ticks(observer).join()}`,
      );
      const seen = ticks(observer);
      const switchAt = seen.indexOf(survivor.id);
      assert.ok(switchAt > 0);
      assert.ok(
        seen.slice(0, switchAt).every((w) => w === holder) && seen.slice(switchAt).every((w) => w === survivor.id),
        `one ticker at a time: ${seen.join()}`,
      );
      assertContiguous(observer.messages('ticker'), observer.messages('ticker')[0].seq!, 'the ticks');
    });
  });
}

// ---- in one process, over fake IPC channels ------------------------------------------------------

type Received = { text: string } | { reset: TopicPosition };

/** A stand-in subscriber that records what the Hub writes to it. */
class Recorder implements Subscriber {
  readonly got: Received[] = [];
  sendEncoded(message: SharedMessage): boolean {
    this.got.push({ text: message.payload.toString('latin1') });
    return true;
  }
  texts(): string[] {
    return this.got.flatMap((r) => ('text' in r ? [r.text] : []));
  }
}

/** A Hub over `broker` that records errors, and resets into its Recorders. */
function hubOf(broker: ClusterBroker, errors: Error[] = []): Hub {
  const hub = new Hub({ broker, onError: (err) => errors.push(err) });
  hub.onReset((_topic, position, subscribers) => {
    for (const s of subscribers) if (s instanceof Recorder) s.got.push({ reset: position });
  });
  return hub;
}

/** Subscribe a new Recorder to `topic` and wait until the primary feeds it. */
async function follow(hub: Hub, topic: string): Promise<Recorder> {
  const recorder = new Recorder();
  let answered: Recovery | Error | undefined;
  hub.subscribeRecovering(recorder, topic, undefined, (result) => {
    answered = result;
    return true;
  });
  await waitFor(
    () => answered !== undefined,
    WAIT_MS,
    () => `the subscription to ${topic}`,
  );
  assert.ok(!(answered instanceof Error), answered instanceof Error ? answered.message : '');
  return recorder;
}

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof DuetError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  };
}

/** The primary's message to `broker`, as the primary would send it. */
function fromPrimary(broker: ClusterBroker, ...items: unknown[]): { duet: string; broker: number; items: unknown[] } {
  return { duet: 'broker', broker: broker.id, items };
}

describe('ClusterBroker in one process (fake IPC channels)', () => {
  for (const serialization of ['json', 'advanced'] as const) {
    it(`${serialization}: three workers share topics: order, the sender left out, recovery, bytes and tails`, async () => {
      const cluster = fakeCluster({ serialization, primary: { history: { size: 50 } } });
      const workers = [1, 2, 3].map(() => cluster.worker());
      const errors: Error[] = [];
      const hubs = workers.map(({ broker }) => hubOf(broker, errors));
      const recorders = await Promise.all(hubs.map((hub) => follow(hub, 't')));
      const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => hubs[i % 3].publishAsync('t', `m${i}`)));
      assert.deepEqual(
        acks.map((a) => a.seq).sort((a, b) => a - b),
        Array.from({ length: 30 }, (_, i) => i + 1),
      );
      await waitFor(
        () => recorders.every((r) => r.got.length === 30),
        WAIT_MS,
        () => 'every delivery',
      );
      const expected = acks
        .map((a, i) => ({ seq: a.seq, text: `m${i}` }))
        .sort((a, b) => a.seq - b.seq)
        .map((m) => m.text);
      for (const r of recorders) assert.deepEqual(r.texts(), expected);
      // The sender left out (in its own worker), a binary payload, a tail numbered by the primary.
      const [sender, neighbour] = [recorders[0], await follow(hubs[0], 't')];
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await hubs[0].publishAsync('t', bytes, undefined, sender);
      await hubs[1].publishMessageAsync({
        topic: 't',
        payload: 'head:',
        tail: ':tail',
        binary: false,
        compress: false,
      });
      await waitFor(
        () => neighbour.got.length === 2 && sender.got.length === 31 && recorders[2].got.length === 32,
        WAIT_MS,
        () => 'the last two',
      );
      assert.deepEqual(neighbour.texts(), [bytes.toString('latin1'), 'head:32:tail']);
      assert.equal(sender.texts().at(-1), 'head:32:tail');
      assert.deepEqual(recorders[2].texts().slice(30), [bytes.toString('latin1'), 'head:32:tail']);
      // Recovery from the primary's history, in another worker.
      const r = await hubs[2].recoverAsync('t', 29, acks[0].epoch);
      assert.deepEqual(
        [r.recovered, r.seq, r.messages.map((m) => [m.seq, m.binary, m.payload.toString('latin1')])],
        [
          true,
          32,
          [
            [30, false, expected[29]],
            [31, true, bytes.toString('latin1')],
            [32, false, 'head:32:tail'],
          ],
        ],
      );
      assert.equal((await hubs[2].recoverAsync('t', -1, acks[0].epoch)).recovered, false);
      assert.deepEqual(await hubs[1].positionAsync('t'), { epoch: acks[0].epoch, seq: 32 });
      assert.deepEqual(errors, []);
      assert.deepEqual(
        { ...workers[0].broker.stats(), received: 0 },
        { published: 11, failed: 0, pending: 0, received: 0, malformed: 0, gapsFilled: 0, resets: 0, topics: 1 },
      );
      assert.equal(workers[0].broker.stats().received, 32);
      const primary = cluster.primary!.stats();
      assert.deepEqual(
        [primary.workers, primary.topics, primary.published, primary.delivered, primary.dropped],
        [3, 1, 32, 96, 0],
      );
      for (const w of workers) w.broker.close();
      cluster.primary!.close();
    });
  }

  it('publish ids are remembered by the primary: a repeat from another worker, in the same turn too, gets the first seq', async () => {
    const errors: Error[] = [];
    const cluster = fakeCluster({ primary: { onError: (err) => errors.push(err) } });
    const [a, b] = [cluster.worker(), cluster.worker()];
    assert.equal(a.broker.dedupScope(), undefined, 'not known before the primary answered');
    await Promise.all([a.broker.ready(), b.broker.ready()]);
    const scope = a.broker.dedupScope();
    assert.equal(typeof scope, 'string');
    assert.equal(b.broker.dedupScope(), scope, "the primary's, for every worker");
    const [hubA, hubB] = [hubOf(a.broker, errors), hubOf(b.broker, errors)];
    const recorder = await follow(hubA, 't');
    const withId = (id: string, text = id): OutgoingMessage => ({
      topic: 't',
      payload: text,
      binary: false,
      dedup: { id, ttlMs: 60_000, size: 10 },
    });
    // Both in flight at once, from two workers: the primary takes them one after the other.
    const [first, second] = await Promise.all([
      hubA.publishMessageAsync(withId('i1', 'once')),
      hubB.publishMessageAsync(withId('i1', 'once')),
    ]);
    assert.deepEqual(first, { epoch: first.epoch, seq: 1 });
    assert.deepEqual(second, { epoch: first.epoch, seq: 1, duplicate: true });
    assert.deepEqual((await hubB.publishMessageAsync(withId('i2'))).seq, 2);
    assert.deepEqual(await hubA.publishMessageAsync(withId('i2')), { epoch: first.epoch, seq: 2, duplicate: true });
    await waitFor(
      () => recorder.got.length === 2,
      WAIT_MS,
      () => 'the deliveries',
    );
    await hubA.publishAsync('t', 'marker');
    await waitFor(
      () => recorder.got.length === 3,
      WAIT_MS,
      () => 'the marker',
    );
    assert.deepEqual(recorder.texts(), ['once', 'i2', 'marker']);
    assert.deepEqual([a.broker.stats().published, b.broker.stats().published], [2, 1], 'duplicates not counted');
    assert.equal(cluster.primary!.stats().published, 3);
    // A malformed publish id is a malformed request: refused, nothing published.
    const replies: Array<{ id?: number; error?: string }> = [];
    b.fake.channel.on('message', (m: { items?: [] }) => replies.push(...(m.items ?? [])));
    for (const [n, dedup] of [{ id: '', ttlMs: 1, size: 1 }, { id: 'x', ttlMs: 0, size: 1 }, 'x'].entries()) {
      b.fake.channel.send(
        {
          duet: 'broker',
          broker: b.broker.id,
          items: [{ op: 'publish', id: 900 + n, topic: 't', text: 'no', binary: false, dedup }],
        },
        undefined,
        undefined,
        () => {},
      );
    }
    await waitFor(
      () => replies.filter((r) => r.id !== undefined && r.id >= 900).length === 3,
      WAIT_MS,
      () => 'the refusals',
    );
    assert.deepEqual(
      replies.filter((r) => r.id !== undefined && r.id >= 900).map((r) => r.error),
      ['malformed request', 'malformed request', 'malformed request'],
    );
    assert.equal(cluster.primary!.stats().published, 3);
    assert.deepEqual(
      errors.map((e) => (e as DuetError).code),
      ['WS_ERR_BROKER_MESSAGE', 'WS_ERR_BROKER_MESSAGE', 'WS_ERR_BROKER_MESSAGE'],
    );
    a.broker.close();
    b.broker.close();
    cluster.primary!.close();
  });

  it('more requests waiting than maxPendingPublishes are refused; a closed channel fails those waiting', async () => {
    const cluster = fakeCluster({ primary: false }); // nobody answers
    const { fake, broker } = cluster.worker({ maxPendingPublishes: 5 });
    const errors: Error[] = [];
    const hub = hubOf(broker, errors);
    fake.channel.emit('message', fromPrimary(broker, { op: 'reply', id: 1, value: 'the-primary-scope' })); // the hello
    const results = Array.from({ length: 50 }, (_, i) => hub.publishAsync('b', `${i}`));
    await Promise.all(results.slice(5).map((p) => assert.rejects(p, isCode('WS_ERR_BROKER_BACKLOG'))));
    assert.deepEqual([broker.stats().pending, broker.stats().failed], [5, 45]);
    fake.exit(); // the IPC channel closes: the primary died
    await Promise.all(results.slice(0, 5).map((p) => assert.rejects(p, isCode('WS_ERR_BROKER_UNAVAILABLE'))));
    await assert.rejects(hub.publishAsync('b', 'after'), isCode('WS_ERR_BROKER_UNAVAILABLE'));
    await assert.rejects(broker.lease('job', 1000), isCode('WS_ERR_BROKER_UNAVAILABLE'));
    assert.deepEqual([broker.stats().pending, broker.stats().failed], [0, 51]);
    assert.deepEqual(
      errors.map((e) => (e as DuetError).code),
      ['WS_ERR_BROKER_UNAVAILABLE'],
      'the closed channel reported once',
    );
    assert.match(errors[0].message, /IPC channel to the cluster primary closed/);
    broker.close();
  });

  it('a primary that never answers: each request fails after requestTimeout; the missing primary is reported', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { broker } = fakeCluster({ primary: false }).worker({ requestTimeout: 100 }); // its hello: due at 100
    const errors: Error[] = [];
    const hub = hubOf(broker, errors);
    let notReady: unknown;
    broker.ready().catch((err: unknown) => (notReady = err));
    t.mock.timers.tick(60);
    let failure: unknown;
    hub.publishAsync('t', 'x').catch((err: unknown) => (failure = err)); // due at 160
    t.mock.timers.tick(60);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(errors.length, 1, 'the hello timed out');
    assert.match(errors[0].message, /did not say hello .*serveClusterBroker\(\).*no answer .* within 100 ms/);
    assert.ok(isCode('WS_ERR_BROKER_UNAVAILABLE')(notReady), 'ready() rejects with it');
    assert.equal(broker.dedupScope(), undefined);
    assert.equal(failure, undefined, 'the publish still has time');
    t.mock.timers.tick(50);
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(isCode('WS_ERR_BROKER_UNAVAILABLE')(failure));
    assert.match(String(failure), /no answer from the cluster primary within 100 ms/);
    broker.close();
  });

  it('outside a cluster worker the constructor throws WS_ERR_BROKER_UNAVAILABLE; one primary per process', () => {
    const none = { on: () => undefined, off: () => undefined };
    assert.throws(() => new ClusterBroker({ channel: none }), isCode('WS_ERR_BROKER_UNAVAILABLE'));
    const channel = fakeCluster({ primary: false }).worker().fake.channel;
    assert.throws(() => new ClusterBroker({ channel, maxPendingPublishes: 0 }), RangeError);
    assert.throws(() => new ClusterBroker({ channel, requestTimeout: 0 }), RangeError);
    assert.throws(() => fakeCluster({ primary: { maxWorkerBacklog: 0 } }), RangeError);
    // This test process is a cluster primary (it is no worker): one broker serves at a time.
    const primary = serveClusterBroker();
    assert.throws(() => serveClusterBroker(), /already serving/);
    primary.close();
    primary.close();
    serveClusterBroker().close();
  });

  it('a worker that stops reading: deliveries past maxWorkerBacklog are dropped, then filled from history or reset', async () => {
    const cluster = fakeCluster({ primary: { history: { size: 100 }, maxWorkerBacklog: 10 } });
    const [a, b] = [cluster.worker(), cluster.worker()];
    const [hubA, hubB] = [hubOf(a.broker), hubOf(b.broker)];
    hubA.configureTopic('forgetful', { history: false });
    const kept = await follow(hubB, 'kept');
    const forgetful = await follow(hubB, 'forgetful');
    b.fake.holdWrites = true;
    for (let i = 1; i <= 5; i++) await hubA.publishAsync('kept', `message${i}`); // 8 bytes each
    for (let i = 1; i <= 3; i++) await hubA.publishAsync('forgetful', `message${i}`);
    await waitFor(
      () => kept.got.length === 1,
      WAIT_MS,
      () => 'the first message',
    );
    assert.deepEqual([cluster.primary!.stats().dropped, forgetful.got.length], [7, 0]);
    b.fake.release(); // it reads again: told to resync, it fills the gap from history or resets
    await waitFor(
      () => kept.got.length === 5 && forgetful.got.length === 1,
      WAIT_MS,
      () => 'the gaps handled',
    );
    assert.deepEqual(kept.texts(), ['message1', 'message2', 'message3', 'message4', 'message5']);
    const { epoch } = await hubA.positionAsync('forgetful');
    assert.deepEqual(forgetful.got, [{ reset: { epoch, seq: 3 } }], 'no history: told so');
    assert.deepEqual([b.broker.stats().gapsFilled, b.broker.stats().resets], [1, 1]);
    // Live delivery goes on.
    await hubA.publishAsync('kept', 'message6');
    await hubA.publishAsync('forgetful', 'message4');
    await waitFor(
      () => kept.got.length === 6 && forgetful.got.length === 2,
      WAIT_MS,
      () => 'live messages',
    );
    a.broker.close();
    b.broker.close();
    cluster.primary!.close();
  });

  it('malformed replies and items from the primary are counted and skipped; late replies and foreign messages ignored', async () => {
    const { fake, broker } = fakeCluster({ primary: false }).worker();
    const errors: Error[] = [];
    hubOf(broker, errors);
    const position = broker.position('t'); // id 2 (1 is the hello)
    const lease = broker.lease('x', 1000); // 3
    const refused = broker.lease('y', 1000); // 4
    const recover = broker.recover('t', 0, 'e'); // 5
    const partial = broker.recover('t', 0, 'e'); // 6
    for (const message of [
      fromPrimary(broker, { op: 'reply', id: 1, value: 7 }), // the hello's answer is the primary's dedup scope
      fromPrimary(broker, { op: 'reply', id: 2, value: { epoch: 5 } }),
      fromPrimary(broker, { op: 'reply', id: 3, value: 'yes' }),
      fromPrimary(broker, { op: 'reply', id: 4, error: 'nope' }),
      fromPrimary(broker, { op: 'reply', id: 5, value: null }),
      fromPrimary(broker, {
        op: 'reply',
        id: 6,
        value: { epoch: 'e', seq: 1, recovered: true, messages: [{ seq: 1 }] },
      }),
      fromPrimary(broker, { op: 'reply', id: 99, value: true }), // no such request (any more): ignored
      fromPrimary(broker, { op: 'message', topic: 't' }, 'junk', { op: 'what' }),
      { duet: 'broker', broker: broker.id, items: 'x' },
      { duet: 'broker', broker: broker.id + 1, items: [{ op: 'what' }] }, // another broker's: ignored
      { duet: 'other', items: [{ op: 'what' }] }, // the application's: ignored
      'text',
    ]) {
      fake.channel.emit('message', message);
    }
    await assert.rejects(position, isCode('WS_ERR_BROKER_MESSAGE'));
    await assert.rejects(lease, isCode('WS_ERR_BROKER_MESSAGE'));
    await assert.rejects(
      refused,
      (err: unknown) => isCode('WS_ERR_BROKER_UNAVAILABLE')(err) && /refused: nope/.test(String(err)),
    );
    await assert.rejects(recover, isCode('WS_ERR_BROKER_MESSAGE'));
    await assert.rejects(partial, isCode('WS_ERR_BROKER_MESSAGE'));
    assert.equal(broker.stats().malformed, 9);
    assert.deepEqual(
      errors.map((e) => (e as DuetError).code),
      [
        'WS_ERR_BROKER_MESSAGE',
        'WS_ERR_BROKER_MESSAGE',
        'WS_ERR_BROKER_MESSAGE',
        'WS_ERR_BROKER_MESSAGE',
        'WS_ERR_BROKER_UNAVAILABLE',
      ],
    );
    assert.match(errors[4].message, /did not say hello/);
    await assert.rejects(broker.lease('x', 0), RangeError);
    broker.close();
  });

  it('the primary answers a malformed request with an error, counts it, and goes on', async () => {
    const errors: Error[] = [];
    const cluster = fakeCluster({ primary: { onError: (err) => errors.push(err) } });
    const { fake, broker } = cluster.worker();
    const replies: Array<{ id?: number; error?: string }> = [];
    fake.channel.on('message', (m: { items?: [] }) => replies.push(...(m.items ?? [])));
    const send = (...items: unknown[]): boolean =>
      fake.channel.send({ duet: 'broker', broker: broker.id, items }, undefined, undefined, () => {});
    const answered = (id: number): Promise<void> =>
      waitFor(
        () => replies.some((r) => r.id === id),
        WAIT_MS,
        () => `reply ${id}`,
      );
    send(
      { op: 'publish', id: 100, topic: 5, binary: false, payload: '' },
      { op: 'lease', id: 101, name: 'x', ttl: -1 },
      { op: 'read', id: 102, topic: 't', since: 'x', epoch: 'e', upTo: 0 },
      { op: 'position', id: 103, topic: 1 },
      { op: 'watch', id: 104, topic: 1 },
      { op: 'unwatch', topic: 1 },
      { op: 'history', history: { size: 0 } },
      { op: 'history', history: { size: 3, ttl: -1 } },
      { op: 'history', topic: 'none', history: false },
      { op: 'nonsense' },
      'junk',
    );
    send({ duet: 'broker', items: 7 });
    fake.channel.send({ duet: 'broker', items: 7 }, undefined, undefined, () => {});
    // A history MemoryBroker cannot make: the requests on that topic fail, and say why.
    send({ op: 'history', topic: 'huge', history: { size: 2 ** 40 } }, { op: 'position', id: 105, topic: 'huge' });
    await answered(105);
    assert.deepEqual(
      replies.filter((r) => r.error !== undefined).map((r) => [r.id, r.error]),
      [...[100, 101, 102, 103, 104].map((id) => [id, 'malformed request']), [105, 'RangeError: Invalid array length']],
    );
    assert.equal(cluster.primary!.stats().malformed, 12);
    assert.deepEqual(
      errors.map((e) => (e as DuetError).code ?? e.name),
      [...Array<string>(12).fill('WS_ERR_BROKER_MESSAGE'), 'RangeError'],
    );
    // Nothing is answered after a `bye` (the worker closed); a new message is a new worker.
    send({ op: 'bye' }, { op: 'position', id: 106, topic: 't' });
    send({ op: 'position', id: 107, topic: 't' });
    await answered(107);
    assert.ok(!replies.some((r) => r.id === 106));
    broker.close();
    cluster.primary!.close();
  });

  it('two ClusterBrokers in one worker (two servers) stay apart: replies, topics and exclusions', async () => {
    const cluster = fakeCluster();
    const first = cluster.worker();
    const second = new ClusterBroker({ channel: first.fake.channel }); // the same IPC channel
    const other = cluster.worker();
    const hubs = [hubOf(first.broker), hubOf(second), hubOf(other.broker)];
    const recorders = await Promise.all(hubs.map((hub) => follow(hub, 'both')));
    const acks = await Promise.all(
      hubs.map((hub, i) => hub.publishAsync('both', `from ${i}`, undefined, recorders[i])),
    );
    assert.deepEqual(acks.map((a) => a.seq).sort(), [1, 2, 3], 'each its own answer');
    await waitFor(
      () => recorders.every((r) => r.got.length === 2),
      WAIT_MS,
      () => 'the deliveries',
    );
    const inSeqOrder = [0, 1, 2].sort((x, y) => acks[x].seq - acks[y].seq);
    for (const [i, r] of recorders.entries()) {
      // Everything in seq order, but its own publish (each excluded its publisher).
      assert.deepEqual(
        r.texts(),
        inSeqOrder.filter((j) => j !== i).map((j) => `from ${j}`),
      );
    }
    assert.equal(cluster.primary!.stats().workers, 2);
    // One of them leaves the topic (and then closes): the other still gets it.
    hubs[1].unsubscribeAll(recorders[1]);
    second.close();
    await hubs[2].publishAsync('both', 'after');
    await waitFor(
      () => recorders[0].got.length === 3,
      WAIT_MS,
      () => 'a message after the other left',
    );
    assert.equal(recorders[1].got.length, 2);
    for (const w of [first.broker, other.broker]) w.close();
    cluster.primary!.close();
  });

  it('a lease is held by one worker until it expires unrenewed, or its holder exits or closes', async () => {
    const cluster = fakeCluster();
    const [a, b, c] = [cluster.worker(), cluster.worker(), cluster.worker()];
    assert.equal(await a.broker.lease('job', 60_000), true);
    assert.equal(await b.broker.lease('job', 60_000), false, 'held by the other');
    assert.equal(await a.broker.lease('job', 60_000), true, 'renewed by its holder');
    a.fake.exit();
    assert.equal(await b.broker.lease('job', 60_000), true, 'free once its holder exited');
    assert.equal(cluster.primary!.stats().leases, 1);
    b.broker.close(); // its `bye` lets go of the lease
    assert.equal(await c.broker.lease('job', 60_000), true, 'free once its holder closed');
    assert.equal(await c.broker.lease('short', 30), true);
    let taken = false;
    for (let i = 0; i < 500 && !taken; i++) {
      const d = cluster.worker().broker;
      taken = await d.lease('short', 30);
      d.close();
      if (!taken) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(taken, 'taken once it expired');
    c.broker.close();
    cluster.primary!.close();
  });

  it('every worker configures the same topic history: the second does not wipe it; a change replaces it', async () => {
    const cluster = fakeCluster({ primary: { maxTopics: 100 } });
    const [a, b] = [cluster.worker(), cluster.worker()];
    const [hubA, hubB] = [hubOf(a.broker), hubOf(b.broker)];
    hubA.configureTopic('h', { history: { size: 10 } });
    for (let i = 1; i <= 3; i++) await hubA.publishAsync('h', `m${i}`);
    hubB.configureTopic('h', { history: { size: 10 } });
    const { epoch } = await hubB.positionAsync('h');
    const kept = await hubB.recoverAsync('h', 0, epoch);
    assert.deepEqual([kept.recovered, kept.messages.map((m) => m.payload.toString())], [true, ['m1', 'm2', 'm3']]);
    hubB.configureTopic('h', { history: { size: 5, ttl: 60_000 } });
    assert.equal((await hubB.recoverAsync('h', 0, epoch)).recovered, false, 'a new history, empty');
    // The broker's own `history` option is the default for every topic.
    const c = cluster.worker({ history: { size: 2 } });
    const hubC = hubOf(c.broker);
    for (let i = 1; i <= 3; i++) await hubC.publishAsync('fresh', `f${i}`);
    const at = await hubC.positionAsync('fresh');
    const last = await hubC.recoverAsync('fresh', 1, at.epoch);
    assert.deepEqual([last.recovered, last.messages.map((m) => m.payload.toString())], [true, ['f2', 'f3']]);
    assert.equal((await hubC.recoverAsync('fresh', 0, at.epoch)).recovered, false, 'older than 2 messages');
    for (const w of [a, b, c]) w.broker.close();
    cluster.primary!.close();
  });

  it("close() and exits: the primary forgets the worker's topics; nothing is sent to a closed channel", async () => {
    const cluster = fakeCluster();
    const [a, b] = [cluster.worker(), cluster.worker()];
    const errors: Error[] = [];
    const [hubA, hubB] = [hubOf(a.broker, errors), hubOf(b.broker, errors)];
    await follow(hubA, 'x');
    await follow(hubB, 'x');
    assert.equal(a.broker.topicCount(), 1);
    assert.deepEqual([cluster.primary!.stats().workers, cluster.primary!.stats().topics], [2, 1]);
    // b's channel closes before the primary hears of it: what was queued for b is not sent.
    b.fake.connected = false;
    await hubA.publishAsync('x', 'one');
    b.fake.exit();
    await waitFor(
      () => cluster.primary!.stats().workers === 1,
      WAIT_MS,
      () => 'b forgotten',
    );
    a.broker.close();
    a.broker.close(); // twice: nothing more
    a.broker.configureTopic('x', false); // after close: nothing
    a.fake.exit(); // after close: not reported
    await waitFor(
      () => cluster.primary!.stats().workers === 0,
      WAIT_MS,
      () => 'a forgotten',
    );
    assert.deepEqual([cluster.primary!.stats().topics, cluster.primary!.stats().logs], [0, 0]);
    await assert.rejects(hubA.publishAsync('x', 'late'), isCode('WS_ERR_BROKER_UNAVAILABLE'));
    // A message from a worker whose channel is closed makes no worker.
    cluster.events.emit('message', a.fake.port, fromPrimary(a.broker, { op: 'position', id: 9, topic: 'x' }));
    assert.equal(cluster.primary!.stats().workers, 0);
    assert.deepEqual(
      errors.map((e) => e.message),
      ['the IPC channel to the cluster primary closed'],
      "only b's closed channel",
    );
    // Closing the primary with answers queued: they are not sent.
    const c = cluster.worker();
    cluster.events.emit('message', c.fake.port, fromPrimary(c.broker, { op: 'position', id: 9, topic: 'x' }));
    cluster.primary!.close();
    cluster.primary!.close();
    c.broker.close();
  });
});
