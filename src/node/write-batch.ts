/**
 * Write batching: a connection corks its socket on its first write of an event-loop turn and
 * every corked socket is uncorked by a single setImmediate. All frames a connection sends in
 * one turn leave in one writev; a turn with many sends (fan-out, pipelined echoes) costs one
 * system call per socket instead of one per frame.
 */

/** What the batch needs from a connection. */
export interface Corkable {
  uncork(): void;
}

let pending: Corkable[] = [];
let scheduled = false;

function flush(): void {
  const batch = pending;
  pending = [];
  scheduled = false;
  for (let i = 0; i < batch.length; i++) batch[i].uncork();
}

/** Uncork `conn` at the end of this turn (call once per turn, when it first corks). */
export function scheduleUncork(conn: Corkable): void {
  pending.push(conn);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
