/**
 * What the page shows about recovery. After a reconnect the client resubscribes with the
 * last (epoch, seq) it saw; the server answers `subscribed` with `recovered: true` and replays
 * what was missed, or the client emits `reset` because that was impossible (a new epoch after
 * a server restart, or history too short). This turns both into notices per topic, and tells
 * which messages came from a replay.
 */
import { onScopeDispose } from 'vue';
import { isSubscribed, type Duet } from './duet-types';

export interface RecoveryCallbacks {
  /** After a reconnect, the server replayed `missed` messages (0: nothing was missed). */
  recovered(missed: number): void;
  /** History could not be recovered; `newEpoch`: the server restarted (or forgot the topic). */
  lost(newEpoch: boolean): void;
}

export interface RecoveryTracker {
  /** Call for every message the app shows: remembers the position, says whether it was replayed. */
  seen(seq: number, epoch: string): boolean;
}

export function trackRecovery(duet: Duet, topic: string, callbacks: RecoveryCallbacks): RecoveryTracker {
  let last: { epoch: string; seq: number } | null = null;
  let replayUntil = 0;
  let reconnected = false;
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
        if (!isSubscribed(m) || m.topic !== topic || !m.recovered) return;
        replayUntil = m.seq;
        if (reconnected && last !== null) callbacks.recovered(Math.max(0, m.seq - last.seq));
        reconnected = false;
      }),
      client.on('reset', (r) => {
        if (r.topic !== topic) return;
        const previous = r.previous;
        replayUntil = 0;
        last = null;
        reconnected = false;
        // previous === null is the first subscribe: nothing to recover, nothing lost.
        if (previous !== null) callbacks.lost(previous.epoch !== r.epoch);
      }),
    );
  }
  onScopeDispose(() => offs.forEach((off) => off()));
  return {
    seen(seq, epoch) {
      last = { epoch, seq };
      return seq <= replayUntil;
    },
  };
}
