/**
 * Publish ids are `<session>.<n>`: the session names one client instance (made once, random),
 * n counts its publishes. A resend after a reconnect keeps the id, so the server can tell a
 * repeat from a new message; two clients never share a session, so never an id.
 */

/** 96 random bits, base64url (16 characters). */
export function sessionId(): string {
  const bytes = new Uint8Array(12);
  const crypto = (globalThis as { crypto?: { getRandomValues?(array: Uint8Array): Uint8Array } }).crypto;
  if (typeof crypto?.getRandomValues === 'function') crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  return out;
}

/** The ids of one client's publishes. */
export class PublishIds {
  /** This client's session (the part before the dot). */
  readonly session = sessionId();
  private count = 0;

  /** The next id: `<session>.<n>`, n from 1. */
  next(): string {
    return `${this.session}.${++this.count}`;
  }
}
