/**
 * Who is online, on the client-publishable `presence` topic (see PRESENCE in
 * src/cli/endpoints.ts): announce `join` on every (re)connect, `here` every few seconds, after
 * a nick change and in answer to someone's `join`, `leave` when the page goes away; forget
 * anyone not heard from for a while. An announcement holds only the state: who it is from is
 * the `from` the server stamps (so nobody can join or leave for someone else), and the server
 * says `leave` for a connection that closes. The server keeps no presence state; the page
 * forgets everyone when the topic starts over (a subscribe answered `recovered: false`: the
 * first one, or a server restart, after which the old connections' ids mean nothing) and
 * learns who is there again from the answers to its `join`.
 */
import { computed, onScopeDispose, ref, type Ref } from 'vue';
import { isSubscribed, type Duet } from './duet-types';
import type { Identity } from './identity';

// The same numbers as PRESENCE_INTERVAL_MS / PRESENCE_EXPIRY_MS in src/cli/endpoints.ts.
const INTERVAL_MS = 5000;
const EXPIRY_MS = 16_000;

type State = 'join' | 'here' | 'leave';

export interface OnlineUser {
  id: string;
  nick: string;
  me: boolean;
}

function readState(data: unknown): State | null {
  if (typeof data !== 'object' || data === null) return null;
  const state = (data as Record<string, unknown>).state;
  return state === 'join' || state === 'here' || state === 'leave' ? state : null;
}

export function usePresence(duet: Duet, me: { nick: Ref<string> }, identity: Identity) {
  const others = ref(new Map<string, { nick: string; seen: number }>());
  let replyTimer: ReturnType<typeof setTimeout> | undefined;

  function announce(state: State): void {
    // Not queued while offline: stale announcements are worse than none.
    if (duet.status.value === 'open') void duet.publish('presence', { state });
  }
  function prune(): void {
    const now = Date.now();
    for (const [id, entry] of others.value) if (now - entry.seen > EXPIRY_MS) others.value.delete(id);
  }

  duet.subscribe('presence', (data, { from }) => {
    const state = readState(data);
    if (state === null || from === undefined || identity.isMe(from.id)) return;
    if (state === 'leave') {
      others.value.delete(from.id);
      return;
    }
    others.value.set(from.id, { nick: (from.nick ?? 'anonymous').slice(0, 24), seen: Date.now() });
    if (state === 'join' && replyTimer === undefined) {
      // One answer for a burst of joins (say, everyone back after a server restart), spread out.
      replyTimer = setTimeout(
        () => {
          replyTimer = undefined;
          announce('here');
        },
        100 + Math.random() * 500,
      );
    }
  });

  const offOpen = duet.client?.on('open', () => announce('join'));
  const offSubscribed = duet.client?.on('message', (m) => {
    if (isSubscribed(m) && m.topic === 'presence' && !m.recovered) others.value.clear();
  });
  const tick = setInterval(() => {
    prune();
    announce('here');
  }, INTERVAL_MS);
  // Everyone learns a new nick from the next announcement, which carries it in `from`.
  identity.onRenamed(() => announce('here'));
  const onPageHide = (): void => announce('leave');
  window.addEventListener('pagehide', onPageHide);

  onScopeDispose(() => {
    announce('leave');
    offOpen?.();
    offSubscribed?.();
    clearInterval(tick);
    clearTimeout(replyTimer);
    window.removeEventListener('pagehide', onPageHide);
  });

  const online = computed<OnlineUser[]>(() => [
    { id: 'me', nick: me.nick.value, me: true },
    ...[...others.value]
      .map(([id, e]) => ({ id, nick: e.nick, me: false }))
      .sort((a, b) => a.nick.localeCompare(b.nick)),
  ]);
  return { online };
}
