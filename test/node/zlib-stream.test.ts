/**
 * ZlibStream and ZlibPool on their own: raw deflate / inflate jobs that round-trip (RFC 7692
 * framing: output sync-flushed, the 00 00 ff ff trailer appended before inflating), history
 * kept between jobs until reset(), errors with stable codes and close codes, the output limit,
 * a peer's BFINAL block, and the pool of idle streams (reuse, keys, maxIdle, sweep).
 * Outputs are checked with node:zlib directly.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { randomBytes } from 'node:crypto';
import {
  INPUT_SLICE,
  OUTPUT_QUANTUM,
  TRAILER,
  ZlibPool,
  ZlibStream,
  deflateError,
  type DeflateError,
  type JobSlot,
} from '../../src/node/zlib-stream.js';

const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

interface JobResult {
  err: DeflateError | null;
  out: Buffer | undefined;
  /** `ended` as the callback saw it (a pool takes the stream back inside the callback). */
  endedAtCallback: boolean;
}

/**
 * One job on `stream`, as a promise. run()'s parameters are being reworked (the
 * compression-bomb limits: a queue slot, a name for the limit); what a job does is not. This
 * is the one place that calls run(): it passes the old (input, trailer, limit, cb) or the new
 * (input, limit, limitName, slot, cb), by arity. A slot that never gives way means each job
 * runs whole.
 */
function runJob(stream: ZlibStream, inflate: boolean, input: Buffer, limit = 0): Promise<JobResult> {
  return new Promise((resolve) => {
    const cb = (err: DeflateError | null, out?: Buffer): void => resolve({ err, out, endedAtCallback: stream.ended });
    const run = stream.run as unknown as (...args: unknown[]) => void;
    if (run.length >= 5)
      run.call(stream, input, limit, 'the test limit', { stamp: () => 0, yieldSlot: () => false }, cb);
    else run.call(stream, input, inflate, limit, cb);
  });
}

async function deflate(stream: ZlibStream, input: Buffer): Promise<Buffer> {
  const { err, out } = await runJob(stream, false, input);
  assert.equal(err, null);
  return out!;
}

async function inflate(stream: ZlibStream, body: Buffer, limit = 0): Promise<JobResult> {
  return runJob(stream, true, body, limit);
}

const newDeflater = (windowBits = 15): ZlibStream => new ZlibStream(false, { level: 6, memLevel: 8, windowBits });
const newInflater = (windowBits = 15): ZlibStream => new ZlibStream(true, { windowBits });

/** A message body as a permessage-deflate sender puts it on the wire: trailer stripped. */
const strip = (out: Buffer): Buffer => {
  assert.ok(out.subarray(-4).equals(TRAILER), 'sync-flushed output ends with 00 00 ff ff');
  return out.subarray(0, out.length - 4);
};

const json = Buffer.from(
  JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ id: i, name: `user ${i}`, ok: i % 3 === 0 }))),
);

