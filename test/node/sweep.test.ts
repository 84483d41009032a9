/**
 * The sweep: heartbeat (ping the silent, terminate those that stay silent: close 1006
 * locally) and idle timeout (close 1001 when no message arrives), over real TCP with a raw
 * client that never answers pings and real clients (ws, duet) that do.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WS from 'ws';
import { WebSocket, type WebSocketServer } from '../../src/index.js';
import { clientFrame, HOST, RawClient, sleep, startServer, waitFor } from '../helpers.js';

const T = { timeout: 10_000 };
const HEARTBEAT = { interval: 100, timeout: 100 };

/** Record every server-side connection's close code, in connection order. */
function trackCloses(wss: WebSocketServer): { codes: Array<number | undefined>; closed: Array<Promise<number>> } {
  const codes: Array<number | undefined> = [];
  const closed: Array<Promise<number>> = [];
  wss.on('connection', (ws: WebSocket) => {
    const i = codes.length;
    codes.push(undefined);
    closed.push(
      new Promise<number>((resolve) =>
        ws.on('close', (code: number) => {
          codes[i] = code;
          resolve(code);
        }),
      ),
    );
  });
  return { codes, closed };
}

async function openWs(port: number): Promise<WS> {
  const client = new WS(`ws://${HOST}:${port}/`, { handshakeTimeout: 3000 });
  await once(client, 'open');
  return client;
}

describe('heartbeat', () => {
  it('terminates a raw socket that ignores pings (1006 locally) and keeps a ws client that answers', T, async () => {
    const srv = await startServer({ heartbeat: HEARTBEAT });
    const { codes, closed } = trackCloses(srv.wss);
    try {
      const answering = await openWs(srv.port);
      let pingsAnswered = 0;
      answering.on('ping', () => pingsAnswered++);
      const started = Date.now();
      const silent = await RawClient.connect(srv.port);
      assert.equal(silent.status, 101);

      await silent.until(() => silent.closed, 3000);
      const lifetime = Date.now() - started;
      const frames = silent.frames();
      assert.ok(
        frames.some((f) => f.opcode === 0x9),
        'the silent client was pinged first',
      );
      assert.ok(!frames.some((f) => f.opcode === 0x8), 'terminated: no Close frame');
      assert.ok(lifetime >= HEARTBEAT.interval + HEARTBEAT.timeout - 20, `terminated after only ${lifetime} ms`);
      assert.ok(lifetime < 1500, `terminated after ${lifetime} ms`);
      assert.equal(await closed[1], 1006, 'close event 1006 on the server side');
      assert.equal(srv.wss.stats().heartbeatTerminated, 1);

      // The answering client lives on, many intervals later.
      await sleep(800);
      assert.equal(answering.readyState, WS.OPEN);
      assert.ok(pingsAnswered >= 3, `pings answered: ${pingsAnswered}`);
      assert.equal(codes[0], undefined, 'the answering connection is still open on the server');
      assert.equal(srv.wss.stats().heartbeatTerminated, 1);
      assert.equal(srv.wss.stats().connections, 1);
      answering.terminate();
    } finally {
      await srv.close();
    }
  });

  it('keeps a duet client, which answers pings by itself', T, async () => {
    const srv = await startServer({ heartbeat: HEARTBEAT });
    try {
      const client = new WebSocket(`ws://${HOST}:${srv.port}/`);
      await once(client, 'open');
      await sleep(700);
      assert.equal(client.readyState, WebSocket.OPEN);
      assert.equal(srv.wss.stats().heartbeatTerminated, 0);
      client.close();
      await once(client, 'close');
    } finally {
      await srv.close();
    }
  });

  it('any frame counts as an answer: a raw client that never pongs but sends its own pings is kept', T, async () => {
    const srv = await startServer({ heartbeat: HEARTBEAT });
    try {
      const client = await RawClient.connect(srv.port);
      const end = Date.now() + 700;
      while (Date.now() < end) {
        client.write(clientFrame({ opcode: 0x9, payload: 'hi' }));
        await sleep(40);
      }
      assert.equal(client.closed, false);
      assert.equal(srv.wss.stats().heartbeatTerminated, 0);
      assert.ok(
        client.frames().some((f) => f.opcode === 0xa),
        'its pings were answered',
      );
      client.destroy();
    } finally {
      await srv.close();
    }
  });

  it('several silent clients are each terminated and counted', T, async () => {
    const srv = await startServer({ heartbeat: HEARTBEAT });
    try {
      const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(srv.port)));
      await Promise.all(clients.map((c) => c.until(() => c.closed, 3000)));
      assert.equal(srv.wss.stats().heartbeatTerminated, 5);
      for (let i = 0; i < 100 && srv.wss.stats().connections > 0; i++) await sleep(10);
      assert.equal(srv.wss.stats().connections, 0);
    } finally {
      await srv.close();
    }
  });

  it('a connection the application paused is not judged by its silence; after resume() it is again', T, async () => {
    const srv = await startServer({ heartbeat: HEARTBEAT });
    const { closed } = trackCloses(srv.wss);
    const paused = once(srv.wss, 'connection') as Promise<[WebSocket]>;
    try {
      const silent = await RawClient.connect(srv.port);
      const [ws] = await paused;
      ws.pause();
      await sleep(700);
      assert.equal(silent.closed, false, 'kept while paused (over three heartbeat periods)');
      assert.equal(srv.wss.stats().heartbeatTerminated, 0);
      ws.resume();
      await silent.until(() => silent.closed, 3000);
      assert.equal(await closed[0], 1006, 'once reading again, the silent peer is terminated');
    } finally {
      await srv.close();
    }
  });

  it('heartbeat: false never pings nor terminates', T, async () => {
    const srv = await startServer({ heartbeat: false });
    try {
      const client = await RawClient.connect(srv.port);
      await sleep(600);
      assert.equal(client.closed, false);
      assert.equal(client.frames().length, 0, 'no pings');
      assert.equal(srv.wss.stats().heartbeatTerminated, 0);
      client.destroy();
    } finally {
      await srv.close();
    }
  });
});

