/**
 * Write batching, held once per event loop (as uWebSockets keeps its cork buffer in the loop,
 * not in each socket). The first write a connection makes in an event-loop turn gives it a
 * slot in this turn's batch; small frames collect there, large ones go to the socket, which
 * the slot corks; one setImmediate flushes every slot at the end of the turn. All frames a
 * connection sends in one turn leave in one write: a turn with many sends (fan-out, pipelined
 * echoes) costs one system call per socket instead of one per frame, and a connection with
 * nothing to write holds no batch state at all (one field, `batchSlot`, empty between turns).
 *
 * A server with `writeDelay` (ms) trades latency for system calls: its connections' slots wait
 * in a delayed batch, flushed by one timer per delay value, so a steady fan-out (a message every
 * few ms) leaves in one write per socket per `writeDelay` instead of one per message.
 */
import type { Callback } from './connection-types.js';

/** A connection's share of this turn's batch. */
export interface BatchSlot {
  readonly owner: BatchOwner;
  /** Small frames of this turn, written as one buffer when the turn ends. */
  frames: Buffer[];
  /** Their size, headers included. */
  bytes: number;
  /** Their payload size (what bufferedAmount counts). */
  payloadBytes: number;
  /** Send callbacks of those frames, or undefined. */
  callbacks: Callback[] | undefined;
  /** The socket is corked (a large frame was written this turn). */
  socketCorked: boolean;
  /**
   * Bytes handed to the socket this turn. The slow-consumer policy leaves them out: what is
   * still unwritten from earlier turns was refused by the kernel; this turn's was not offered.
   */
  turnBytes: number;
}

/** What the batch needs from a connection. */
export interface BatchOwner {
  /** This turn's slot, or undefined when the connection wrote nothing this turn. */
  batchSlot: BatchSlot | undefined;
  /** The turn ended: write the slot's frames, uncork, and let the slot go. */
  flushTurn(slot: BatchSlot): void;
}

/**
 * Slots waiting for one flush. Two arrays, swapped at each flush (a fan-out turn holds a slot
 * per subscriber: growing a new array to hundreds of entries every turn showed in profiles); a
 * slot taken while the batch is being flushed (a write callback that sends) lands in the other.
 */
class Batch {
  private pending: BatchSlot[] = [];
  private flushing: BatchSlot[] = [];
  private scheduled = false;
  private readonly flushNow = (): void => this.flush();

  /** delay 0: at the end of the event-loop turn (setImmediate); else after `delay` ms. */
  constructor(private readonly delay: number) {}

  add(slot: BatchSlot): void {
    this.pending.push(slot);
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.delay === 0) setImmediate(this.flushNow);
    else setTimeout(this.flushNow, this.delay);
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = this.flushing;
    this.flushing = batch;
    this.scheduled = false;
    try {
      flushSlots(batch);
    } finally {
      batch.length = 0;
    }
  }
}

/** The end-of-turn batch, and the delayed ones by delay (few: one per distinct `writeDelay`). */
const turnBatch = new Batch(0);
const delayedBatches = new Map<number, Batch>();
/** Slots of earlier turns, reused. */
const spare: BatchSlot[] = [];

function flushSlots(batch: BatchSlot[]): void {
  for (let i = 0; i < batch.length; i++) {
    const slot = batch[i];
    slot.owner.flushTurn(slot);
    slot.owner.batchSlot = undefined;
    const reused = slot as { owner: BatchOwner | undefined };
    reused.owner = undefined;
    // flushTurn has normally emptied the frames already: setting an array's length is a
    // runtime call, so only when there is something left.
    if (slot.frames.length !== 0) slot.frames.length = 0;
    slot.bytes = 0;
    slot.payloadBytes = 0;
    slot.callbacks = undefined;
    slot.socketCorked = false;
    slot.turnBytes = 0;
    spare.push(slot);
  }
}

/**
 * `owner`'s slot in this turn's batch (made on its first write of the turn); with `delay` > 0,
 * in the batch flushed `delay` ms after its first slot was taken.
 */
export function batchSlotOf(owner: BatchOwner, delay = 0): BatchSlot {
  let slot = owner.batchSlot;
  if (slot !== undefined) return slot;
  slot = spare.pop();
  if (slot === undefined) {
    slot = { owner, frames: [], bytes: 0, payloadBytes: 0, callbacks: undefined, socketCorked: false, turnBytes: 0 };
  } else {
    (slot as { owner: BatchOwner }).owner = owner;
  }
  owner.batchSlot = slot;
  if (delay === 0) turnBatch.add(slot);
  else {
    let batch = delayedBatches.get(delay);
    if (batch === undefined) delayedBatches.set(delay, (batch = new Batch(delay)));
    batch.add(slot);
  }
  return slot;
}
