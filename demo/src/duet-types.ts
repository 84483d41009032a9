import type { useDuet } from 'duet/vue';

/** What useDuet() returns: the demo shares one client between its panels. */
export type Duet = ReturnType<typeof useDuet>;

/** The server's answer to a subscribe (docs/protocol.md), as seen through the client's `message` event. */
export interface SubscribedMessage {
  type: 'subscribed';
  topic: string;
  epoch: string;
  seq: number;
  recovered: boolean;
}

export function isSubscribed(m: unknown): m is SubscribedMessage {
  if (typeof m !== 'object' || m === null) return false;
  const o = m as Record<string, unknown>;
  return (
    o.type === 'subscribed' &&
    typeof o.topic === 'string' &&
    typeof o.seq === 'number' &&
    typeof o.recovered === 'boolean'
  );
}

/** The server's answer to `hello`: this connection's id and nick. */
export interface WelcomeMessage {
  type: 'welcome';
  id: string;
  nick: string;
}

export function isWelcome(m: unknown): m is WelcomeMessage {
  if (typeof m !== 'object' || m === null) return false;
  const o = m as Record<string, unknown>;
  return o.type === 'welcome' && typeof o.id === 'string' && typeof o.nick === 'string';
}

export function clockTime(date = new Date()): string {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
