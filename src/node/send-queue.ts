/**
 * Sends in call order while a Blob is read. A Blob's bytes arrive asynchronously, so once one
 * is sent, later sends (and a close) wait in this queue until everything before them has gone.
 * Connections that never send Blobs never create one.
 */

/** The connection's side of the queue. */
export interface SendQueueTarget {
  /** Write a message now, bypassing the queue. */
  sendQueued(data: Buffer | string | ArrayBuffer | ArrayBufferView, options: QueuedOptions | undefined, cb: QueuedCallback | undefined): void;
  /** Start the closing handshake now. */
  closeQueued(code: number | undefined, reason: Buffer): void;
  /** A Blob could not be read. */
  blobFailed(err: unknown): void;
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

  send(data: Buffer | string | ArrayBuffer | ArrayBufferView, size: number, options: QueuedOptions | undefined, cb: QueuedCallback | undefined): void {
    this.push({ data, options, cb, size });
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
          this.items = [];
          this.bytes = 0;
          this.running = false;
          this.target.blobFailed(err);
          return;
        }
      }
      this.items.shift();
      this.bytes -= item.size;
      if (item.close) this.target.closeQueued(item.close.code, item.close.reason);
      else this.target.sendQueued(data!, item.options, item.cb);
    }
    this.running = false;
  }
}
