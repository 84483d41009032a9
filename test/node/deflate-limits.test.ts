/**
 * permessage-deflate under attack, over real connections (issue 13, point 7): what deflate.ts
 * bounds and how. A compressed message that inflates past maxInflatedPayload closes 1009 and
 * leaves nothing behind; a big inflation gives way to another connection's small one (the
 * zlib queue, zlib-queue.ts); a connection over its inflate budget (maxInflateRate) waits
 * without holding others up; publishes over publishCompressLimit go out uncompressed, in
 * order.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as zlib from 'node:zlib';
import { WebSocket } from '../../src/index.js';
import { PER_MESSAGE_DEFLATE_DEFAULTS, liveDeflateContexts, zlibQueue } from '../../src/node/deflate.js';
import { HOST, RawClient, clientFrame, startServer, upgradeRequest } from '../helpers.js';

const T = { timeout: 30_000 };
const TEXT = 0x1;
const BINARY = 0x2;
const OFFER = ['Sec-WebSocket-Extensions: permessage-deflate'];

/** Deflate as a peer sends it: sync flush, without the trailing 00 00 ff ff. */
function deflateRaw(data: Buffer): Buffer {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** A compressed client frame. */
const compressedFrame = (payload: Buffer, opcode = BINARY): Buffer =>
  clientFrame({ opcode, payload: deflateRaw(payload), rsv: 4 });

/** A full garbage collection (the flag can be set at run time; `gc` then exists in new contexts). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Wait for `cond`, re-checked every 5 ms, failing after `ms` (a generous bound, not a speed). */
async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('permessage-deflate: the inflated size is bounded', () => {
  it(
    'a message inflating past maxInflatedPayload (4 MiB by default) closes 1009; what it collected is released',
    T,
    async () => {
      const { wss, port, close } = await startServer({ perMessageDeflate: true });
      try {
        assert.equal(wss.options.maxPayload, 100 * 1024 * 1024, 'maxPayload alone would have let it through');
        const errors: Array<{ code: string; message: string }> = [];
        const messages: number[] = [];
        wss.on('connection', (ws: WebSocket) => {
          ws.on('error', (err: Error & { code: string }) => errors.push({ code: err.code, message: err.message }));
          ws.on('message', (d: Buffer) => messages.push(d.length));
        });
        // Exactly at the limit passes...
        const ok = await RawClient.connect(port, upgradeRequest('/', OFFER));
        ok.write(compressedFrame(Buffer.alloc(PER_MESSAGE_DEFLATE_DEFAULTS.maxInflatedPayload)));
        await until(() => messages.length === 1, 10_000, 'the message at the limit');
        assert.deepEqual(messages, [4 * 1024 * 1024]);
        ok.destroy();
        messages.length = 0;
        // ...64 MiB of zeros (about 64 KB on the wire) does not, and leaves nothing behind.
        await until(() => wss.clients.size === 0, 10_000, 'the first connection to go');
        const bomb = compressedFrame(Buffer.alloc(64 * 1024 * 1024));
        assert.ok(bomb.length < 100_000);
        const streams = liveDeflateContexts();
        collectGarbage();
        const before = process.memoryUsage().arrayBuffers;
        const raw = await RawClient.connect(port, upgradeRequest('/', OFFER));
        raw.write(bomb);
        assert.equal(await raw.closeCode(10_000), 1009);
        assert.deepEqual(messages, []);
        assert.equal(errors.length, 1);
        assert.equal(errors[0].code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
        assert.match(errors[0].message, /maxInflatedPayload \(4194304 bytes\)/);
        await until(() => wss.clients.size === 0, 10_000, 'the bomber to go');
        // Up to 4 MiB was collected before the limit was passed; none of it is kept. V8 frees
        // ArrayBuffer memory on a background thread after a collection, so collect a few times
        // (on a busy machine that thread may lag) and judge the lowest reading.
        let kept = Infinity;
        for (let i = 0; i < 20 && kept >= 1024 * 1024; i++) {
          collectGarbage();
          await new Promise((r) => setTimeout(r, 50));
          kept = Math.min(kept, process.memoryUsage().arrayBuffers - before);
        }
        assert.ok(kept < 1024 * 1024, `${kept} bytes of buffers still held`);
        assert.ok(liveDeflateContexts() <= streams, 'the failed inflater was closed, not kept');
      } finally {
        await close();
      }
    },
  );

  it('maxInflatedPayload is an option of its own; a lower maxPayload still wins, and says so', T, async () => {
    const cases: Array<[number, number, string, number]> = [
      // [maxPayload, maxInflatedPayload, limit named in the error, the limit]
      [100 * 1024 * 1024, 64 * 1024, 'maxInflatedPayload', 64 * 1024],
      [32 * 1024, 64 * 1024, 'maxPayload', 32 * 1024],
      [0, 0, '', 0], // no limit at all: a 1 MiB message passes
    ];
    for (const [maxPayload, maxInflatedPayload, name, limit] of cases) {
      const { wss, port, close } = await startServer({ maxPayload, perMessageDeflate: { maxInflatedPayload } });
      try {
        const errors: string[] = [];
        const sizes: number[] = [];
        wss.on('connection', (ws: WebSocket) => {
          ws.on('error', (err: Error) => errors.push(err.message));
          ws.on('message', (d: Buffer) => sizes.push(d.length));
        });
        const raw = await RawClient.connect(port, upgradeRequest('/', OFFER));
        if (limit === 0) {
          raw.write(compressedFrame(Buffer.alloc(1024 * 1024, 'a'), TEXT));
          await until(() => sizes.length === 1);
          assert.deepEqual(sizes, [1024 * 1024]);
          raw.destroy();
          continue;
        }
        raw.write(compressedFrame(Buffer.alloc(limit, 'a'), TEXT));
        raw.write(compressedFrame(Buffer.alloc(limit + 1, 'a'), TEXT));
        assert.equal(await raw.closeCode(10_000), 1009);
        assert.deepEqual(sizes, [limit], 'at the limit it passes, one byte over it does not');
        assert.deepEqual(errors, [`inflated message over ${name} (${limit} bytes)`]);
      } finally {
        await close();
      }
    }
  });
});

describe('permessage-deflate: one connection cannot hold the others up', () => {
  it("a big inflation gives way to another connection's small message that arrived after it", T, async () => {
    const previous = zlibQueue.limit;
    zlibQueue.limit = 1;
    const { wss, port, close } = await startServer({ perMessageDeflate: { maxInflatedPayload: 16 * 1024 * 1024 } });
    let release: (() => void) | undefined;
    try {
      const order: string[] = [];
      wss.on('connection', (ws: WebSocket) =>
        ws.on('message', (d: Buffer) => order.push(d.length > 1000 ? `bomb ${d.length}` : d.toString())),
      );
      const bomber = await RawClient.connect(port, upgradeRequest('/', OFFER));
      const victim = await RawClient.connect(port, upgradeRequest('/', OFFER));
      // Hold the only slot, so both jobs are queued before either starts: the bomb first.
      zlibQueue.run(() => (release = () => zlibQueue.done()));
      bomber.write(compressedFrame(Buffer.alloc(8 * 1024 * 1024)));
      await until(() => zlibQueue.load.waiting === 1, 10_000, 'the bomb to be queued');
      victim.write(compressedFrame(Buffer.from('hello from a small message'), TEXT));
      await until(() => zlibQueue.load.waiting === 2, 10_000, 'the small message to be queued');
      const hold = release!;
      release = undefined;
      hold();
      await until(() => order.length === 2, 20_000, 'both messages');
      // In arrival order the small message would have waited for all 8 MiB to be inflated.
      assert.deepEqual(order, ['hello from a small message', `bomb ${8 * 1024 * 1024}`]);
      bomber.destroy();
      victim.destroy();
    } finally {
      release?.();
      zlibQueue.limit = previous;
      await close();
    }
  });

  it(
    'while bombers flood compressed messages, another connection gets its echoes back before they are done',
    T,
    async () => {
      const { wss, port, close } = await startServer({ perMessageDeflate: { threshold: 0 } });
      try {
        wss.on('connection', (ws: WebSocket) =>
          ws.on('message', (d: Buffer, isBinary: boolean) => ws.send(d, { binary: isBinary })),
        );
        const bombers = await Promise.all(
          Array.from({ length: 4 }, () => RawClient.connect(port, upgradeRequest('/', OFFER))),
        );
        const victim = new WebSocket(`ws://${HOST}:${port}/`, [], { perMessageDeflate: { threshold: 0 } });
        await once(victim, 'open');
        const bombFrame = compressedFrame(Buffer.alloc(2 * 1024 * 1024));
        const perBomber = 8;
        for (const b of bombers) b.write(Buffer.concat(Array.from({ length: perBomber }, () => bombFrame)));
        const echoes = (): number =>
          bombers.reduce((n, b) => n + b.frames().filter((f) => f.opcode === BINARY).length, 0);
        await until(() => echoes() > 0, 20_000, 'the first bomb echo');
        // Three small compressed round trips, one after another, while the flood goes on.
        for (let i = 0; i < 3; i++) {
          const echo = once(victim, 'message') as Promise<[Buffer]>;
          victim.send(`small ${i} `.repeat(20));
          const [data] = await echo;
          assert.equal(data.toString(), `small ${i} `.repeat(20));
        }
        assert.ok(echoes() < bombers.length * perBomber, `the flood was over first (${echoes()} echoes)`);
        await until(() => echoes() === bombers.length * perBomber, 20_000, 'every bomb echoed');
        victim.close();
        for (const b of bombers) b.destroy();
      } finally {
        await close();
      }
    },
  );

  it('a connection over maxInflateRate waits for its budget to refill; the others do not wait with it', T, async () => {
    const rate = 256 * 1024;
    const { wss, port, close } = await startServer({ perMessageDeflate: { maxInflateRate: rate } });
    try {
      const got: Array<[string, number]> = [];
      wss.on('connection', (ws: WebSocket) =>
        ws.on('message', (d: Buffer) => got.push([d.subarray(0, 8).toString(), Date.now()])),
      );
      const flooder = await RawClient.connect(port, upgradeRequest('/', OFFER));
      const other = await RawClient.connect(port, upgradeRequest('/', OFFER));
      // 3 x 200 KiB: the first two fit in the budget (256 KiB, and not in debt before the second);
      // the third waits until the 144 KiB of debt is paid back, over half a second at 256 KiB/s.
      const msg = (tag: string): Buffer =>
        compressedFrame(Buffer.concat([Buffer.from(tag), Buffer.alloc(200 * 1024 - 8, 'z')]), TEXT);
      flooder.write(Buffer.concat([msg('flood-1 '), msg('flood-2 '), msg('flood-3 ')]));
      await until(() => got.length === 2, 10_000, 'the first two');
      other.write(compressedFrame(Buffer.from('other-1 just a line'), TEXT));
      await until(() => got.length === 4, 20_000, 'the rest');
      assert.deepEqual(
        got.map(([tag]) => tag),
        ['flood-1 ', 'flood-2 ', 'other-1 ', 'flood-3 '],
      );
      // A lower bound, never an upper one: the budget cannot refill faster than the clock.
      const waited = got[3][1] - got[1][1];
      assert.ok(waited >= 400, `the third message waited ${waited} ms`);
      flooder.destroy();
      other.destroy();
    } finally {
      await close();
    }
  });
});

describe('permessage-deflate: publishes larger than publishCompressLimit', () => {
  it('go out uncompressed, in order with the compressed ones, to every kind of subscriber', T, async () => {
    const { wss, port, close } = await startServer({
      perMessageDeflate: { threshold: 0, publishCompressLimit: 64 * 1024 },
    });
    try {
      wss.on('connection', (ws: WebSocket) => ws.subscribe('news'));
      const raw = await RawClient.connect(port, upgradeRequest('/', OFFER));
      const client = new WebSocket(`ws://${HOST}:${port}/`, [], { perMessageDeflate: { threshold: 0 } });
      client.binaryType = 'nodebuffer';
      const clientGot: string[] = [];
      client.on('message', (d: Buffer) => clientGot.push(d.toString()));
      await once(client, 'open');
      await until(() => wss.clients.size === 2);
      const row = (i: number): string => JSON.stringify({ id: i, name: `row ${i}`, tags: ['a', 'b'] });
      const big = (n: number): string => `[${Array.from({ length: n }, (_, i) => row(i)).join(',')}]`;
      const messages = ['small 1', big(4000), 'small 2', big(20), big(30_000), 'small 3'];
      for (const m of messages) wss.broadcast(m, { binary: false });
      await until(() => clientGot.length === messages.length, 20_000, 'every broadcast');
      assert.deepEqual(clientGot, messages);
      await raw.until(() => raw.frames().length === messages.length, 20_000);
      const frames = raw.frames();
      const compressed = frames.map((f) => f.rsv === 4);
      assert.deepEqual(
        compressed,
        messages.map((m) => Buffer.byteLength(m) <= 64 * 1024),
      );
      frames.forEach((f, i) => {
        const body =
          f.rsv === 4
            ? zlib.inflateRawSync(Buffer.concat([f.payload, Buffer.from([0, 0, 0xff, 0xff])]), {
                finishFlush: zlib.constants.Z_SYNC_FLUSH,
              })
            : f.payload;
        assert.equal(body.toString(), messages[i]);
      });
      client.close();
      raw.destroy();
    } finally {
      await close();
    }
  });
});
