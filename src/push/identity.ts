/**
 * Who a channel message is from. The server, never the client, says so: every connection
 * gets an id the server makes up, and a nick it chose with `hello`; both are stamped on what
 * it publishes as `from`. A client cannot claim another connection's id, and its messages
 * always carry the nick it is known by at that moment.
 */
import { randomBytes } from 'node:crypto';

/** The `from` of a client's message: its connection's id and, once it said `hello`, its nick. */
export interface ChannelSender {
  /** Made up by the server for one connection: opaque, unique, a new one per connection. */
  id: string;
  /** The nick the connection gave in its last `hello`; absent before any. */
  nick?: string;
}

/** Longest nick, in UTF-16 code units: a display name, not a message. */
export const MAX_NICK_LENGTH = 64;

/**
 * 72 random bits: unique among every connection a server will ever have, and not guessable,
 * though nothing depends on that (an id can only be stamped by the server, never claimed).
 */
export function newConnectionId(): string {
  return randomBytes(9).toString('base64url');
}

// C0 and C1 control characters: a nick is shown in lists and chat lines, one line each.
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `nick` cannot be a nick, or undefined when it can. */
export function nickProblem(nick: unknown): string | undefined {
  if (typeof nick !== 'string') return '"nick" must be a string';
  if (nick.length === 0 || nick.length > MAX_NICK_LENGTH) return `a nick is 1 to ${MAX_NICK_LENGTH} characters`;
  if (nick.trim().length === 0) return 'a nick cannot be only spaces';
  if (CONTROL.test(nick)) return 'a nick cannot contain control characters';
  return undefined;
}

/** `from` as JSON, built once per change of identity and spliced into every envelope. */
export function senderJson(sender: ChannelSender): string {
  return sender.nick === undefined
    ? `{"id":${JSON.stringify(sender.id)}}`
    : `{"id":${JSON.stringify(sender.id)},"nick":${JSON.stringify(sender.nick)}}`;
}
