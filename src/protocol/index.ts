/** The sans-I/O RFC 6455 core: no sockets, no timers. */
export { CloseCode, closeCodeIsValid } from './close-codes.js';
export {
  ConnectionClosedError,
  DuetError,
  ERROR_CODES,
  HandshakeError,
  LimitExceededError,
  ProtocolError,
  RENAMED_ERROR_CODES,
  createError,
} from './errors.js';
export type {
  ConnectionClosedErrorCode,
  CreateErrorOptions,
  DuetErrorClassName,
  DuetErrorCode,
  ErrorFor,
  ErrorInfo,
  HandshakeErrorCode,
  HandshakeErrorOptions,
  LimitExceededErrorCode,
  ProtocolErrorCode,
} from './errors.js';
export { Opcode, isControlOpcode, MAX_CONTROL_PAYLOAD } from './opcodes.js';
export { applyMask } from './mask.js';
export { encodeFrame, encodeClosePayload, headerSize } from './frame.js';
export type { FrameOptions } from './frame.js';
export { FrameParser } from './parser.js';
export type { FrameParserHandler, FrameParserOptions } from './parser.js';
export { Utf8Validator, isValidUtf8 } from './utf8.js';
export * from './handshake.js';
export * from './handshake-response.js';
export {
  INVALID_HEADER,
  checkHeaderLine,
  headerFieldList,
  headerLines,
  invalidHeaderError,
  isHeaderValueText,
} from './header-fields.js';
export type { HeaderFields, HeaderValue, InvalidHeaderError } from './header-fields.js';
