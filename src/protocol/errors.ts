/**
 * Protocol errors: each has a stable `code` string (documented in docs/server.md) and the close
 * code the connection must be failed with.
 */
import { CloseCode } from './close-codes.js';

/** Every error code string duet's protocol layer can raise. */
export type ProtocolErrorCode =
  | 'WS_ERR_INVALID_OPCODE'
  | 'WS_ERR_UNEXPECTED_RSV_1'
  | 'WS_ERR_UNEXPECTED_RSV_2_3'
  | 'WS_ERR_EXPECTED_MASK'
  | 'WS_ERR_UNEXPECTED_MASK'
  | 'WS_ERR_EXPECTED_FIN'
  | 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'
  | 'WS_ERR_UNEXPECTED_CONTINUATION'
  | 'WS_ERR_EXPECTED_CONTINUATION'
  | 'WS_ERR_NON_MINIMAL_LENGTH'
  | 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'
  | 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
  | 'WS_ERR_TOO_MANY_FRAGMENTS'
  | 'WS_ERR_INVALID_CLOSE_CODE'
  | 'WS_ERR_INVALID_CLOSE_PAYLOAD'
  | 'WS_ERR_INVALID_UTF8'
  | 'WS_ERR_DATA_AFTER_CLOSE';

/** A violation of RFC 6455 by the peer (or a configured limit such as maxPayload). */
export class ProtocolError extends Error {
  /** Stable machine-readable code, e.g. `WS_ERR_INVALID_UTF8`. */
  readonly code: ProtocolErrorCode;
  /** The close code to fail the connection with (1002, 1007 or 1009). */
  readonly closeCode: number;

  constructor(code: ProtocolErrorCode, message: string, closeCode: number = CloseCode.PROTOCOL_ERROR) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.closeCode = closeCode;
  }
}
