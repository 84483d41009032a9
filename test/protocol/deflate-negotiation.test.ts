/**
 * permessage-deflate negotiation (RFC 7692 section 7.1): a table per side, each parameter valid,
 * invalid, repeated, with and without a value; several offers in one header; and round trips
 * (client offer -> server answer -> client check) over every combination of options.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import {
  acceptDeflateOffer,
  acceptDeflateResponse,
  deflateOffer,
  type DeflateOptions,
  type DeflateParams,
} from '../../src/protocol/deflate-negotiation.js';
import { parseExtensions, type ExtensionOffer } from '../../src/protocol/handshake.js';
import { seededRandom } from '../helpers.js';

const DEFAULT_PARAMS: DeflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

function parse(header: string): ExtensionOffer[] {
  const offers = parseExtensions(header);
  assert.ok(offers !== null, `test header does not parse: ${header}`);
  return offers;
}

function params(overrides: Partial<DeflateParams>): DeflateParams {
  return { ...DEFAULT_PARAMS, ...overrides };
}

// ---------------------------------------------------------------------------------------------

interface ServerRow {
  name: string;
  offer: string;
  options?: DeflateOptions;
  /** The expected response element, or null when every offer must be declined. */
  response: string | null;
  params?: Partial<DeflateParams>;
}

const PD = 'permessage-deflate';

