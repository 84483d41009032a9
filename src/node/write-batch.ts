/**
 * Write batching, held once per event loop (as uWebSockets keeps its cork buffer in the loop,
 * not in each socket). The first write a connection makes in an event-loop turn gives it a
 * slot in this turn's batch; small frames collect there, large ones go to the socket, which
 * the slot corks; one setImmediate flushes every slot at the end of the turn. All frames a
 * connection sends in one turn leave in one write: a turn with many sends (fan-out, pipelined
 * echoes) costs one system call per socket instead of one per frame, and a connection with
 * nothing to write holds no batch state at all (one field, `batchSlot`, empty between turns).
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
 * This turn's slots. Two arrays, swapped at each flush (a fan-out turn holds a slot per
 * subscriber: growing a new array to hundreds of entries every turn showed in profiles); a
 * slot taken while the batch is being flushed (a write callback that sends) lands in the other.
 */
let pending: BatchSlot[] = [];
let flushing: BatchSlot[] = [];
/** Slots of earlier turns, reused. */
const spare: BatchSlot[] = [];
let scheduled = false;

function flush(): void {
  const batch = pending;
  pending = flushing;
  flushing = batch;
  scheduled = false;
  try {
    flushSlots(batch);
  } finally {
    batch.length = 0;
  }
}

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

/** `owner`'s slot in this turn's batch (made on its first write of the turn). */
export function batchSlotOf(owner: BatchOwner): BatchSlot {
  let slot = owner.batchSlot;
  if (slot !== undefined) return slot;
  slot = spare.pop();
  if (slot === undefined) {
    slot = { owner, frames: [], bytes: 0, payloadBytes: 0, callbacks: undefined, socketCorked: false, turnBytes: 0 };
  } else {
    (slot as { owner: BatchOwner }).owner = owner;
  }
  owner.batchSlot = slot;
  pending.push(slot);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
  return slot;
}
