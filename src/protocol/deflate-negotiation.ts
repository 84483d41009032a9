/**
 * permessage-deflate negotiation (RFC 7692 section 7.1): which offer a server accepts and what it
 * answers, what a client offers and whether it can live with the answer. Sans-I/O: strings and
 * parsed Sec-WebSocket-Extensions elements in, agreed parameters out; zlib lives in node/.
 *
 * Window bits of 8 (a 256-byte LZ77 window) are negotiated like any other value. zlib cannot
 * set up a raw deflate stream with 8, so Node quietly raises it to 9; but zlib's deflate never
 * refers further back than its window minus 262 bytes (MAX_DIST), i.e. 250 bytes at 9, so the
 * output is decodable with a 256-byte window and honours "MUST NOT compress using a window
 * greater than" the agreed size (RFC 7692 7.1.2.1 / 7.1.2.2). The Node docs for
 * zlib.createDeflateRaw state the same. Declining offers that ask for 8 would only cost
 * compression, and a client cannot decline a response anyway. (The claim rests on zlib's
 * MAX_DIST; node/deflate.ts compresses with 9 where 8 was agreed.)
 */
import { formatExtensions, type ExtensionOffer } from './handshake.js';

/** The extension token (RFC 7692 section 7). */
export const PERMESSAGE_DEFLATE = 'permessage-deflate';

/** Smallest and largest LZ77 window (base-2 logarithm) RFC 7692 allows. */
export const MIN_WINDOW_BITS = 8;
export const MAX_WINDOW_BITS = 15;

/**
 * What one endpoint is willing to use. The same object configures a server (what it accepts and
 * imposes) and a client (what it offers and insists on); see each field. Defaults: DEFLATE_DEFAULTS.
 */
export interface DeflateOptions {
  /**
   * Server: always answer with `server_no_context_takeover` (reset our compressor after each
   * message: no compression state kept between messages, at some cost in ratio). A client that
   * asks for it gets it whatever this says.
   * Client: ask the server to reset its compressor after each message (the response must agree).
   */
  serverNoContextTakeover?: boolean;
  /**
   * Server: always answer with `client_no_context_takeover` (the client must reset its
   * compressor, so we need no inflate state between messages). A client that announces it gets
   * it echoed whatever this says.
   * Client: announce that we reset our own compressor after each message, and do so.
   */
  clientNoContextTakeover?: boolean;
  /**
   * Server: the largest window we compress with; below 15 we answer `server_max_window_bits`.
   * Client: ask the server to compress with at most this window (offered as
   * `server_max_window_bits=N`; when unset nothing is offered and the server may use 15).
   */
  serverMaxWindowBits?: number;
  /**
   * Server: the largest window we let the client compress with; below 15 we answer
   * `client_max_window_bits`, and decline offers that lack it (the client never agreed to be limited).
   * Client: the largest window we compress with, offered as `client_max_window_bits=N`; when
   * unset we offer `client_max_window_bits` without a value (as browsers do): 15, unless the
   * server asks for less.
   */
  clientMaxWindowBits?: number;
}

/** The agreed parameters of one connection, the same on both ends (window bits 8..15). */
export interface DeflateParams {
  /** The server resets its compressor after every message (the client may drop its inflate state). */
  serverNoContextTakeover: boolean;
  /** The client resets its compressor after every message (the server may drop its inflate state). */
  clientNoContextTakeover: boolean;
  /** Largest window the server compresses with; the client inflates with this. */
  serverMaxWindowBits: number;
  /** Largest window the client compresses with; the server inflates with this. */
  clientMaxWindowBits: number;
}

/**
 * Every DeflateOptions default, stated once: no context takeover is off because it costs
 * compression ratio on repetitive traffic, and 15-bit windows are what every peer supports and
 * compresses best; memory-conscious servers lower them deliberately.
 */
export const DEFLATE_DEFAULTS = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: MAX_WINDOW_BITS,
  clientMaxWindowBits: MAX_WINDOW_BITS,
} as const;