const SERVER_TABLE: ServerRow[] = [
  // Plain offers and other extensions.
  { name: 'bare offer', offer: PD, response: PD, params: {} },
  { name: 'only other extensions', offer: 'x-webkit-deflate-frame, foo; bar=1', response: null },
  { name: 'other extension before it is skipped', offer: `foo; a=1, ${PD}`, response: PD, params: {} },
  { name: 'extension name is case-sensitive', offer: 'Permessage-Deflate', response: null },

  // server_no_context_takeover
  {
    name: 'server_no_context_takeover',
    offer: `${PD}; server_no_context_takeover`,
    response: `${PD}; server_no_context_takeover`,
    params: { serverNoContextTakeover: true },
  },
  { name: 'server_no_context_takeover with a value', offer: `${PD}; server_no_context_takeover=1`, response: null },
  {
    name: 'server_no_context_takeover with a quoted value',
    offer: `${PD}; server_no_context_takeover="x"`,
    response: null,
  },
  {
    name: 'server_no_context_takeover repeated',
    offer: `${PD}; server_no_context_takeover; server_no_context_takeover`,
    response: null,
  },
  {
    name: 'server_no_context_takeover imposed by the server',
    offer: PD,
    options: { serverNoContextTakeover: true },
    response: `${PD}; server_no_context_takeover`,
    params: { serverNoContextTakeover: true },
  },

  // client_no_context_takeover
  {
    name: 'client_no_context_takeover is echoed',
    offer: `${PD}; client_no_context_takeover`,
    response: `${PD}; client_no_context_takeover`,
    params: { clientNoContextTakeover: true },
  },
  { name: 'client_no_context_takeover with a value', offer: `${PD}; client_no_context_takeover=true`, response: null },
  {
    name: 'client_no_context_takeover repeated',
    offer: `${PD}; client_no_context_takeover; client_no_context_takeover`,
    response: null,
  },
  {
    name: 'client_no_context_takeover imposed by the server',
    offer: PD,
    options: { clientNoContextTakeover: true },
    response: `${PD}; client_no_context_takeover`,
    params: { clientNoContextTakeover: true },
  },

  // server_max_window_bits
  {
    name: 'server_max_window_bits=10',
    offer: `${PD}; server_max_window_bits=10`,
    response: `${PD}; server_max_window_bits=10`,
    params: { serverMaxWindowBits: 10 },
  },
  {
    name: 'server_max_window_bits=8 (zlib keeps within 256 bytes)',
    offer: `${PD}; server_max_window_bits=8`,
    response: `${PD}; server_max_window_bits=8`,
    params: { serverMaxWindowBits: 8 },
  },
  {
    name: 'server_max_window_bits=15 is answered',
    offer: `${PD}; server_max_window_bits=15`,
    response: `${PD}; server_max_window_bits=15`,
    params: {},
  },
  {
    name: 'server_max_window_bits quoted',
    offer: `${PD}; server_max_window_bits="9"`,
    response: `${PD}; server_max_window_bits=9`,
    params: { serverMaxWindowBits: 9 },
  },
  { name: 'server_max_window_bits without a value', offer: `${PD}; server_max_window_bits`, response: null },
  { name: 'server_max_window_bits=7', offer: `${PD}; server_max_window_bits=7`, response: null },
  { name: 'server_max_window_bits=16', offer: `${PD}; server_max_window_bits=16`, response: null },
  { name: 'server_max_window_bits=0', offer: `${PD}; server_max_window_bits=0`, response: null },
  { name: 'server_max_window_bits=09 (leading zero)', offer: `${PD}; server_max_window_bits=09`, response: null },
  { name: 'server_max_window_bits=010 (leading zero)', offer: `${PD}; server_max_window_bits=010`, response: null },
  { name: 'server_max_window_bits=+9', offer: `${PD}; server_max_window_bits=+9`, response: null },
  { name: 'server_max_window_bits=9.0', offer: `${PD}; server_max_window_bits=9.0`, response: null },
  { name: 'server_max_window_bits=abc', offer: `${PD}; server_max_window_bits=abc`, response: null },
  {
    name: 'server_max_window_bits repeated, same value',
    offer: `${PD}; server_max_window_bits=10; server_max_window_bits=10`,
    response: null,
  },
  {
    name: 'server_max_window_bits repeated, other value',
    offer: `${PD}; server_max_window_bits=10; server_max_window_bits=12`,
    response: null,
  },
  {
    name: 'server limit below the offered value',
    offer: `${PD}; server_max_window_bits=12`,
    options: { serverMaxWindowBits: 10 },
    response: `${PD}; server_max_window_bits=10`,
    params: { serverMaxWindowBits: 10 },
  },
  {
    name: 'server limit above the offered value',
    offer: `${PD}; server_max_window_bits=10`,
    options: { serverMaxWindowBits: 12 },
    response: `${PD}; server_max_window_bits=10`,
    params: { serverMaxWindowBits: 10 },
  },
  {
    name: 'server limit stated unasked',
    offer: PD,
    options: { serverMaxWindowBits: 11 },
    response: `${PD}; server_max_window_bits=11`,
    params: { serverMaxWindowBits: 11 },
  },
  {
    name: 'server limit 15 not stated unasked',
    offer: PD,
    options: { serverMaxWindowBits: 15 },
    response: PD,
    params: {},
  },

  // client_max_window_bits
  { name: 'client_max_window_bits without a value', offer: `${PD}; client_max_window_bits`, response: PD, params: {} },
  {
    name: 'client_max_window_bits=10',
    offer: `${PD}; client_max_window_bits=10`,
    response: `${PD}; client_max_window_bits=10`,
    params: { clientMaxWindowBits: 10 },
  },
  {
    name: 'client_max_window_bits=8',
    offer: `${PD}; client_max_window_bits=8`,
    response: `${PD}; client_max_window_bits=8`,
    params: { clientMaxWindowBits: 8 },
  },
  { name: 'client_max_window_bits=15', offer: `${PD}; client_max_window_bits=15`, response: PD, params: {} },
  {
    name: 'client_max_window_bits quoted',
    offer: `${PD}; client_max_window_bits="12"`,
    response: `${PD}; client_max_window_bits=12`,
    params: { clientMaxWindowBits: 12 },
  },
  { name: 'client_max_window_bits=7', offer: `${PD}; client_max_window_bits=7`, response: null },
  { name: 'client_max_window_bits=16', offer: `${PD}; client_max_window_bits=16`, response: null },
  { name: 'client_max_window_bits=08 (leading zero)', offer: `${PD}; client_max_window_bits=08`, response: null },
  { name: 'client_max_window_bits=x', offer: `${PD}; client_max_window_bits=x`, response: null },
  {
    name: 'client_max_window_bits repeated without values',
    offer: `${PD}; client_max_window_bits; client_max_window_bits`,
    response: null,
  },
  {
    name: 'client_max_window_bits repeated with values',
    offer: `${PD}; client_max_window_bits=10; client_max_window_bits=11`,
    response: null,
  },
  {
    name: 'client limit applied to a bare client_max_window_bits',
    offer: `${PD}; client_max_window_bits`,
    options: { clientMaxWindowBits: 10 },
    response: `${PD}; client_max_window_bits=10`,
    params: { clientMaxWindowBits: 10 },
  },
  {
    name: 'client limit below the offered value',
    offer: `${PD}; client_max_window_bits=12`,
    options: { clientMaxWindowBits: 10 },
    response: `${PD}; client_max_window_bits=10`,
    params: { clientMaxWindowBits: 10 },
  },
  {
    name: 'client limit above the offered value',
    offer: `${PD}; client_max_window_bits=9`,
    options: { clientMaxWindowBits: 10 },
    response: `${PD}; client_max_window_bits=9`,
    params: { clientMaxWindowBits: 9 },
  },
  {
    name: 'client limit needs client_max_window_bits in the offer',
    offer: PD,
    options: { clientMaxWindowBits: 10 },
    response: null,
  },
  {
    name: 'client limit 15 accepts offers without it',
    offer: PD,
    options: { clientMaxWindowBits: 15 },
    response: PD,
    params: {},
  },

  // Unknown parameters
  { name: 'unknown parameter without a value', offer: `${PD}; foo`, response: null },
  { name: 'unknown parameter with a value', offer: `${PD}; foo=1`, response: null },
  { name: 'parameter names are case-sensitive', offer: `${PD}; Server_No_Context_Takeover`, response: null },
  {
    name: 'unknown parameter next to valid ones',
    offer: `${PD}; server_no_context_takeover; mystery=9`,
    response: null,
  },

  // All four, and order
  {
    name: 'all four parameters',
    offer: `${PD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9`,
    response: `${PD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9`,
    params: {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 9,
    },
  },
  {
    name: 'parameter order in the offer does not matter',
    offer: `${PD}; client_max_window_bits=11; server_max_window_bits=12; client_no_context_takeover; server_no_context_takeover`,
    response: `${PD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11`,
    params: {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 12,
      clientMaxWindowBits: 11,
    },
  },

  // Several offers in one header: the first acceptable one wins.
  {
    name: 'invalid offer skipped for the next',
    offer: `${PD}; server_max_window_bits=7, ${PD}; server_max_window_bits=10, ${PD}`,
    response: `${PD}; server_max_window_bits=10`,
    params: { serverMaxWindowBits: 10 },
  },
  {
    name: 'offer with an unknown parameter skipped',
    offer: `${PD}; foo, ${PD}; client_no_context_takeover`,
    response: `${PD}; client_no_context_takeover`,
    params: { clientNoContextTakeover: true },
  },
  {
    name: 'offer with a repeated parameter skipped',
    offer: `${PD}; client_max_window_bits; client_max_window_bits, ${PD}; server_no_context_takeover`,
    response: `${PD}; server_no_context_takeover`,
    params: { serverNoContextTakeover: true },
  },
  {
    name: 'the first acceptable offer wins over later ones',
    offer: `${PD}, ${PD}; server_no_context_takeover`,
    response: PD,
    params: {},
  },
  {
    name: 'offer the server cannot limit skipped for one it can',
    offer: `${PD}, ${PD}; client_max_window_bits`,
    options: { clientMaxWindowBits: 9 },
    response: `${PD}; client_max_window_bits=9`,
    params: { clientMaxWindowBits: 9 },
  },
  {
    name: 'offers mixed with other extensions',
    offer: `x-a, ${PD}; bogus, x-b; q=1, ${PD}; server_max_window_bits="11"`,
    response: `${PD}; server_max_window_bits=11`,
    params: { serverMaxWindowBits: 11 },
  },
  {
    name: 'every offer invalid',
    offer: `${PD}; a, ${PD}; server_max_window_bits, ${PD}; client_max_window_bits=99`,
    response: null,
  },
  { name: 'browser offer (Chrome, Firefox)', offer: `${PD}; client_max_window_bits`, response: PD, params: {} },
];

