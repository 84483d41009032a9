/**
 * Unit tests of src/protocol/opcodes.ts: the opcode values and which of the sixteen opcodes are
 * control frames (RFC 6455 section 5.2, 5.5), written out here rather than computed by src.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isControlOpcode, MAX_CONTROL_PAYLOAD, Opcode } from '../../src/protocol/opcodes.js';

describe('opcodes', () => {
  it('has the RFC 6455 values', () => {
    assert.deepEqual({ ...Opcode }, { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa });
  });

  it('isControlOpcode: 0x8-0xF (Close, Ping, Pong and the reserved 0xB-0xF) and nothing below', () => {
    const control: number[] = [];
    for (let opcode = 0; opcode <= 0xf; opcode++) if (isControlOpcode(opcode)) control.push(opcode);
    assert.deepEqual(control, [0x8, 0x9, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
  });

  it('a control frame carries at most 125 bytes (section 5.5)', () => {
    assert.equal(MAX_CONTROL_PAYLOAD, 125);
  });
});
