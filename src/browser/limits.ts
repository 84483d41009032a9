/**
 * The server's `limits` message (docs/protocol.md): the connection's rate limit, the largest
 * message and batch, and how long (and in which memory) the server remembers publish ids.
 */

/** The server's `limits` message, as the client uses it (docs/protocol.md). */
export interface ServerLimits {
  rate: { messages: number; perMs: number } | null;
  maxMessageBytes: number;
  maxBatch: number;
  dedupMs: number;
  dedupScope: string | undefined;
}

/** The `limits` message's fields, checked (a missing or malformed one counts as no limit / no dedup). */
export function readLimits(msg: Record<string, unknown>): ServerLimits {
  const rate = msg.rate as { messages?: unknown; perMs?: unknown } | null | undefined;
  const messages = typeof rate === 'object' && rate !== null ? rate.messages : undefined;
  const perMs = typeof rate === 'object' && rate !== null ? rate.perMs : undefined;
  return {
    rate:
      typeof messages === 'number' && typeof perMs === 'number' && messages >= 1 && perMs > 0
        ? { messages, perMs }
        : null,
    maxMessageBytes: positive(msg.maxMessageBytes),
    maxBatch: Math.floor(positive(msg.maxBatch)),
    dedupMs: positive(msg.dedupMs),
    dedupScope: typeof msg.dedupScope === 'string' ? msg.dedupScope : undefined,
  };
}

function positive(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/** UTF-8 bytes of a string (lone surrogates count 3, as TextEncoder writes U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}