describe('acceptDeflateOffer (server side)', () => {
  for (const row of SERVER_TABLE) {
    it(row.name, () => {
      const result = acceptDeflateOffer(parse(row.offer), row.options);
      if (row.response === null) {
        assert.equal(result, null);
        return;
      }
      assert.ok(result !== null, 'expected the offer to be accepted');
      assert.equal(result.response, row.response);
      assert.deepEqual(result.params, params(row.params ?? {}));
      // The response must itself be well formed.
      assert.ok(parseExtensions(result.response) !== null);
    });
  }

  it('declines an empty list', () => {
    assert.equal(acceptDeflateOffer([]), null);
  });
});

// ---------------------------------------------------------------------------------------------

describe('deflateOffer (client side)', () => {
  const rows: Array<[DeflateOptions, string]> = [
    [{}, `${PD}; client_max_window_bits`],
    [{ serverNoContextTakeover: true }, `${PD}; server_no_context_takeover; client_max_window_bits`],
    [{ clientNoContextTakeover: true }, `${PD}; client_no_context_takeover; client_max_window_bits`],
    [{ serverMaxWindowBits: 10 }, `${PD}; server_max_window_bits=10; client_max_window_bits`],
    [{ serverMaxWindowBits: 8 }, `${PD}; server_max_window_bits=8; client_max_window_bits`],
    [{ clientMaxWindowBits: 12 }, `${PD}; client_max_window_bits=12`],
    [{ serverNoContextTakeover: false, clientNoContextTakeover: false }, `${PD}; client_max_window_bits`],
    [
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 11 },
      `${PD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11`,
    ],
  ];
  for (const [options, expected] of rows) {
    it(`${JSON.stringify(options)} -> ${expected}`, () => {
      const offer = deflateOffer(options);
      assert.equal(offer, expected);
      assert.ok(parseExtensions(offer) !== null);
    });
  }
});

