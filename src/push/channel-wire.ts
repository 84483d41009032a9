/**
 * The channel protocol's messages as the Channel reads and writes them (channel.ts): a client
 * message parsed into fields, the refusal of one (ClientError, answered as an `error` or an
 * entry of `acks`), and the answers to publishes with an id. The shapes themselves are in
 * channel-types.ts.
 */
import type { WebSocket } from '../node/connection.js';
import type { PublishResult } from './broker.js';
import type { ChannelAckEntry, ChannelErrorCode, ChannelServerMessage } from './channel-types.js';

/** A client message: a JSON object. */
export type Fields = Record<string, unknown>;

/** Longest publish `id`, in UTF-16 code units (the client library's are about 20). */
export const MAX_PUBLISH_ID_LENGTH = 128;

/** A subscribe or publish refused because the broker cannot be reached is worth trying again this much later. */
export const UNAVAILABLE_RETRY_MS = 1000;

/** A client message refused: what the `error` (or the `acks` entry) says. */
export class ClientError extends Error {
  /** The `id` of the publish it refuses, when it had one. */
  id: string | undefined;

  constructor(
    readonly code: ChannelErrorCode,
    message: string,
    readonly topic?: string,
    /** `rate_limited`, `recovery_limited`, `unavailable`: when to come back. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** Errors a connection may cause without misbehaving: not counted toward `maxErrors`. */
export function counts(code: ChannelErrorCode): boolean {
  return code !== 'rate_limited' && code !== 'recovery_limited' && code !== 'unavailable';
}

/** A publish `id`: a string of 1 to MAX_PUBLISH_ID_LENGTH characters. */
export function isPublishId(id: unknown): id is string {
  return typeof id === 'string' && id.length >= 1 && id.length <= MAX_PUBLISH_ID_LENGTH;
}

/** The refusal of a publish whose `id` is not 1-128 characters. */
export function badPublishId(): ClientError {
  return new ClientError('bad_message', `"id" must be a string of 1 to ${MAX_PUBLISH_ID_LENGTH} characters`);
}

/** The broker could not take a publish: it was not published. */
export function notPublished(topic: string): ClientError {
  return new ClientError(
    'unavailable',
    'not published: the server cannot reach its broker now',
    topic,
    UNAVAILABLE_RETRY_MS,
  );
}

/** The `ack` of a publish with an id. */
export function ack(id: string, topic: string, result: PublishResult): ChannelServerMessage {
  return result.duplicate === true
    ? { type: 'ack', id, topic, seq: result.seq, duplicate: true }
    : { type: 'ack', id, topic, seq: result.seq };
}

/** An accepted entry of an `acks` answer. */
export function ackEntry(id: string, topic: string, result: PublishResult): ChannelAckEntry {
  return result.duplicate === true ? { id, topic, seq: result.seq, duplicate: true } : { id, topic, seq: result.seq };
}

/** A refused entry of an `acks` answer. */
export function refused(id: string, topic: string, err: ClientError): ChannelAckEntry {
  const entry: ChannelAckEntry = { id, topic, code: err.code, message: err.message };
  if (err.retryAfter !== undefined) entry.retryAfter = err.retryAfter;
  return entry;
}

/** A client message's bytes as fields, or the ClientError that refuses them. */
export function parse(bytes: Buffer): Fields {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ClientError('bad_json', 'the message is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ClientError('bad_message', 'a message is a JSON object');
  return value as Fields;
}

/** `data` as JSON; a TypeError when it is not a JSON value. */
export function stringify(data: unknown): string {
  const json = JSON.stringify(data);
  if (typeof json !== 'string')
    throw new TypeError('channel data must be a JSON value (not undefined, a function or a symbol)');
  return json;
}

/** Send a server message as one JSON text message. */
export function sendJson(ws: WebSocket, message: ChannelServerMessage): void {
  ws.send(JSON.stringify(message));
}