/** Bytes that do not compress (a seeded xorshift). */
function noise(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 2463534242;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

describe('ZlibStream: round trips', () => {
  for (const [name, payload] of [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from('x')],
    ['JSON text', json],
    ['1 MiB of zeros', Buffer.alloc(1024 * 1024)],
    ['300 KiB that does not compress', noise(300 * 1024)],
  ] as const) {
    it(`${name}: deflated output is sync-flushed raw deflate that zlib inflates, and our inflater gives it back`, async () => {
      const d = newDeflater();
      const i = newInflater();
      try {
        const out = await deflate(d, payload);
        const body = strip(out);
        assert.ok(zlib.inflateRawSync(out, SYNC).equals(payload), 'node:zlib reads it');
        const back = await inflate(i, body);
        assert.equal(back.err, null);
        assert.ok(back.out!.equals(payload));
      } finally {
        d.close();
        i.close();
      }
    });
  }

  it('inflates what node:zlib compressed (another sender), trailer stripped as on the wire', async () => {
    const i = newInflater();
    try {
      const body = strip(zlib.deflateRawSync(json, { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
      const back = await inflate(i, body);
      assert.ok(back.out!.equals(json));
    } finally {
      i.close();
    }
  });

  it('busy while a job runs, not after its callback', async () => {
    const d = newDeflater();
    try {
      assert.equal(d.busy, false);
      const job = runJob(d, false, json);
      assert.equal(d.busy, true);
      await job;
      assert.equal(d.busy, false);
    } finally {
      d.close();
    }
  });
});

describe('ZlibStream: history between jobs (context takeover)', () => {
  it('a message repeated on the same streams compresses to a back-reference and still inflates in order', async () => {
    const d = newDeflater();
    const i = newInflater();
    try {
      const first = strip(await deflate(d, json));
      const second = strip(await deflate(d, json));
      assert.ok(
        second.length < first.length / 4,
        `the second refers to the first (${second.length} vs ${first.length} bytes)`,
      );
      assert.ok((await inflate(i, first)).out!.equals(json));
      assert.ok((await inflate(i, second)).out!.equals(json));
    } finally {
      d.close();
      i.close();
    }
  });

  it('reset() forgets the history: the next message compresses as on a fresh stream, and a fresh inflater reads it', async () => {
    const d = newDeflater();
    const fresh = newDeflater();
    const i = newInflater();
    try {
      await deflate(d, json);
      d.reset();
      const after = await deflate(d, json);
      assert.ok(after.equals(await deflate(fresh, json)));
      assert.ok((await inflate(i, strip(after))).out!.equals(json));
    } finally {
      d.close();
      fresh.close();
      i.close();
    }
  });
});

describe('ZlibStream: errors and limits', () => {
  it('invalid compressed data: WS_ERR_INFLATE with close code 1007, and the stream is closed', async () => {
    const i = newInflater();
    const { err, out } = await inflate(i, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]));
    assert.ok(err instanceof Error);
    assert.deepEqual([err.code, err.closeCode, out], ['WS_ERR_INFLATE', 1007, undefined]);
    assert.equal(i.closed, true);
    assert.equal(i.busy, false);
  });

  it('output over the limit (by one byte too): WS_ERR_UNSUPPORTED_MESSAGE_LENGTH with 1009, the stream closed; at the limit exactly it passes', async () => {
    const body = strip(zlib.deflateRawSync(Buffer.alloc(1024 * 1024), { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
    const over = newInflater();
    const { err, out } = await inflate(over, body, 64 * 1024);
    assert.ok(err instanceof Error);
    assert.deepEqual([err.code, err.closeCode, out], ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009, undefined]);
    assert.equal(over.closed, true);
    const oneUnder = newInflater();
    assert.equal(
      (await inflate(oneUnder, body, 1024 * 1024 - 1)).err?.code,
      'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
      'one byte over the limit',
    );
    const exact = newInflater();
    try {
      const ok = await inflate(exact, body, 1024 * 1024);
      assert.equal(ok.err, null);
      assert.equal(ok.out!.length, 1024 * 1024);
    } finally {
      exact.close();
    }
  });

  it('deflateError carries a code and a close code', () => {
    const err = deflateError('WS_ERR_X', 'message', 1011);
    assert.ok(err instanceof Error);
    assert.deepEqual([err.code, err.closeCode, err.message], ['WS_ERR_X', 1011, 'message']);
  });

  it('close() is idempotent', () => {
    const d = newDeflater();
    d.close();
    d.close();
    assert.equal(d.closed, true);
  });

  it('a message ending in a BFINAL block (RFC 7692 7.2.3.4) inflates, and marks the stream ended (it takes no more input) by the time of the callback', async () => {
    // deflateRawSync with the default finish flush ends with a final block.
    const final = zlib.deflateRawSync(json);
    const i = newInflater();
    try {
      const { err, out, endedAtCallback } = await inflate(i, final);
      assert.equal(err, null);
      assert.ok(out!.equals(json));
      assert.equal(endedAtCallback, true);
      assert.equal(i.ended, true);
    } finally {
      i.close();
    }
  });
});

describe('ZlibPool', () => {
  it('acquire creates when nothing is idle; a released stream is reset and handed out again for the same key only', async () => {
    const pool = new ZlibPool(4);
    let created = 0;
    const create = (): ZlibStream => {
      created++;
      return newDeflater();
    };
    const a = pool.acquire('d15', create);
    assert.equal(created, 1);
    const first = await deflate(a, json);
    pool.release('d15', a);
    assert.equal(pool.size, 1);
    const other = pool.acquire('d10', create);
    assert.notEqual(other, a, 'another key gets its own stream');
    assert.equal(created, 2);
    const again = pool.acquire('d15', create);
    assert.equal(again, a, 'reused');
    assert.equal(created, 2);
    assert.equal(pool.size, 0);
    assert.ok((await deflate(again, json)).equals(first), 'reset: no history from the previous user');
    for (const s of [a, other]) s.close();
  });

  it('keeps at most maxIdle per key; extra streams are closed', () => {
    const pool = new ZlibPool(2);
    const streams = [newDeflater(), newDeflater(), newDeflater()];
    for (const s of streams) pool.release('k', s);
    assert.equal(pool.size, 2);
    assert.deepEqual(
      streams.map((s) => s.closed),
      [false, false, true],
    );
    pool.release('other', newDeflater());
    assert.equal(pool.size, 3, 'the limit is per key');
    pool.sweep();
    pool.sweep();
    assert.equal(pool.size, 0);
  });

  it('a closed stream is not taken back; an ended one is closed instead of kept, and never handed out', async () => {
    const pool = new ZlibPool(4);
    const closed = newDeflater();
    closed.close();
    pool.release('k', closed);
    assert.equal(pool.size, 0);
    const i = newInflater();
    await inflate(i, zlib.deflateRawSync(json));
    assert.equal(i.ended, true);
    pool.release('k', i);
    assert.equal(pool.size, 0);
    assert.equal(i.closed, true);
    const fresh = pool.acquire('k', newInflater);
    assert.notEqual(fresh, i);
    // One that ends while idle (zlib's 'end' can come a tick after its job) is closed, not handed out.
    pool.release('k', fresh);
    fresh.ended = true;
    const next = pool.acquire('k', newInflater);
    assert.notEqual(next, fresh);
    assert.equal(fresh.closed, true);
    next.close();
  });

  it('sweep closes streams unused since the previous sweep and keeps the ones used', async () => {
    const pool = new ZlibPool(4);
    const busy = newDeflater();
    const idle = newDeflater();
    pool.release('k', busy);
    pool.release('k', idle);
    pool.sweep(); // both were used before: kept, marked unused
    assert.equal(pool.size, 2);
    const taken = pool.acquire('k', () => assert.fail('one is idle'));
    assert.equal(taken, idle, 'the most recently released first');
    await deflate(taken, json);
    pool.release('k', taken);
    pool.sweep();
    assert.equal(pool.size, 1);
    assert.deepEqual([busy.closed, idle.closed], [true, false]);
    pool.sweep();
    assert.equal(pool.size, 0);
    assert.equal(idle.closed, true);
  });
});

// ---------------------------------------------------------------------------------------------

/** A slot stand-in: `decide` says what yieldSlot does with each offer. */
class FakeSlot implements JobSlot {
  offers = 0;
  pending: Array<() => void> = [];
  private stamps = 0;
  constructor(private readonly decide: (resume: () => void, slot: FakeSlot) => boolean) {}
  stamp(): number {
    return ++this.stamps;
  }
  yieldSlot(resume: () => void): boolean {
    this.offers++;
    return this.decide(resume, this);
  }
}

const keep = new FakeSlot(() => false);

function runSliced(
  stream: ZlibStream,
  input: Buffer,
  slot: JobSlot,
  limit = 0,
): Promise<{ err: DeflateError | null; out?: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the job never called back')), 10_000);
    stream.run(input, limit, 'the limit', slot, (err, out) => {
      clearTimeout(timer);
      resolve({ err, out });
    });
  });
}

/** Raw deflate of `data` as a peer sends it: sync flush, without the trailing 00 00 ff ff. */
const peerDeflate = (data: Buffer): Buffer =>
  zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
const inflateAll = (data: Buffer): Buffer => zlib.inflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });

