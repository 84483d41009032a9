/** Frame opcodes (RFC 6455 section 5.2). 0x3-0x7 and 0xB-0xF are reserved. */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** Control frames have the high bit of the opcode set (0x8-0xF). */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/** The largest payload a control frame may carry (RFC 6455 section 5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