/**
 * Server side: pick the first acceptable `permessage-deflate` offer (other extensions are
 * skipped) and build the Sec-WebSocket-Extensions response element for it. An offer is declined
 * when it has an unknown or repeated parameter or an invalid value (RFC 7692 section 7), or when
 * `options.clientMaxWindowBits` is below 15 and the offer lacks `client_max_window_bits`.
 * Returns null when no offer is acceptable: the connection then runs without compression.
 * Throws RangeError for invalid options.
 */
export function acceptDeflateOffer(
  offers: readonly ExtensionOffer[],
  options: DeflateOptions = {},
): { params: DeflateParams; response: string } | null {
  const config = resolveOptions(options);
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const parsed = readParams(offer, 'offer');
    if (typeof parsed === 'string') continue;
    const accepted = answerOffer(parsed, config);
    if (accepted !== null) return accepted;
  }
  return null;
}

/**
 * Client side: the Sec-WebSocket-Extensions value to send, one offer built from `options`
 * (`permessage-deflate; client_max_window_bits` with the defaults). Throws RangeError for
 * invalid options.
 */
export function deflateOffer(options: DeflateOptions = {}): string {
  return formatExtensions([{ name: PERMESSAGE_DEFLATE, params: toWire(clientOffer(options)) }]);
}

/**
 * Client side: check the server's parsed Sec-WebSocket-Extensions against the offer
 * `deflateOffer(options)` made. Returns the agreed parameters; `{ error }` when the client must
 * fail the connection (RFC 7692 section 7: unknown, repeated or invalid parameters, more than one
 * permessage-deflate element, or a configuration the offer did not allow); null when the server
 * did not accept permessage-deflate. Elements of other extensions are ignored here: checking
 * them against what was offered is the caller's job (RFC 6455 section 9.1).
 * Throws RangeError for invalid options.
 */
export function acceptDeflateResponse(
  response: readonly ExtensionOffer[],
  options: DeflateOptions = {},
): DeflateParams | { error: string } | null {
  const offered = clientOffer(options);
  const elements = response.filter((element) => element.name === PERMESSAGE_DEFLATE);
  if (elements.length === 0) return null;
  if (elements.length > 1) return { error: 'permessage-deflate appears more than once in the response' };
  const answer = readParams(elements[0], 'response');
  if (typeof answer === 'string') return { error: answer };

  // 7.1.1.1: the server accepts server_no_context_takeover by including it. It may also include
  // it unasked, which only frees the client's inflate state.
  if (offered.serverNoContextTakeover && !answer.serverNoContextTakeover) {
    return { error: 'server_no_context_takeover was offered but the response lacks it' };
  }
  // 7.1.2.1: accepted by including the same or a smaller value; unasked, any valid value is fine.
  if (offered.serverMaxWindowBits !== undefined) {
    if (answer.serverMaxWindowBits === undefined) {
      return { error: 'server_max_window_bits was offered but the response lacks it' };
    }
    if (answer.serverMaxWindowBits > offered.serverMaxWindowBits) {
      return {
        error: `server_max_window_bits=${answer.serverMaxWindowBits} exceeds the offered ${offered.serverMaxWindowBits}`,
      };
    }
  }
  // 7.1.2.2: only allowed when offered, and then no larger than an offered value. This client
  // always offers it (see ClientOffer), so only the size is checked.
  const answeredClientBits = answer.clientMaxWindowBits;
  if (typeof answeredClientBits === 'number') {
    if (typeof offered.clientMaxWindowBits === 'number' && answeredClientBits > offered.clientMaxWindowBits) {
      return {
        error: `client_max_window_bits=${answeredClientBits} exceeds the offered ${offered.clientMaxWindowBits}`,
      };
    }
  }

  return {
    serverNoContextTakeover: answer.serverNoContextTakeover,
    // We announced it, so we keep to it even if the server did not echo it (7.1.1.2 lets the
    // server ignore the hint; resetting is always decodable by a peer expecting takeover).
    clientNoContextTakeover: answer.clientNoContextTakeover || offered.clientNoContextTakeover,
    serverMaxWindowBits: answer.serverMaxWindowBits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits:
      typeof answeredClientBits === 'number'
        ? answeredClientBits
        : typeof offered.clientMaxWindowBits === 'number'
          ? offered.clientMaxWindowBits
          : MAX_WINDOW_BITS,
  };
}

