/**
 * Close codes (RFC 6455 section 7.4): which may appear on the wire.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, closeCodeIsSendable, closeCodeIsValid } from '../../src/protocol/close-codes.js';

/** The rule, stated independently: 1000-1003, 1007-1014 and 3000-4999. */
function ruleSaysValid(code: number): boolean {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

describe('closeCodeIsValid', () => {
  it('agrees with the rule for every 16-bit code 0..65535', () => {
    let valid = 0;
    for (let code = 0; code <= 0xffff; code++) {
      assert.equal(closeCodeIsValid(code), ruleSaysValid(code), `code ${code}`);
      if (closeCodeIsValid(code)) valid++;
    }
    assert.equal(valid, 4 + 8 + 2000);
  });

  it('rejects the codes reserved for reporting or never assigned', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      assert.equal(closeCodeIsValid(code), false, `code ${code}`);
    }
    for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4000, 4999]) {
      assert.equal(closeCodeIsValid(code), true, `code ${code}`);
    }
  });
});

describe('closeCodeIsSendable', () => {
  it('agrees with closeCodeIsValid on integers', () => {
    for (let code = 0; code <= 0xffff; code++) {
      assert.equal(closeCodeIsSendable(code), ruleSaysValid(code), `code ${code}`);
    }
  });

  it('rejects non-integers and out-of-range numbers', () => {
    for (const code of [1000.5, 3000.1, Number.NaN, Number.POSITIVE_INFINITY, -1, -1000, 65536, 2 ** 32 + 1000]) {
      assert.equal(closeCodeIsSendable(code), false, `code ${code}`);
    }
  });
});

describe('CloseCode', () => {
  it('names the RFC 6455 section 7.4.1 codes', () => {
    assert.deepEqual(CloseCode, {
      NORMAL: 1000,
      GOING_AWAY: 1001,
      PROTOCOL_ERROR: 1002,
      UNSUPPORTED_DATA: 1003,
      NO_STATUS_RECEIVED: 1005,
      ABNORMAL_CLOSURE: 1006,
      INVALID_PAYLOAD: 1007,
      POLICY_VIOLATION: 1008,
      MESSAGE_TOO_BIG: 1009,
      MANDATORY_EXTENSION: 1010,
      INTERNAL_ERROR: 1011,
      SERVICE_RESTART: 1012,
      TRY_AGAIN_LATER: 1013,
      BAD_GATEWAY: 1014,
      TLS_HANDSHAKE: 1015,
    });
  });

  it('the reporting-only codes (1005, 1006, 1015) are not valid on the wire', () => {
    for (const code of [CloseCode.NO_STATUS_RECEIVED, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE]) {
      assert.equal(closeCodeIsValid(code), false, `code ${code}`);
    }
  });
});