describe('ZlibStream: slices, turns in the queue, abort', () => {
  it('compresses a large message in slices, offering the slot between them', async () => {
    const input = randomBytes(3 * INPUT_SLICE + 100);
    const slot = new FakeSlot(() => false);
    const stream = new ZlibStream(false, { level: 1 });
    const { err, out } = await runSliced(stream, input, slot);
    assert.equal(err, null);
    assert.equal(slot.offers, 3);
    assert.deepEqual(inflateAll(out!), input);
    stream.close();
  });

  it('a compression that gave its slot away goes on when its turn comes back', async () => {
    const input = Buffer.from('abc '.repeat(INPUT_SLICE)); // 4 slices
    const slot = new FakeSlot((resume, s) => {
      s.pending.push(resume);
      return true;
    });
    const stream = new ZlibStream(false, { level: 1 });
    const result = runSliced(stream, input, slot);
    for (let turns = 0; turns < 3; turns++) {
      while (slot.pending.length === 0) await new Promise((r) => setImmediate(r));
      slot.pending.shift()!();
    }
    const { err, out } = await result;
    assert.equal(err, null);
    assert.deepEqual(inflateAll(out!), input);
    stream.close();
  });

  it('inflation offers its slot every quantum of output; paused, it resumes and the stream serves the next job', async () => {
    const big = Buffer.alloc(5 * OUTPUT_QUANTUM, 'x');
    const slot = new FakeSlot((resume, s) => {
      s.pending.push(resume);
      return true;
    });
    const stream = new ZlibStream(true, {});
    const result = runSliced(stream, peerDeflate(big), slot);
    // Let each pause settle (zlib stops once the paused stream's buffer is full), then resume.
    for (let turns = 0; turns < 5; turns++) {
      const deadline = Date.now() + 10_000;
      while (slot.pending.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      if (slot.pending.length === 0) break;
      await new Promise((r) => setTimeout(r, 20));
      slot.pending.shift()!();
    }
    const { err, out } = await result;
    assert.equal(err, null);
    assert.ok(slot.offers >= 4, `offers ${slot.offers}`);
    assert.deepEqual(out, big);
    // The next job on the same stream (the connection's next message) gets its output.
    const next = await runSliced(stream, peerDeflate(Buffer.from('next message')), keep);
    assert.equal(next.out?.toString(), 'next message');
    stream.close();
  });

  it('an inflation whose turn comes back before yieldSlot even returns still finishes', async () => {
    const big = Buffer.alloc(3 * OUTPUT_QUANTUM + 7, 'y');
    // The slot goes to another job that finishes at once, and the queue hands it straight back.
    const slot = new FakeSlot((resume) => {
      resume();
      return true;
    });
    const stream = new ZlibStream(true, {});
    const { err, out } = await runSliced(stream, peerDeflate(big), slot);
    assert.equal(err, null);
    assert.ok(slot.offers >= 3);
    assert.deepEqual(out, big);
    const next = await runSliced(stream, peerDeflate(Buffer.from('and the next')), slot);
    assert.equal(next.out?.toString(), 'and the next');
    stream.close();
  });

  it('stops at the limit with 1009, drops what it collected and closes the stream', async () => {
    const stream = new ZlibStream(true, {});
    const { err, out } = await runSliced(stream, peerDeflate(Buffer.alloc(8 * 1024 * 1024)), keep, 1024 * 1024);
    assert.equal(out, undefined);
    assert.equal(err?.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
    assert.equal(err?.closeCode, 1009);
    assert.match(err!.message, /over the limit \(1048576 bytes\)/);
    assert.equal(stream.busy, false);
    assert.equal(stream.closed, true);
  });

  it('a compression aborted while waiting for its turn: the callback comes with the turn, not before (it holds no slot)', async () => {
    const slot = new FakeSlot((resume, s) => {
      s.pending.push(resume);
      return true;
    });
    const stream = new ZlibStream(false, {});
    const called: Array<DeflateError | null> = [];
    stream.run(Buffer.alloc(4 * INPUT_SLICE, 7), 0, '', slot, (err) => called.push(err));
    const deadline = Date.now() + 10_000;
    while (slot.pending.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(slot.pending.length, 1, 'the job gave its slot up between slices');
    stream.abort(deflateError('WS_ERR_NOT_OPEN', 'gone', 1006));
    assert.equal(called.length, 0, 'not before its turn: it holds no slot to give back yet');
    slot.pending.shift()!();
    assert.deepEqual(
      called.map((err) => err?.code),
      ['WS_ERR_NOT_OPEN'],
    );
    assert.equal(stream.busy, false);
  });

  it('aborted while waiting for its turn: the stream closes now, the callback comes with the turn', async () => {
    const slot = new FakeSlot((resume, s) => {
      s.pending.push(resume);
      return true;
    });
    const stream = new ZlibStream(true, {});
    const called: Array<DeflateError | null> = [];
    stream.run(peerDeflate(Buffer.alloc(4 * OUTPUT_QUANTUM)), 0, '', slot, (err) => called.push(err));
    const deadline = Date.now() + 10_000;
    while (slot.pending.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(slot.pending.length, 1, 'the job gave its slot up');
    stream.abort(deflateError('WS_ERR_NOT_OPEN', 'gone', 1006));
    assert.equal(stream.closed, true);
    assert.equal(called.length, 0, 'not before its turn: it holds no slot to give back yet');
    slot.pending.shift()!();
    assert.deepEqual(
      called.map((err) => err?.code),
      ['WS_ERR_NOT_OPEN'],
    );
    assert.equal(stream.busy, false);
  });
});
