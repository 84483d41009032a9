/**
 * Publish ids: `<session>.<n>`, a session of 96 random bits (16 base64url characters) per
 * client, n counting from 1.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PublishIds, sessionId } from '../../src/browser/ids.js';

describe('publish ids', () => {
  it('sessionId(): 16 base64url characters, different every time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = sessionId();
      assert.match(id, /^[A-Za-z0-9_-]{16}$/);
      seen.add(id);
    }
    assert.equal(seen.size, 1000);
  });

  it('uses every character of the alphabet (all 96 bits go in)', () => {
    const chars = new Set<string>();
    for (let i = 0; i < 2000; i++) for (const c of sessionId()) chars.add(c);
    assert.equal(chars.size, 64);
  });

  it('without crypto.getRandomValues it still makes sessions (Math.random)', () => {
    const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
    Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true });
    try {
      assert.match(sessionId(), /^[A-Za-z0-9_-]{16}$/);
    } finally {
      Object.defineProperty(globalThis, 'crypto', descriptor!);
    }
  });

  it('PublishIds: <session>.1, <session>.2, ...; two instances, two sessions', () => {
    const ids = new PublishIds();
    assert.equal(ids.next(), `${ids.session}.1`);
    assert.equal(ids.next(), `${ids.session}.2`);
    assert.notEqual(new PublishIds().session, ids.session);
  });
});
