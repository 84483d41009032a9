/**
 * SendQueue on its own, against a target that records every call: sends leave in call order
 * behind a Blob being read or a message being compressed, a close / end / shared message waits
 * its turn, bufferedAmount's share (`bytes`) counts what still waits, a Blob that cannot be read
 * drops the queue and hands every waiting callback to the target, once. Compression is a promise the test resolves by hand, so nothing depends on
 * timing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SendQueue, type QueuedCallback, type QueuedOptions, type SendQueueTarget } from '../../src/node/send-queue.js';
import { SharedMessage } from '../../src/node/shared-message.js';

type Call =
  | { send: string | null; options: QueuedOptions | undefined; compressed: boolean; hasCb: boolean }
  | { compress: string; fin: boolean }
  | { shared: string }
  | { close: number | undefined; reason: string }
  | 'end'
  | 'drained'
  | { blobFailed: string; callbacks: number };

const text = (data: Buffer | string | ArrayBuffer | ArrayBufferView | null): string | null => {
  if (data === null) return null;
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString();
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString();
};

/** A target that logs calls; compressQueued() answers when the test calls finishCompress(). */
class RecordingTarget implements SendQueueTarget {
  readonly calls: Call[] = [];
  /** Callbacks passed to sendQueued, in order. */
  readonly callbacks: Array<QueuedCallback | undefined> = [];
  private readonly compressions: Array<(out: Buffer | null) => void> = [];
  /** Called inside sendQueued (to send more from a callback, as an application may). */
  onSend: ((data: string | null) => void) | undefined;

  sendQueued(
    data: Buffer | string | ArrayBuffer | ArrayBufferView | null,
    options: QueuedOptions | undefined,
    cb: QueuedCallback | undefined,
    compressed?: boolean,
  ): void {
    this.calls.push({ send: text(data), options, compressed: compressed === true, hasCb: cb !== undefined });
    this.callbacks.push(cb);
    this.onSend?.(text(data));
  }
  compressQueued(data: Buffer, fin: boolean): Promise<Buffer | null> {
    this.calls.push({ compress: data.toString(), fin });
    return new Promise((resolve) => this.compressions.push(resolve));
  }
  writeShared(message: SharedMessage): void {
    this.calls.push({ shared: message.payload.toString() });
  }
  writesDrained(): void {
    this.calls.push('drained');
  }
  endQueued(): void {
    this.calls.push('end');
  }
  closeQueued(code: number | undefined, reason: Buffer): void {
    this.calls.push({ close: code, reason: reason.toString() });
  }
  /** Callbacks handed to blobFailed, in order. */
  readonly failedCallbacks: QueuedCallback[] = [];
  blobFailed(err: unknown, callbacks: QueuedCallback[]): void {
    this.calls.push({ blobFailed: (err as Error).message, callbacks: callbacks.length });
    this.failedCallbacks.push(...callbacks);
  }

  /** Compressions asked for and not yet answered. */
  get compressing(): number {
    return this.compressions.length;
  }
  /** Answer the oldest compression: `deflated(text)` or null (the connection went away). */
  finishCompress(out: Buffer | null): void {
    const resolve = this.compressions.shift();
    assert.ok(resolve, 'no compression is waiting');
    resolve(out);
  }

  /** Just the payloads handed to sendQueued, in order. */
  get sent(): Array<string | null> {
    return this.calls.flatMap((c) => (typeof c === 'object' && 'send' in c ? [c.send] : []));
  }
}

/** Let promise callbacks and a Blob read (which completes in a later turn) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A Blob whose read the test finishes by hand. */
function manualBlob(size: number): { blob: Blob; finish(data: string): void; fail(err: Error): void } {
  let resolve!: (buf: ArrayBuffer) => void;
  let reject!: (err: Error) => void;
  const read = new Promise<ArrayBuffer>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const blob = { size, arrayBuffer: () => read } as unknown as Blob;
  return {
    blob,
    finish: (data) => resolve(new Uint8Array(Buffer.from(data)).buffer),
    fail: (err) => reject(err),
  };
}

const deflated = (s: string): Buffer => Buffer.from(`z(${s})`);