// ---------------------------------------------------------------------------------------------

/** One permessage-deflate element, checked and typed. */
interface DeflateElement {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** undefined: absent. */
  serverMaxWindowBits: number | undefined;
  /** undefined: absent; true: present without a value (allowed in offers only). */
  clientMaxWindowBits: number | true | undefined;
}

const SERVER_NO_CONTEXT_TAKEOVER = 'server_no_context_takeover';
const CLIENT_NO_CONTEXT_TAKEOVER = 'client_no_context_takeover';
const SERVER_MAX_WINDOW_BITS = 'server_max_window_bits';
const CLIENT_MAX_WINDOW_BITS = 'client_max_window_bits';

// 7.1.2.1 / 7.1.2.2: "a decimal integer value without leading zeroes between 8 to 15, inclusive".
const WINDOW_BITS_PATTERN = /^(?:[89]|1[0-5])$/;

/**
 * Check one element's parameters (RFC 7692 section 7). Returns a description of the first
 * problem as a string, which the server treats as "decline this offer" and the client as "fail
 * the connection". Parameter names are compared exactly, as RFC 7692 spells them.
 */
function readParams(element: ExtensionOffer, kind: 'offer' | 'response'): DeflateElement | string {
  if (element.duplicateParams) return `a parameter is repeated in the permessage-deflate ${kind}`;
  const result: DeflateElement = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: undefined,
    clientMaxWindowBits: undefined,
  };
  for (const [name, value] of element.params) {
    switch (name) {
      case SERVER_NO_CONTEXT_TAKEOVER:
      case CLIENT_NO_CONTEXT_TAKEOVER:
        // 7.1.1.1 / 7.1.1.2: these have no value.
        if (value !== true) return `${name} must not have a value`;
        if (name === SERVER_NO_CONTEXT_TAKEOVER) result.serverNoContextTakeover = true;
        else result.clientNoContextTakeover = true;
        break;
      case SERVER_MAX_WINDOW_BITS: {
        // Always carries a value, in offers and responses alike.
        const bits = windowBits(value);
        if (bits === null) return `invalid ${name} ${describeValue(value)}`;
        result.serverMaxWindowBits = bits;
        break;
      }
      case CLIENT_MAX_WINDOW_BITS: {
        // An offer may omit the value ("you may limit me"); a response must state the limit.
        if (value === true && kind === 'offer') {
          result.clientMaxWindowBits = true;
          break;
        }
        const bits = windowBits(value);
        if (bits === null) return `invalid ${name} ${describeValue(value)}`;
        result.clientMaxWindowBits = bits;
        break;
      }
      default:
        return `unknown permessage-deflate parameter ${name}`;
    }
  }
  return result;
}

function windowBits(value: string | true): number | null {
  return value !== true && WINDOW_BITS_PATTERN.test(value) ? Number(value) : null;
}

function describeValue(value: string | true): string {
  return value === true ? 'without a value' : JSON.stringify(value);
}