interface ClientRow {
  name: string;
  options?: DeflateOptions;
  /** The server's Sec-WebSocket-Extensions value; null for no header at all. */
  response: string | null;
  /** Agreed parameters, 'error' (fail the connection) or null (no compression). */
  expect: Partial<DeflateParams> | 'error' | null;
}

const CLIENT_TABLE: ClientRow[] = [
  { name: 'no extensions header', response: null, expect: null },
  { name: 'only other extensions', response: 'x-foo', expect: null },
  { name: 'bare response', response: PD, expect: {} },
  {
    name: 'other extensions are left to the caller',
    response: `x-foo, ${PD}; server_no_context_takeover`,
    expect: { serverNoContextTakeover: true },
  },
  { name: 'permessage-deflate twice', response: `${PD}, ${PD}`, expect: 'error' },
  {
    name: 'permessage-deflate twice with other parameters',
    response: `${PD}; server_no_context_takeover, ${PD}; client_no_context_takeover`,
    expect: 'error',
  },

  // Unknown and repeated parameters
  { name: 'unknown parameter', response: `${PD}; foo`, expect: 'error' },
  { name: 'unknown parameter with a value', response: `${PD}; foo=bar`, expect: 'error' },
  { name: 'parameter names are case-sensitive', response: `${PD}; Client_No_Context_Takeover`, expect: 'error' },

  // server_no_context_takeover
  {
    name: 'server_no_context_takeover unasked',
    response: `${PD}; server_no_context_takeover`,
    expect: { serverNoContextTakeover: true },
  },
  {
    name: 'server_no_context_takeover asked and given',
    options: { serverNoContextTakeover: true },
    response: `${PD}; server_no_context_takeover`,
    expect: { serverNoContextTakeover: true },
  },
  {
    name: 'server_no_context_takeover asked but missing',
    options: { serverNoContextTakeover: true },
    response: PD,
    expect: 'error',
  },
  { name: 'server_no_context_takeover with a value', response: `${PD}; server_no_context_takeover=1`, expect: 'error' },
  {
    name: 'server_no_context_takeover repeated',
    response: `${PD}; server_no_context_takeover; server_no_context_takeover`,
    expect: 'error',
  },

  // client_no_context_takeover
  {
    name: 'client_no_context_takeover imposed',
    response: `${PD}; client_no_context_takeover`,
    expect: { clientNoContextTakeover: true },
  },
  {
    name: 'client_no_context_takeover offered and echoed',
    options: { clientNoContextTakeover: true },
    response: `${PD}; client_no_context_takeover`,
    expect: { clientNoContextTakeover: true },
  },
  {
    name: 'client_no_context_takeover offered, ignored: we keep to it',
    options: { clientNoContextTakeover: true },
    response: PD,
    expect: { clientNoContextTakeover: true },
  },
  {
    name: 'client_no_context_takeover with a value',
    response: `${PD}; client_no_context_takeover="yes"`,
    expect: 'error',
  },
  {
    name: 'client_no_context_takeover repeated',
    response: `${PD}; client_no_context_takeover; client_no_context_takeover`,
    expect: 'error',
  },

  // server_max_window_bits
  {
    name: 'server_max_window_bits unasked',
    response: `${PD}; server_max_window_bits=10`,
    expect: { serverMaxWindowBits: 10 },
  },
  {
    name: 'server_max_window_bits=8 unasked',
    response: `${PD}; server_max_window_bits=8`,
    expect: { serverMaxWindowBits: 8 },
  },
  {
    name: 'server_max_window_bits quoted',
    response: `${PD}; server_max_window_bits="13"`,
    expect: { serverMaxWindowBits: 13 },
  },
  { name: 'server_max_window_bits without a value', response: `${PD}; server_max_window_bits`, expect: 'error' },
  { name: 'server_max_window_bits=7', response: `${PD}; server_max_window_bits=7`, expect: 'error' },
  { name: 'server_max_window_bits=16', response: `${PD}; server_max_window_bits=16`, expect: 'error' },
  { name: 'server_max_window_bits=010', response: `${PD}; server_max_window_bits=010`, expect: 'error' },
  {
    name: 'server_max_window_bits repeated',
    response: `${PD}; server_max_window_bits=10; server_max_window_bits=10`,
    expect: 'error',
  },
  {
    name: 'server_max_window_bits equal to the request',
    options: { serverMaxWindowBits: 10 },
    response: `${PD}; server_max_window_bits=10`,
    expect: { serverMaxWindowBits: 10 },
  },
  {
    name: 'server_max_window_bits below the request',
    options: { serverMaxWindowBits: 10 },
    response: `${PD}; server_max_window_bits=9`,
    expect: { serverMaxWindowBits: 9 },
  },
  {
    name: 'server_max_window_bits above the request',
    options: { serverMaxWindowBits: 10 },
    response: `${PD}; server_max_window_bits=11`,
    expect: 'error',
  },
  {
    name: 'server_max_window_bits requested but missing',
    options: { serverMaxWindowBits: 10 },
    response: PD,
    expect: 'error',
  },

  // client_max_window_bits (always offered, without a value unless configured)
  {
    name: 'client_max_window_bits limits a bare offer',
    response: `${PD}; client_max_window_bits=10`,
    expect: { clientMaxWindowBits: 10 },
  },
  { name: 'client_max_window_bits=8', response: `${PD}; client_max_window_bits=8`, expect: { clientMaxWindowBits: 8 } },
  { name: 'client_max_window_bits=15', response: `${PD}; client_max_window_bits=15`, expect: {} },
  { name: 'client_max_window_bits without a value', response: `${PD}; client_max_window_bits`, expect: 'error' },
  { name: 'client_max_window_bits=16', response: `${PD}; client_max_window_bits=16`, expect: 'error' },
  { name: 'client_max_window_bits=08', response: `${PD}; client_max_window_bits=08`, expect: 'error' },
  {
    name: 'client_max_window_bits repeated',
    response: `${PD}; client_max_window_bits=10; client_max_window_bits=11`,
    expect: 'error',
  },
  {
    name: 'configured client window kept when not answered',
    options: { clientMaxWindowBits: 12 },
    response: PD,
    expect: { clientMaxWindowBits: 12 },
  },
  {
    name: 'configured client window lowered',
    options: { clientMaxWindowBits: 12 },
    response: `${PD}; client_max_window_bits=10`,
    expect: { clientMaxWindowBits: 10 },
  },
  {
    name: 'configured client window answered equal',
    options: { clientMaxWindowBits: 12 },
    response: `${PD}; client_max_window_bits=12`,
    expect: { clientMaxWindowBits: 12 },
  },
  {
    name: 'configured client window answered larger',
    options: { clientMaxWindowBits: 12 },
    response: `${PD}; client_max_window_bits=13`,
    expect: 'error',
  },

  // All four
  {
    name: 'all four parameters',
    options: { serverNoContextTakeover: true, serverMaxWindowBits: 12 },
    response: `${PD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=9`,
    expect: {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 11,
      clientMaxWindowBits: 9,
    },
  },
  {
    name: 'one bad parameter among good ones',
    response: `${PD}; server_no_context_takeover; client_max_window_bits=9; server_max_window_bits=99`,
    expect: 'error',
  },
];