describe('SendQueue: nothing ahead', () => {
  it('a plain send goes straight through, synchronously, then the queue reports drained and is idle', () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    assert.equal(queue.active, false);
    const cb: QueuedCallback = () => {};
    queue.send('hello', 5, { binary: false }, cb);
    assert.deepEqual(target.calls, [
      { send: 'hello', options: { binary: false }, compressed: false, hasCb: true },
      'drained',
    ]);
    assert.equal(target.callbacks[0], cb, "the caller's callback is handed on as is");
    assert.equal(queue.bytes, 0);
    assert.equal(queue.active, false);
  });

  it('close, end and a shared message are handed on in the same way', () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    queue.close(4000, Buffer.from('bye'));
    queue.end();
    queue.sendShared(new SharedMessage(Buffer.from('to all'), false));
    queue.close(undefined, Buffer.alloc(0));
    assert.deepEqual(target.calls, [
      { close: 4000, reason: 'bye' },
      'drained',
      'end',
      'drained',
      { shared: 'to all' },
      'drained',
      { close: undefined, reason: '' },
      'drained',
    ]);
  });
});

describe('SendQueue: behind a Blob', () => {
  it('sends, a shared message, end and close wait for the Blob and then leave in call order', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    const b = manualBlob(4);
    queue.sendBlob(b.blob, undefined, undefined);
    queue.send('second', 6, undefined, undefined);
    queue.sendShared(new SharedMessage(Buffer.from('shared'), true));
    queue.send(Buffer.from('third'), 5, { binary: true }, undefined);
    queue.end();
    queue.close(1000, Buffer.from('done'));
    await settle();
    assert.deepEqual(target.calls, [], 'nothing leaves while the Blob is read');
    assert.equal(queue.active, true);
    assert.equal(queue.bytes, 4 + 6 + 6 + 5, 'every payload waiting counts (bufferedAmount)');
    b.finish('blob');
    await settle();
    assert.deepEqual(target.calls, [
      { send: 'blob', options: { binary: true }, compressed: false, hasCb: false },
      { send: 'second', options: undefined, compressed: false, hasCb: false },
      { shared: 'shared' },
      { send: 'third', options: { binary: true }, compressed: false, hasCb: false },
      'end',
      { close: 1000, reason: 'done' },
      'drained',
    ]);
    assert.equal(queue.bytes, 0);
    assert.equal(queue.active, false);
  });

  it('a real Blob is read into a Buffer and sent binary unless the caller said binary: false', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    queue.sendBlob(new Blob(['bytes']), undefined, undefined);
    queue.sendBlob(new Blob(['as text']), { binary: false, fin: true }, undefined);
    await settle();
    assert.deepEqual(target.sent, ['bytes', 'as text']);
    const options = target.calls.flatMap((c) => (typeof c === 'object' && 'send' in c ? [c.options] : []));
    assert.deepEqual(options, [{ binary: true }, { binary: false, fin: true }]);
  });

  it('a send made while the queue is being emptied (from a callback) goes after everything already queued', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    target.onSend = (data) => {
      if (data === 'blob') queue.send('from callback', 13, undefined, undefined);
    };
    const b = manualBlob(4);
    queue.sendBlob(b.blob, undefined, undefined);
    queue.send('queued before', 13, undefined, undefined);
    b.finish('blob');
    await settle();
    assert.deepEqual(target.sent, ['blob', 'queued before', 'from callback']);
    assert.equal(target.calls.filter((c) => c === 'drained').length, 1, 'one drained when the queue empties');
  });

  it('a Blob that cannot be read: blobFailed once with the callbacks of the Blob and of every send behind it, in order; nothing behind it written; bytes back to 0; the queue works again afterwards', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    const b = manualBlob(3);
    const blobCb: QueuedCallback = () => {};
    const behindCb: QueuedCallback = () => {};
    const compressedCb: QueuedCallback = () => {};
    const secondBlobCb: QueuedCallback = () => {};
    queue.sendBlob(b.blob, undefined, blobCb);
    queue.send('behind', 6, undefined, behindCb);
    queue.send('no callback', 11, undefined, undefined);
    queue.sendShared(new SharedMessage(Buffer.from('shared'), false));
    queue.sendCompressed(Buffer.from('compressed'), undefined, compressedCb);
    queue.sendBlob(new Blob(['second']), undefined, secondBlobCb);
    queue.end();
    queue.close(1000, Buffer.alloc(0));
    b.fail(new Error('NotReadableError'));
    await settle();
    assert.deepEqual(
      target.calls.filter((c) => typeof c === 'object' && 'blobFailed' in c),
      [{ blobFailed: 'NotReadableError', callbacks: 4 }],
    );
    assert.deepEqual(
      target.failedCallbacks,
      [blobCb, behindCb, compressedCb, secondBlobCb],
      'every callback, each once, in call order',
    );
    assert.deepEqual(target.callbacks, [], 'none of them was handed on with a message as well');
    const written = target.calls.filter(
      (c) =>
        c === 'end' || (typeof c === 'object' && ('close' in c || 'shared' in c || 'compress' in c || 'send' in c)),
    );
    assert.deepEqual(written, [], 'nothing behind the Blob is written or compressed, not even the close');
    assert.equal(queue.bytes, 0);
    assert.equal(queue.active, false);
    queue.send('later', 5, undefined, undefined);
    assert.deepEqual(target.sent, ['later']);
  });

  it('a Blob that cannot be read with no callbacks anywhere: blobFailed gets an empty list', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    const b = manualBlob(1);
    queue.sendBlob(b.blob, undefined, undefined);
    queue.send('x', 1, undefined, undefined);
    b.fail(new Error('gone'));
    await settle();
    assert.deepEqual(target.calls, [{ blobFailed: 'gone', callbacks: 0 }]);
  });
});

