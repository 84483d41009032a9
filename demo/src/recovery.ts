/**
 * What the page shows about recovery. After a reconnect the client resubscribes with the
 * last (epoch, seq) it saw; the server answers `subscribed` with `recovered: true` and replays
 * what was missed, or the client emits `reset` because that was impossible (a new epoch after
 * a server restart, or history too short). This turns both into notices per topic, and tells
 * which messages came from a replay. A topic first subscribed from a start position (its
 * recent history, see chat.ts) gets the messages after it: reported as history, not as a
 * recovery, and not marked as recovered.
 */
import { onScopeDispose } from 'vue';
import type { TopicPosition } from 'duet/client';
import { isSubscribed, type Duet } from './duet-types';

export interface RecoveryCallbacks {
  /** After a reconnect, the server replayed `missed` messages (0: nothing was missed). */
  recovered(missed: number): void;
  /** History could not be recovered; `newEpoch`: the server restarted (or forgot the topic). */
  lost(newEpoch: boolean): void;
  /**
   * The first subscribe, from the position given to `startFrom`: the server sent the `count`
   * messages published before this page subscribed, or could not (null: a new epoch
   * meanwhile, or more than it replays at once).
   */
  history?(count: number | null): void;
}

export interface RecoveryTracker {
  /** Call for every message the app shows: remembers the position, says whether it was replayed. */
  seen(seq: number, epoch: string): boolean;
  /** The topic's first subscribe asks for the messages after `position` (its recent history). */
  startFrom(position: TopicPosition): void;
  /** Whether message `seq` came with that history (sent before this page subscribed). */
  fromHistory(seq: number): boolean;
}

export function trackRecovery(duet: Duet, topic: string, callbacks: RecoveryCallbacks): RecoveryTracker {
  let start: TopicPosition | undefined;
  // Where this page is in the topic: the last message shown, or the position a `subscribed`
  // gave (so that a recovery is reported even when the topic was still empty before the drop).
  let last: { epoch: string; seq: number } | null = null;
  let replayUntil = 0;
  let historyUntil = 0;
  let reconnected = false;
  // A `subscribed` for the topic came before: a reset or recovery now is not the first subscribe's.
  let answered = false;
  const client = duet.client;
  const offs: Array<() => void> = [];
  if (client !== null) {
    let opened = false;
    offs.push(
      client.on('open', () => {
        reconnected = opened;
        opened = true;
      }),
      client.on('message', (m) => {
        if (!isSubscribed(m) || m.topic !== topic) return;
        const first = !answered;
        answered = true;
        if (m.recovered && first) {
          historyUntil = m.seq;
          callbacks.history?.(Math.max(0, m.seq - (start?.seq ?? m.seq)));
        } else if (m.recovered) {
          replayUntil = m.seq;
          if (reconnected && last !== null) callbacks.recovered(Math.max(0, m.seq - last.seq));
        }
        reconnected = false;
        // The replay that follows (if any) brings the page up to here; live messages go on from it.
        last = { epoch: m.epoch, seq: m.seq };
      }),
      // Emitted before the `message` event of the `subscribed` that caused it.
      client.on('reset', (r) => {
        if (r.topic !== topic) return;
        const previous = r.previous;
        replayUntil = 0;
        historyUntil = 0;
        last = null;
        reconnected = false;
        // previous === null is a first subscribe without a start: nothing to recover, nothing
        // lost. A first subscribe from a start position that could not be served has a previous.
        if (!answered) {
          if (previous !== null) callbacks.history?.(null);
        } else if (previous !== null) callbacks.lost(previous.epoch !== r.epoch);
      }),
    );
  }
  onScopeDispose(() => offs.forEach((off) => off()));
  return {
    seen(seq, epoch) {
      last = { epoch, seq };
      return seq <= replayUntil;
    },
    startFrom(position) {
      start = position;
    },
    fromHistory(seq) {
      return seq <= historyUntil;
    },
  };
}
