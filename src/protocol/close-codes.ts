/**
 * Close codes (RFC 6455 section 7.4) and the rules for which may appear on the wire.
 */

/** Named close codes. 1005, 1006 and 1015 are reserved for reporting and never sent. */
export const CloseCode = {
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
} as const;

/**
 * Whether `code` may be carried in a Close frame on the wire.
 * Valid: 1000-1003, 1007-1014 (IANA registered) and 3000-4999 (libraries, applications).
 * Never on the wire: 1004 (reserved), 1005, 1006, 1015 (reporting only), 0-999, 1016-2999, 5000+.
 */
export function closeCodeIsValid(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * Whether an application may pass `code` to `close()`: 1000 or 3000-4999, as the WHATWG API
 * allows, plus the other registered codes a server legitimately sends (1001-1003, 1007-1014).
 */
export function closeCodeIsSendable(code: number): boolean {
  return Number.isInteger(code) && closeCodeIsValid(code);
}