describe('SendQueue: compression', () => {
  it('each message is compressed in turn and sent compressed; later sends wait for it; bytes count it until it is written', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    queue.sendCompressed(Buffer.from('one'), { binary: false }, undefined);
    queue.send('plain', 5, undefined, undefined);
    queue.sendCompressed(Buffer.from('fragment'), { binary: true, fin: false }, undefined);
    queue.close(1000, Buffer.alloc(0));
    await settle();
    assert.deepEqual(target.calls, [{ compress: 'one', fin: true }], 'one compression at a time; fin defaults to true');
    assert.equal(queue.bytes, 3 + 5 + 8, 'the message being compressed still counts');
    target.finishCompress(deflated('one'));
    await settle();
    assert.deepEqual(target.calls.slice(1), [
      { send: 'z(one)', options: { binary: false }, compressed: true, hasCb: false },
      'drained',
      { send: 'plain', options: undefined, compressed: false, hasCb: false },
      { compress: 'fragment', fin: false },
    ]);
    assert.equal(queue.bytes, 8);
    assert.equal(queue.active, true);
    target.finishCompress(deflated('fragment'));
    await settle();
    assert.deepEqual(target.calls.slice(5), [
      { send: 'z(fragment)', options: { binary: true, fin: false }, compressed: true, hasCb: false },
      'drained',
      { close: 1000, reason: '' },
      'drained',
    ]);
    assert.equal(queue.bytes, 0);
    assert.equal(queue.active, false);
  });

  it('a compression that finds the connection gone hands on null with the callback (the target fails it), and the queue goes on', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    const cb: QueuedCallback = () => {};
    queue.sendCompressed(Buffer.from('late'), undefined, cb);
    queue.send('next', 4, undefined, undefined);
    target.finishCompress(null);
    await settle();
    assert.deepEqual(target.sent, [null, 'next']);
    assert.equal(target.callbacks[0], cb);
    assert.equal(target.compressing, 0);
  });

  it('a Blob and compressed messages interleaved keep call order', async () => {
    const target = new RecordingTarget();
    const queue = new SendQueue(target);
    queue.sendCompressed(Buffer.from('a'), undefined, undefined);
    const b = manualBlob(1);
    queue.sendBlob(b.blob, undefined, undefined);
    queue.sendCompressed(Buffer.from('c'), undefined, undefined);
    queue.send('d', 1, undefined, undefined);
    b.finish('b'); // read before its turn: still sent after 'a'
    await settle();
    assert.deepEqual(target.sent, []);
    target.finishCompress(deflated('a'));
    await settle();
    target.finishCompress(deflated('c'));
    await settle();
    assert.deepEqual(target.sent, ['z(a)', 'b', 'z(c)', 'd']);
  });
});
