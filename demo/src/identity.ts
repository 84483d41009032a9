/**
 * Who this page is. The page only picks a nick (`hello`); the server gives every connection an
 * id and stamps both on whatever the page publishes (`meta.from` for everyone who receives
 * it), so chat lines and presence entries say who sent them without the page claiming it,
 * and nobody can post as someone else. Each connection gets a new id: every id this page had
 * is kept, to recognise its own messages from earlier connections too.
 */
import { onScopeDispose, watch, type Ref } from 'vue';
import { isWelcome, type Duet } from './duet-types';

export interface Identity {
  /** Whether a message's `from.id` is one of this page's connections. */
  isMe(id: string | undefined): boolean;
  /** Call `fn` after a changed nick was sent to the server. */
  onRenamed(fn: () => void): void;
}

// Not on every keystroke: each hello counts against the server's rate limit.
const RENAME_DELAY_MS = 400;

export function useIdentity(duet: Duet, nick: Ref<string>): Identity {
  const client = duet.client;
  const mine = new Set<string>();
  const renamed: Array<() => void> = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  // The server refuses an empty nick; the input may be cleared while typing.
  const current = (): string => nick.value.trim() || 'anonymous';

  client?.setNick(current());
  watch(nick, () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      client?.setNick(current());
      for (const fn of renamed) fn();
    }, RENAME_DELAY_MS);
  });
  const off = client?.on('message', (m) => {
    if (isWelcome(m)) mine.add(m.id);
  });
  onScopeDispose(() => {
    clearTimeout(timer);
    off?.();
  });

  return {
    isMe: (id) => id !== undefined && mine.has(id),
    onRenamed: (fn) => void renamed.push(fn),
  };
}
