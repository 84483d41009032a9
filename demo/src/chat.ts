/**
 * The chat room on topic `chat`: messages from everyone plus notices about the connection.
 * A line's nick is the `from` the server stamped, never something inside the message.
 */
import { ref, watch } from 'vue';
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

export function useChat(duet: Duet, identity: Identity) {
  const lines = ref<ChatLine[]>([]);
  let counter = 0;

  function push(line: Omit<ChatLine, 'key' | 'time'>): void {
    lines.value.push({ ...line, key: `l${++counter}`, time: clockTime() });
    if (lines.value.length > MAX_LINES) lines.value.splice(0, lines.value.length - MAX_LINES);
  }
  function notice(text: string, tone: ChatLine['tone'], testid: string): void {
    push({ kind: 'notice', text, tone, testid });
  }

  const recovery = trackRecovery(duet, 'chat', {
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

  duet.subscribe('chat', (data, meta) => {
    const recovered = recovery.seen(meta.seq, meta.epoch);
    // No `from`: the server itself published it.
    const nick = meta.from === undefined ? 'server' : (meta.from.nick ?? 'anonymous');
    push({ kind: 'message', text: readText(data), nick, mine: identity.isMe(meta.from?.id), recovered });
  });

  watch(duet.status, (status, before) => {
    if (status === 'reconnecting' && before === 'open') notice('Connection lost; reconnecting…', 'info', 'notice-lost');
  });

  function send(text: string): boolean {
    const trimmed = text.trim();
    if (trimmed === '') return false;
    const payload: ChatPayload = { text: trimmed.slice(0, 2000) };
    // Queued by the client while the connection is down, sent once it is back.
    void duet.publish('chat', payload);
    return true;
  }

  return { lines, send };
}
