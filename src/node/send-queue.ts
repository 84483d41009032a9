/**
 * Sends in call order while a Blob is read or a message is compressed. Both finish
 * asynchronously, so once one is sent, later sends (and a close) wait in this queue until
 * everything before them has gone. Connections that never send Blobs or compressed messages
 * never create one. Every callback handed to the queue is passed on exactly once: to the
 * target with its message, or to blobFailed when a Blob cannot be read.
 */

import type { SharedMessage } from './shared-message.js';

/** The connection's side of the queue. */
export interface SendQueueTarget {
  /**
   * Write a message now, bypassing the queue. `compressed`: `data` is deflated (RSV1).
   * `data` null: it could not be compressed because the connection is closing (cb gets an error).
   */
  sendQueued(
    data: Buffer | string | ArrayBuffer | ArrayBufferView | null,
    options: QueuedOptions | undefined,
    cb: QueuedCallback | undefined,
    compressed?: boolean,
  ): void;
  /** Compress a message or fragment (permessage-deflate); null when the connection went away. */
  compressQueued(data: Buffer, fin: boolean): Promise<Buffer | null>;
  /** Write a message shared by many connections (publish, broadcast). */
  writeShared(message: SharedMessage): void;
  /** An item left the queue: reading paused for pending writes may resume. */
  writesDrained(): void;
  /** End TCP (the peer ended its side) once everything queued before was written. */
  endQueued(): void;
  /** Start the closing handshake now. */
  closeQueued(code: number | undefined, reason: Buffer): void;
  /**
   * A Blob could not be read: nothing queued is sent any more. `callbacks` are those of the
   * Blob's send and of every send queued behind it, in call order; each must get an error.
   */
  blobFailed(err: unknown, callbacks: QueuedCallback[]): void;
}

export interface QueuedOptions {
  binary?: boolean;
  fin?: boolean;
}
export type QueuedCallback = (err?: Error | null) => void;

interface Item {
  blob?: Blob;
  data?: Buffer | string | ArrayBuffer | ArrayBufferView;
  options?: QueuedOptions;
  cb?: QueuedCallback;
  close?: { code: number | undefined; reason: Buffer };
  compress?: boolean;
  shared?: SharedMessage;
  end?: boolean;
  size: number;
}

export class SendQueue {
  /** Bytes waiting in the queue (counted in bufferedAmount). */
  bytes = 0;
  private items: Item[] = [];
  private running = false;
  private readonly target: SendQueueTarget;

  constructor(target: SendQueueTarget) {
    this.target = target;
  }

  /** True while anything waits or a Blob is being read. */
  get active(): boolean {
    return this.running || this.items.length > 0;
  }

  sendBlob(blob: Blob, options: QueuedOptions | undefined, cb: QueuedCallback | undefined): void {
    this.push({ blob, options: { ...options, binary: options?.binary ?? true }, cb, size: blob.size });
  }

  send(
    data: Buffer | string | ArrayBuffer | ArrayBufferView,
    size: number,
    options: QueuedOptions | undefined,
    cb: QueuedCallback | undefined,
  ): void {
    this.push({ data, options, cb, size });
  }

  /** Queue a message (or fragment) to be compressed, then sent with RSV1 where it starts a message. */
  sendCompressed(data: Buffer, options: QueuedOptions | undefined, cb: QueuedCallback | undefined): void {
    this.push({ data, options, cb, size: data.length, compress: true });
  }

  /** Queue a message shared by many connections; it keeps its own framing. */
  sendShared(message: SharedMessage): void {
    this.push({ shared: message, size: message.payload.length });
  }

  /** End TCP after everything queued so far. */
  end(): void {
    this.push({ end: true, size: 0 });
  }

  close(code: number | undefined, reason: Buffer): void {
    this.push({ close: { code, reason }, size: 0 });
  }

  private push(item: Item): void {
    this.items.push(item);
    this.bytes += item.size;
    if (!this.running) void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.items.length > 0) {
      const item = this.items[0];
      let data = item.data;
      if (item.blob !== undefined) {
        try {
          data = Buffer.from(await item.blob.arrayBuffer());
        } catch (err) {
          const dropped = this.items;
          this.items = [];
          this.bytes = 0;
          this.running = false;
          const callbacks: QueuedCallback[] = [];
          for (const { cb } of dropped) if (cb !== undefined) callbacks.push(cb);
          this.target.blobFailed(err, callbacks);
          return;
        }
      }
      if (item.compress) {
        // Counted in `bytes` (bufferedAmount) until the compressed frame is written.
        const compressed = await this.target.compressQueued(data as Buffer, item.options?.fin ?? true);
        this.items.shift();
        this.bytes -= item.size;
        this.target.sendQueued(compressed, item.options, item.cb, true);
        this.target.writesDrained();
        continue;
      }
      this.items.shift();
      this.bytes -= item.size;
      if (item.close) this.target.closeQueued(item.close.code, item.close.reason);
      else if (item.shared) this.target.writeShared(item.shared);
      else if (item.end) this.target.endQueued();
      else this.target.sendQueued(data!, item.options, item.cb);
    }
    this.running = false;
    this.target.writesDrained();
  }
}