/** Server: the answer to one well-formed offer, or null to decline it. */
function answerOffer(
  offer: DeflateElement,
  config: Required<DeflateOptions>,
): { params: DeflateParams; response: string } | null {
  // 7.1.2.2: without client_max_window_bits in the offer the response may not limit the client,
  // so a server that needs the limit cannot accept this offer.
  if (offer.clientMaxWindowBits === undefined && config.clientMaxWindowBits < MAX_WINDOW_BITS) return null;

  const clientLimit = typeof offer.clientMaxWindowBits === 'number' ? offer.clientMaxWindowBits : MAX_WINDOW_BITS;
  const params: DeflateParams = {
    // 7.1.1.1: a request must be honoured, and the server may add it unasked.
    serverNoContextTakeover: offer.serverNoContextTakeover || config.serverNoContextTakeover,
    // 7.1.1.2: the server may ignore the client's hint; we echo it, so we can free inflate state
    // between messages, and may impose it unasked.
    clientNoContextTakeover: offer.clientNoContextTakeover || config.clientNoContextTakeover,
    serverMaxWindowBits: Math.min(offer.serverMaxWindowBits ?? MAX_WINDOW_BITS, config.serverMaxWindowBits),
    clientMaxWindowBits: Math.min(clientLimit, config.clientMaxWindowBits),
  };
  const answer: DeflateElement = {
    serverNoContextTakeover: params.serverNoContextTakeover,
    clientNoContextTakeover: params.clientNoContextTakeover,
    // 7.1.2.1: an offered value is accepted only by answering it (same or smaller); unasked,
    // we state our limit only when it is below the default.
    serverMaxWindowBits:
      offer.serverMaxWindowBits !== undefined || params.serverMaxWindowBits < MAX_WINDOW_BITS
        ? params.serverMaxWindowBits
        : undefined,
    // 7.1.2.2: only if offered; we state it when it is below 15 (an offered value the client
    // already keeps to is repeated, which is harmless and keeps the answer explicit).
    clientMaxWindowBits:
      offer.clientMaxWindowBits !== undefined && params.clientMaxWindowBits < MAX_WINDOW_BITS
        ? params.clientMaxWindowBits
        : undefined,
  };
  return { params, response: formatExtensions([{ name: PERMESSAGE_DEFLATE, params: toWire(answer) }]) };
}

/** What this client offers: always client_max_window_bits (bare unless configured), as ws does. */
type ClientOffer = DeflateElement & { clientMaxWindowBits: number | true };

/** Client: the offer `options` produce (what deflateOffer sends and acceptDeflateResponse checks against). */
function clientOffer(options: DeflateOptions): ClientOffer {
  validateOptions(options);
  return {
    serverNoContextTakeover: options.serverNoContextTakeover === true,
    clientNoContextTakeover: options.clientNoContextTakeover === true,
    serverMaxWindowBits: options.serverMaxWindowBits,
    clientMaxWindowBits: options.clientMaxWindowBits ?? true,
  };
}

/** Parameters in the order RFC 7692 lists them. */
function toWire(element: DeflateElement): Map<string, string | true> {
  const params = new Map<string, string | true>();
  if (element.serverNoContextTakeover) params.set(SERVER_NO_CONTEXT_TAKEOVER, true);
  if (element.clientNoContextTakeover) params.set(CLIENT_NO_CONTEXT_TAKEOVER, true);
  if (element.serverMaxWindowBits !== undefined)
    params.set(SERVER_MAX_WINDOW_BITS, String(element.serverMaxWindowBits));
  if (element.clientMaxWindowBits !== undefined) {
    params.set(
      CLIENT_MAX_WINDOW_BITS,
      element.clientMaxWindowBits === true ? true : String(element.clientMaxWindowBits),
    );
  }
  return params;
}

function resolveOptions(options: DeflateOptions): Required<DeflateOptions> {
  validateOptions(options);
  return {
    serverNoContextTakeover: options.serverNoContextTakeover ?? DEFLATE_DEFAULTS.serverNoContextTakeover,
    clientNoContextTakeover: options.clientNoContextTakeover ?? DEFLATE_DEFAULTS.clientNoContextTakeover,
    serverMaxWindowBits: options.serverMaxWindowBits ?? DEFLATE_DEFAULTS.serverMaxWindowBits,
    clientMaxWindowBits: options.clientMaxWindowBits ?? DEFLATE_DEFAULTS.clientMaxWindowBits,
  };
}

function validateOptions(options: DeflateOptions): void {
  for (const key of ['serverMaxWindowBits', 'clientMaxWindowBits'] as const) {
    const bits = options[key];
    if (bits !== undefined && !(Number.isInteger(bits) && bits >= MIN_WINDOW_BITS && bits <= MAX_WINDOW_BITS)) {
      throw new RangeError(
        `${key} must be an integer from ${MIN_WINDOW_BITS} to ${MAX_WINDOW_BITS}, got ${String(bits)}`,
      );
    }
  }
}
