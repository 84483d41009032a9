/**
 * The chat room on topic `chat`: messages from everyone plus notices about the connection.
 * A line's nick is the `from` the server stamped, never something inside the message.
 *
 * A page opened later shows the recent chat too: a fresh subscribe gets only live messages,
 * so the page first asks `duet serve` where the chat's kept history starts (GET
 * /channel/recent?topic=chat) and subscribes from there; the server replays those messages,
 * then live ones follow, with no gap and none twice. Without that answer (another server, an
 * error) it subscribes fresh.
 */
import { effectScope, getCurrentScope, ref, watch } from 'vue';
import type { TopicHandler, TopicPosition } from 'duet/client';
import { clockTime, type Duet } from './duet-types';
import type { Identity } from './identity';
import { trackRecovery } from './recovery';

export interface ChatLine {
  key: string;
  kind: 'message' | 'notice';
  text: string;
  time: string;
  nick?: string;
  mine?: boolean;
  recovered?: boolean;
  tone?: 'info' | 'good' | 'warn';
  /** data-testid of a notice, for tests and styling. */
  testid?: string;
}

/**
 * What this demo publishes on `chat` (the server refuses `id`, `nick` or `from` in it: it says
 * who sent a message itself); other publishers may send anything, shown as best we can.
 */
export interface ChatPayload {
  text: string;
}

const MAX_LINES = 300;

function readText(data: unknown): string {
  if (typeof data === 'object' && data !== null && typeof (data as Record<string, unknown>).text === 'string')
    return (data as ChatPayload).text;
  return typeof data === 'string' ? data : JSON.stringify(data);
}

/** Where the chat's kept history starts, from the page's server; null when it cannot say. */
export async function recentStart(topic: string, url = '/channel/recent'): Promise<TopicPosition | null> {
  try {
    const res = await fetch(`${url}?topic=${encodeURIComponent(topic)}`, { cache: 'no-store' });
    if (!res.ok) return null;
    const body = (await res.json()) as { epoch?: unknown; since?: unknown };
    return typeof body.epoch === 'string' && typeof body.since === 'number'
      ? { epoch: body.epoch, seq: body.since }
      : null;
  } catch {
    return null;
  }
}

export function useChat(duet: Duet, identity: Identity) {
  const lines = ref<ChatLine[]>([]);
  let counter = 0;
  // The subscribe waits for the start position: in the caller's scope still, so that it ends
  // with the component.
  const scope = getCurrentScope() ?? effectScope();

  function push(line: Omit<ChatLine, 'key' | 'time'>, time = clockTime()): void {
    lines.value.push({ ...line, key: `l${++counter}`, time });
    if (lines.value.length > MAX_LINES) lines.value.splice(0, lines.value.length - MAX_LINES);
  }
  function notice(text: string, tone: ChatLine['tone'], testid: string): void {
    push({ kind: 'notice', text, tone, testid });
  }

  const recovery = trackRecovery(duet, 'chat', {
    history(count) {
      if (count === null) notice('Earlier messages could not be loaded; new ones follow.', 'info', 'notice-history');
      else if (count > 0)
        notice(`The last ${count === 1 ? 'message' : `${count} messages`} before you came:`, 'info', 'notice-history');
    },
    recovered(missed) {
      notice(
        missed === 0
          ? 'Reconnected: nothing was missed.'
          : `Reconnected: recovered ${missed} missed message${missed === 1 ? '' : 's'} (marked “recovered”).`,
        'good',
        'notice-recovered',
      );
    },
    lost(newEpoch) {
      notice(
        newEpoch
          ? 'Reconnected, but the chat history could not be recovered: the server restarted (new epoch). Messages sent while you were away are lost.'
          : 'Reconnected, but you were away too long: the server no longer has every message you missed. Some are lost.',
        'warn',
        'notice-reset',
      );
    },
  });

  const show: TopicHandler = (data, meta) => {
    const recovered = recovery.seen(meta.seq, meta.epoch);
    // No `from`: the server itself published it.
    const nick = meta.from === undefined ? 'server' : (meta.from.nick ?? 'anonymous');
    // A message from before the page came has no time we know (the arrival time would mislead).
    const time = recovery.fromHistory(meta.seq) ? 'earlier' : undefined;
    push({ kind: 'message', text: readText(data), nick, mine: identity.isMe(meta.from?.id), recovered }, time);
  };
  void recentStart('chat').then((start) =>
    scope.run(() => {
      if (start !== null) recovery.startFrom(start);
      duet.subscribe('chat', show, start ?? undefined);
    }),
  );

  watch(duet.status, (status, before) => {
    if (status === 'reconnecting' && before === 'open') notice('Connection lost; reconnecting…', 'info', 'notice-lost');
  });

  function send(text: string): boolean {
    const trimmed = text.trim();
    if (trimmed === '') return false;
    const payload: ChatPayload = { text: trimmed.slice(0, 2000) };
    // Queued by the client while the connection is down, sent once it is back.
    duet.publish('chat', payload);
    return true;
  }

  return { lines, send };
}
