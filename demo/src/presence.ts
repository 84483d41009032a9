/**
 * Who is online, on the client-publishable `presence` topic (see PRESENCE in
 * src/cli/endpoints.ts): announce `join` on every (re)connect, `here` every few seconds and
 * in answer to someone's `join`, `leave` when the page goes away; forget anyone not heard
 * from for a while. The server keeps no state, so nothing goes stale after a restart.
 */
import { computed, onScopeDispose, ref, watch, type Ref } from 'vue';
import type { Duet } from './duet-types';

// The same numbers as PRESENCE_INTERVAL_MS / PRESENCE_EXPIRY_MS in src/cli/endpoints.ts.
const INTERVAL_MS = 5000;
const EXPIRY_MS = 16_000;

type State = 'join' | 'here' | 'leave';

export interface OnlineUser {
  id: string;
  nick: string;
  me: boolean;
}

function readAnnouncement(data: unknown): { id: string; nick: string; state: State } | null {
  if (typeof data !== 'object' || data === null) return null;
  const o = data as Record<string, unknown>;
  if (typeof o.id !== 'string' || typeof o.nick !== 'string') return null;
  if (o.state !== 'join' && o.state !== 'here' && o.state !== 'leave') return null;
  return { id: o.id, nick: o.nick.slice(0, 24), state: o.state };
}

export function usePresence(duet: Duet, me: { id: string; nick: Ref<string> }) {
  const others = ref(new Map<string, { nick: string; seen: number }>());
  let replyTimer: ReturnType<typeof setTimeout> | undefined;
  let nickTimer: ReturnType<typeof setTimeout> | undefined;

  function announce(state: State): void {
    // Not queued while offline: stale announcements are worse than none.
    if (duet.status.value === 'open') duet.publish('presence', { id: me.id, nick: me.nick.value, state });
  }
  function prune(): void {
    const now = Date.now();
    for (const [id, entry] of others.value) if (now - entry.seen > EXPIRY_MS) others.value.delete(id);
  }

  duet.subscribe('presence', (data) => {
    const a = readAnnouncement(data);
    if (a === null || a.id === me.id) return;
    if (a.state === 'leave') {
      others.value.delete(a.id);
      return;
    }
    others.value.set(a.id, { nick: a.nick, seen: Date.now() });
    if (a.state === 'join' && replyTimer === undefined) {
      // One answer for a burst of joins (say, everyone back after a server restart), spread out.
      replyTimer = setTimeout(() => {
        replyTimer = undefined;
        announce('here');
      }, 100 + Math.random() * 500);
    }
  });

  const offOpen = duet.client?.on('open', () => announce('join'));
  const tick = setInterval(() => {
    prune();
    announce('here');
  }, INTERVAL_MS);
  watch(me.nick, () => {
    clearTimeout(nickTimer);
    nickTimer = setTimeout(() => announce('here'), 400);
  });
  const onPageHide = (): void => announce('leave');
  window.addEventListener('pagehide', onPageHide);

  onScopeDispose(() => {
    announce('leave');
    offOpen?.();
    clearInterval(tick);
    clearTimeout(replyTimer);
    clearTimeout(nickTimer);
    window.removeEventListener('pagehide', onPageHide);
  });

  const online = computed<OnlineUser[]>(() => [
    { id: me.id, nick: me.nick.value, me: true },
    ...[...others.value].map(([id, e]) => ({ id, nick: e.nick, me: false })).sort((a, b) => a.nick.localeCompare(b.nick)),
  ]);
  return { online };
}