describe('idleTimeout', () => {
  const IDLE = 300;

  it('closes with 1001 a client that sends no messages, keeps one that does', T, async () => {
    const srv = await startServer({ heartbeat: false, idleTimeout: IDLE });
    const { closed } = trackCloses(srv.wss);
    try {
      const started = Date.now();
      const quiet = await openWs(srv.port);
      const chatty = await openWs(srv.port);
      const timer = setInterval(() => chatty.send('still here'), 50);
      try {
        const [code, reason] = (await once(quiet, 'close')) as [number, Buffer];
        const lifetime = Date.now() - started;
        assert.equal(code, 1001);
        assert.equal(reason.toString(), 'idle timeout');
        assert.ok(lifetime >= IDLE - 20, `closed after only ${lifetime} ms`);
        assert.ok(lifetime < 2000, `closed after ${lifetime} ms`);
        assert.equal(await closed[0], 1001, 'server side sees 1001 too');
        await sleep(700);
        assert.equal(chatty.readyState, WS.OPEN, 'the client sending messages is kept');
        assert.equal(srv.wss.stats().idleClosed, 1);
      } finally {
        clearInterval(timer);
      }
      chatty.terminate();
    } finally {
      await srv.close();
    }
  });

  it('pongs are not messages: a client answering the heartbeat still goes idle', T, async () => {
    const srv = await startServer({ heartbeat: { interval: 50, timeout: 100 }, idleTimeout: IDLE });
    try {
      const client = await openWs(srv.port);
      let pings = 0;
      client.on('ping', () => pings++);
      const [code] = (await once(client, 'close')) as [number, Buffer];
      assert.equal(code, 1001);
      assert.ok(pings >= 1, 'the heartbeat pinged it (it was alive)');
      assert.equal(srv.wss.stats().idleClosed, 1);
      assert.equal(srv.wss.stats().heartbeatTerminated, 0);
    } finally {
      await srv.close();
    }
  });

  it('a client sending only pings still goes idle', T, async () => {
    const srv = await startServer({ heartbeat: false, idleTimeout: IDLE });
    try {
      const client = await openWs(srv.port);
      const timer = setInterval(() => client.ping(), 40);
      try {
        const [code] = (await once(client, 'close')) as [number, Buffer];
        assert.equal(code, 1001);
      } finally {
        clearInterval(timer);
      }
      assert.equal(srv.wss.stats().idleClosed, 1);
    } finally {
      await srv.close();
    }
  });

  it('idleTimeout 0 (default) never closes', T, async () => {
    const srv = await startServer({ heartbeat: false });
    try {
      const client = await openWs(srv.port);
      await sleep(500);
      assert.equal(client.readyState, WS.OPEN);
      assert.equal(srv.wss.stats().idleClosed, 0);
      client.terminate();
    } finally {
      await srv.close();
    }
  });
});

describe('assemblyTimeout', () => {
  const LIMIT = 300;

  it(
    'fails with 1008 a connection that starts a fragmented message and then stalls, and one that drips empty continuation frames',
    { timeout: 20_000 },
    async () => {
      const s = await startServer({ heartbeat: false, assemblyTimeout: LIMIT });
      const errors: string[] = [];
      s.wss.on('connection', (ws: WebSocket) =>
        ws.on('error', (err: Error & { code: string }) => errors.push(err.code)),
      );
      try {
        const stalled = await RawClient.connect(s.port);
        stalled.write(clientFrame({ opcode: 0x1, payload: 'the start of a message', fin: false }));
        const dripping = await RawClient.connect(s.port);
        dripping.write(clientFrame({ opcode: 0x2, payload: Buffer.alloc(10), fin: false }));
        const drip = setInterval(
          () => dripping.write(clientFrame({ opcode: 0x0, payload: Buffer.alloc(0), fin: false })),
          20,
        );
        try {
          assert.equal(await stalled.closeCode(10_000), 1008);
          assert.equal(await dripping.closeCode(10_000), 1008);
        } finally {
          clearInterval(drip);
        }
        assert.deepEqual(errors, ['WS_ERR_MESSAGE_ASSEMBLY_TIMEOUT', 'WS_ERR_MESSAGE_ASSEMBLY_TIMEOUT']);
      } finally {
        await s.close();
      }
    },
  );

  it(
    'a fragmented message that completes in time, and messages after it, are delivered; the connection stays open past the limit',
    { timeout: 20_000 },
    async () => {
      const s = await startServer({ heartbeat: false, assemblyTimeout: LIMIT });
      const received: string[] = [];
      s.wss.on('connection', (ws: WebSocket) => ws.on('message', (d: Buffer) => received.push(d.toString())));
      try {
        const c = await RawClient.connect(s.port);
        c.write(clientFrame({ opcode: 0x1, payload: 'frag', fin: false }));
        c.write(clientFrame({ opcode: 0x0, payload: 'mented', fin: true }));
        await sleep(LIMIT * 3); // several sweeps with no message in assembly
        c.write(clientFrame({ opcode: 0x1, payload: 'after' }));
        await waitFor(
          () => received.length === 2,
          10_000,
          () => `received ${JSON.stringify(received)}`,
        );
        assert.deepEqual(received, ['fragmented', 'after']);
        assert.equal(c.closed, false, 'still open');
        c.destroy();
      } finally {
        await s.close();
      }
    },
  );
});
