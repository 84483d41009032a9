/**
 * The chat room on topic `chat`: messages from everyone plus notices about the connection.
 * A line's nick is the `from` the server stamped, never something inside the message.
 *
 * A page opened later shows the recent chat too: a fresh subscribe gets only live messages,
 * so the page first asks `duet serve` where the chat's kept history starts (GET
 * /channel/recent?topic=chat) and subscribes from there; the server replays those messages,
 * then live ones follow, with no gap and none twice. Without that answer (another server, an
 * error) it subscribes fresh.
 *
 * A line this page sends shows at once, marked pending, until the server acknowledged it
 * (`publish()` resolved with its seq) or delivered it back; it is then shown as sent, in the
 * place it was typed. The client keeps an unacknowledged line and sends it again after a
 * reconnect, so dropping the connection while typing loses nothing.
 */
import { effectScope, getCurrentScope, ref, watch, type Ref } from 'vue';
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
  /** A line this page sent: waiting for the server, published, or refused (`error` says why). */
  state?: 'pending' | 'sent' | 'failed';
  error?: string;
}

/** A line this page sent, until the server both acknowledged it and delivered it back. */
interface Outgoing {
  line: ChatLine;
  text: string;
  /** From the ack; undefined before it. */
  seq?: number;
  /** The server delivered it back (this page is subscribed). */
  delivered: boolean;
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

export function useChat(duet: Duet, identity: Identity, nick: Ref<string>) {
  const lines = ref<ChatLine[]>([]);
  let counter = 0;
  const outgoing: Outgoing[] = [];
  // The subscribe waits for the start position: in the caller's scope still, so that it ends
  // with the component.
  const scope = getCurrentScope() ?? effectScope();

  function push(line: Omit<ChatLine, 'key' | 'time'>, time = clockTime()): ChatLine {
    lines.value.push({ ...line, key: `l${++counter}`, time });
    if (lines.value.length > MAX_LINES) lines.value.splice(0, lines.value.length - MAX_LINES);
    // The reactive copy, so that changing its state later updates the page.
    return lines.value[lines.value.length - 1];
  }
  function settle(entry: Outgoing): void {
    entry.line.state = 'sent';
    if (entry.delivered && entry.seq !== undefined) outgoing.splice(outgoing.indexOf(entry), 1);
  }
  /**
   * One of this page's lines came back from the server: the pending line it belongs to (by
   * the ack's seq, or, before the ack, the oldest pending one with that text: the server
   * keeps this page's order), or undefined when it was sent from elsewhere.
   */
  function claim(seq: number, text: string): Outgoing | undefined {
    return (
      outgoing.find((o) => o.seq === seq && !o.delivered) ??
      outgoing.find((o) => o.seq === undefined && !o.delivered && o.text === text)
    );
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
    const text = readText(data);
    const mine = identity.isMe(meta.from?.id);
    const entry = mine ? claim(meta.seq, text) : undefined;
    if (entry !== undefined) {
      entry.delivered = true;
      entry.line.recovered = recovered;
      settle(entry);
      return;
    }
    // No `from`: the server itself published it.
    const sender = meta.from === undefined ? 'server' : (meta.from.nick ?? 'anonymous');
    // A message from before the page came has no time we know (the arrival time would mislead).
    const time = recovery.fromHistory(meta.seq) ? 'earlier' : undefined;
    push({ kind: 'message', text, nick: sender, mine, recovered }, time);
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
    const entry: Outgoing = {
      line: push({
        kind: 'message',
        text: payload.text,
        nick: nick.value.trim() || 'anonymous',
        mine: true,
        state: 'pending',
      }),
      text: payload.text,
      delivered: false,
    };
    outgoing.push(entry);
    // Queued by the client while the connection is down, and sent again after a reconnect
    // until the server acknowledges it.
    duet.publish('chat', payload).then(
      (seq) => {
        entry.seq = seq;
        settle(entry);
      },
      (err: unknown) => {
        outgoing.splice(outgoing.indexOf(entry), 1);
        entry.line.state = 'failed';
        entry.line.error = err instanceof Error ? err.message : String(err);
      },
    );
    return true;
  }

  return { lines, send };
}
