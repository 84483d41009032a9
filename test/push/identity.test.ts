/**
 * Identity on the channel (src/push/identity.ts): server-made connection ids, the nick rules,
 * and the `from` JSON spliced into every envelope.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_NICK_LENGTH, newConnectionId, nickProblem, senderJson } from '../../src/push/identity.js';

describe('channel identity', () => {
  it('connection ids: 72 random bits as 12 base64url characters, a new one each time', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newConnectionId()));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{12}$/);
  });

  it('nicks: 1 to 64 characters, not only spaces, no control characters; a string', () => {
    assert.equal(nickProblem('ada'), undefined);
    assert.equal(nickProblem('a'.repeat(MAX_NICK_LENGTH)), undefined);
    assert.equal(nickProblem('Grace Hopper ✓'), undefined, 'spaces inside and non-ASCII are fine');
    for (const bad of [
      '',
      'a'.repeat(MAX_NICK_LENGTH + 1),
      '   ',
      'line\nbreak',
      'tab\there',
      'bell\u0007',
      'c1\u0085',
      'del\u007f',
    ]) {
      assert.equal(typeof nickProblem(bad), 'string', JSON.stringify(bad));
    }
    for (const notString of [undefined, null, 42, { nick: 'x' }, ['ada']]) {
      assert.equal(nickProblem(notString), '"nick" must be a string');
    }
  });

  it('from as JSON: id alone before hello, id and nick after; quotes and backslashes escaped', () => {
    assert.equal(senderJson({ id: 'abc' }), '{"id":"abc"}');
    assert.deepEqual(JSON.parse(senderJson({ id: 'abc', nick: 'ada' })), { id: 'abc', nick: 'ada' });
    const tricky = { id: 'x"y', nick: 'a\\"b</script>' };
    assert.deepEqual(JSON.parse(senderJson(tricky)), tricky);
  });
});