describe('acceptDeflateResponse (client side)', () => {
  for (const row of CLIENT_TABLE) {
    it(row.name, () => {
      const result = acceptDeflateResponse(row.response === null ? [] : parse(row.response), row.options);
      if (row.expect === null) {
        assert.equal(result, null);
      } else if (row.expect === 'error') {
        assert.ok(result !== null && 'error' in result, `expected an error, got ${JSON.stringify(result)}`);
        assert.equal(typeof result.error, 'string');
        assert.ok(result.error.length > 0);
      } else {
        assert.deepEqual(result, params(row.expect));
      }
    });
  }
});

describe('option validation', () => {
  const bad = [7, 16, 0, -1, 9.5, Number.NaN, Number.POSITIVE_INFINITY];
  for (const key of ['serverMaxWindowBits', 'clientMaxWindowBits'] as const) {
    it(`${key} outside 8..15 or not an integer throws RangeError on every entry point`, () => {
      for (const bits of bad) {
        const options: DeflateOptions = { [key]: bits };
        assert.throws(() => deflateOffer(options), RangeError, `${key}=${bits}`);
        assert.throws(() => acceptDeflateOffer(parse(PD), options), RangeError, `${key}=${bits}`);
        assert.throws(() => acceptDeflateResponse(parse(PD), options), RangeError, `${key}=${bits}`);
      }
      for (const bits of [8, 9, 15]) {
        assert.doesNotThrow(() => deflateOffer({ [key]: bits }));
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('round trips', () => {
  const clientChoices: DeflateOptions[] = [];
  for (const serverNoContextTakeover of [false, true]) {
    for (const clientNoContextTakeover of [false, true]) {
      for (const serverMaxWindowBits of [undefined, 8, 10, 15]) {
        for (const clientMaxWindowBits of [undefined, 8, 9, 12, 15]) {
          clientChoices.push({
            serverNoContextTakeover,
            clientNoContextTakeover,
            serverMaxWindowBits,
            clientMaxWindowBits,
          });
        }
      }
    }
  }
  const serverChoices: DeflateOptions[] = [];
  for (const serverNoContextTakeover of [false, true]) {
    for (const clientNoContextTakeover of [false, true]) {
      for (const serverMaxWindowBits of [undefined, 8, 11, 15]) {
        for (const clientMaxWindowBits of [undefined, 8, 10, 15]) {
          serverChoices.push({
            serverNoContextTakeover,
            clientNoContextTakeover,
            serverMaxWindowBits,
            clientMaxWindowBits,
          });
        }
      }
    }
  }

  it(`every client x server option combination agrees (${clientChoices.length} x ${serverChoices.length})`, () => {
    for (const client of clientChoices) {
      for (const server of serverChoices) {
        const label = `client ${JSON.stringify(client)} server ${JSON.stringify(server)}`;
        const accepted = acceptDeflateOffer(parse(deflateOffer(client)), server);
        // Our offer always carries client_max_window_bits, so no server configuration declines it.
        assert.ok(accepted !== null, label);
        const agreed = acceptDeflateResponse(parse(accepted.response), client);
        assert.deepEqual(agreed, accepted.params, label);
        // The agreement is the stricter of both wishes.
        assert.deepEqual(
          accepted.params,
          {
            serverNoContextTakeover: client.serverNoContextTakeover === true || server.serverNoContextTakeover === true,
            clientNoContextTakeover: client.clientNoContextTakeover === true || server.clientNoContextTakeover === true,
            serverMaxWindowBits: Math.min(client.serverMaxWindowBits ?? 15, server.serverMaxWindowBits ?? 15),
            clientMaxWindowBits: Math.min(client.clientMaxWindowBits ?? 15, server.clientMaxWindowBits ?? 15),
          },
          label,
        );
      }
    }
  });

  it('the chosen offer among several is the one the client checks the response against', () => {
    // A client that sent fallbacks: the server picks the second, which the client (configured
    // like that second offer) accepts.
    const header = `${PD}; server_max_window_bits=7, ${deflateOffer({ serverMaxWindowBits: 10 })}, ${PD}`;
    const accepted = acceptDeflateOffer(parse(header), {});
    assert.ok(accepted !== null);
    assert.equal(accepted.response, `${PD}; server_max_window_bits=10`);
    assert.deepEqual(acceptDeflateResponse(parse(accepted.response), { serverMaxWindowBits: 10 }), accepted.params);
  });

  it('an offer without client_max_window_bits is declined by a server limiting the client', () => {
    assert.equal(acceptDeflateOffer(parse(PD), { clientMaxWindowBits: 12 }), null);
    assert.notEqual(acceptDeflateOffer(parse(deflateOffer({})), { clientMaxWindowBits: 12 }), null);
  });

  it('responses survive extra whitespace and quoting on the wire', () => {
    const wire = `${PD} ;server_no_context_takeover ; server_max_window_bits = "9" ;client_max_window_bits=10`;
    assert.deepEqual(
      acceptDeflateResponse(parse(wire), { serverNoContextTakeover: true, serverMaxWindowBits: 9 }),
      params({ serverNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 10 }),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('zlib assumption behind negotiating 8 window bits', () => {
  // Node turns windowBits 8 into 9 for raw deflate; we accept 8 because zlib still never refers
  // further back than 250 bytes then. A block of random bytes repeated at distance d compresses
  // only if a back-reference of d bytes is possible.
  function repeated(distance: number, seed: number): Buffer {
    const rng = seededRandom(seed);
    const block = Buffer.alloc(distance);
    for (let i = 0; i < distance; i++) block[i] = Math.floor(rng() * 256);
    return Buffer.concat(Array.from({ length: 20 }, () => block));
  }

  it('windowBits 8 finds repeats within 250 bytes', () => {
    const data = repeated(250, 1);
    assert.ok(deflateRawSync(data, { windowBits: 8 }).length < data.length / 4);
  });

  it('windowBits 8 never refers more than 256 bytes back', () => {
    for (const distance of [257, 300, 400, 511]) {
      const data = repeated(distance, distance);
      const compressed = deflateRawSync(data, { windowBits: 8 }).length;
      assert.ok(compressed > data.length * 0.9, `distance ${distance}: ${compressed} of ${data.length} bytes`);
    }
  });
});
