/**
 * src/push/channel-wire.ts on its own: parsing a client message, publish ids, the answers to
 * publishes with an id, and which refusals count toward maxErrors. Over real connections these
 * are exercised by channel.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ack,
  ackEntry,
  ClientError,
  counts,
  isPublishId,
  MAX_PUBLISH_ID_LENGTH,
  notPublished,
  parse,
  refused,
  stringify,
} from '../../src/push/channel-wire.js';

describe('channel wire', () => {
  it('parse: a JSON object, else bad_json or bad_message', () => {
    assert.deepEqual(parse(Buffer.from('{"type":"ping","id":1}')), { type: 'ping', id: 1 });
    const code = (text: string): string => {
      try {
        parse(Buffer.from(text));
      } catch (err) {
        assert.ok(err instanceof ClientError);
        return err.code;
      }
      return 'parsed';
    };
    assert.equal(code('{'), 'bad_json');
    assert.equal(code('[1]'), 'bad_message');
    assert.equal(code('null'), 'bad_message');
    assert.equal(code('"x"'), 'bad_message');
  });

  it('stringify refuses what is not a JSON value', () => {
    assert.equal(stringify({ a: [1] }), '{"a":[1]}');
    assert.throws(() => stringify(undefined), TypeError);
  });

  it('a publish id is a string of 1 to 128 characters', () => {
    assert.equal(MAX_PUBLISH_ID_LENGTH, 128);
    for (const id of ['a', 'Xk3_9aP2qLm0.17', 'x'.repeat(128)]) assert.equal(isPublishId(id), true, id);
    for (const id of ['', 'x'.repeat(129), 7, null, undefined, {}])
      assert.equal(isPublishId(id), false, JSON.stringify(id) ?? 'undefined');
  });

  it('acks: the seq, and duplicate only when it was one', () => {
    assert.deepEqual(ack('i', 't', { epoch: 'e', seq: 3 }), { type: 'ack', id: 'i', topic: 't', seq: 3 });
    assert.deepEqual(ack('i', 't', { epoch: 'e', seq: 3, duplicate: true }), {
      type: 'ack',
      id: 'i',
      topic: 't',
      seq: 3,
      duplicate: true,
    });
    assert.deepEqual(ackEntry('i', 't', { epoch: 'e', seq: 4, duplicate: false }), { id: 'i', topic: 't', seq: 4 });
    assert.deepEqual(refused('i', 't', notPublished('t')), {
      id: 'i',
      topic: 't',
      code: 'unavailable',
      message: 'not published: the server cannot reach its broker now',
      retryAfter: 1000,
    });
    assert.deepEqual(refused('i', 't', new ClientError('forbidden', 'no')), {
      id: 'i',
      topic: 't',
      code: 'forbidden',
      message: 'no',
    });
  });

  it('waiting (rate, recovery budget, broker) is not misbehaviour; the other refusals count', () => {
    for (const code of ['rate_limited', 'recovery_limited', 'unavailable'] as const) assert.equal(counts(code), false);
    for (const code of ['bad_json', 'bad_message', 'forbidden', 'identity', 'too_big', 'internal'] as const)
      assert.equal(counts(code), true);
  });
});
