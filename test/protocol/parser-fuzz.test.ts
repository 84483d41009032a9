/**
 * Parser-level fuzz: random and mutated byte strings fed to FrameParser in random splits. It
 * must never throw; whole, byte-by-byte and randomly split feeding must give identical event
 * lists; and those events must match the independent oracle in test/fuzz-model.ts.
 *
 * Seeded: set FUZZ_SEED=<n> to replay a reported failure (FUZZ_PARSER_CASES to change the count).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { FrameParser, type FrameParserHandler } from '../../src/protocol/parser.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import { seededRandom } from '../helpers.js';
import { chance, generateSequence, hex, int, pick, predict, randomBuffer, type Rng } from '../fuzz-model.js';

const SEED =
  process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const CASES = Number(process.env.FUZZ_PARSER_CASES ?? 20000);

type ParserEvent =
  | { type: 'message'; binary: boolean; data: string }
  | { type: 'ping' | 'pong'; data: string }
  | { type: 'close'; code: number; reason: string }
  | { type: 'fail'; closeCode: number; code: string };

class Recorder implements FrameParserHandler {
  readonly events: ParserEvent[] = [];
  onMessage(data: Buffer, isBinary: boolean): void {
    this.events.push({ type: 'message', binary: isBinary, data: data.toString('hex') });
  }
  onPing(data: Buffer): void {
    this.events.push({ type: 'ping', data: data.toString('hex') });
  }
  onPong(data: Buffer): void {
    this.events.push({ type: 'pong', data: data.toString('hex') });
  }
  onClose(code: number, reason: Buffer): void {
    this.events.push({ type: 'close', code, reason: reason.toString('hex') });
  }
  onProtocolError(err: ProtocolError): void {
    this.events.push({ type: 'fail', closeCode: err.closeCode, code: err.code });
  }
}

/** Feed `input` cut at `cuts` (sorted offsets); the parser gets fresh copies (it unmasks in place). */
function feed(
  input: Buffer,
  cuts: number[],
  opts: { maxPayload: number; expectMasked: boolean },
): { events: ParserEvent[]; threw?: unknown; stopped: boolean } {
  const rec = new Recorder();
  const parser = new FrameParser(rec, opts);
  let from = 0;
  try {
    for (const to of [...cuts, input.length]) {
      parser.push(Buffer.from(input.subarray(from, to)));
      from = to;
    }
  } catch (err) {
    return { events: rec.events, threw: err, stopped: parser.stopped };
  }
  return { events: rec.events, stopped: parser.stopped };
}

function byteCuts(n: number): number[] {
  return Array.from({ length: Math.max(0, n - 1) }, (_, i) => i + 1);
}

function randomCuts(rng: Rng, n: number): number[] {
  const count = int(rng, 0, Math.min(12, n));
  return Array.from({ length: count }, () => int(rng, 0, n)).sort((a, b) => a - b);
}

/** A random, generated or mutated input. */
function makeInput(rng: Rng, cfg: { maxPayload: number; masked: boolean }): Buffer {
  const r = rng();
  if (r < 0.15) return randomBuffer(rng, int(rng, 0, 64));
  if (r < 0.25) {
    // Plausible first byte and length byte, random rest.
    const head = Buffer.from([
      pick(rng, [0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89, 0x8a, 0x09, 0xc1, 0x83]),
      (cfg.masked ? 0x80 : 0) | pick(rng, [0, 1, 2, 5, 125, 126, 127, int(rng, 0, 127)]),
    ]);
    return Buffer.concat([head, randomBuffer(rng, int(rng, 0, 80))]);
  }
  let bytes = Buffer.concat(generateSequence(rng, { ...cfg, large: false }).frames);
  if (chance(rng, 0.3)) bytes = Buffer.concat([bytes, ...generateSequence(rng, { ...cfg, large: false }).frames]);
  if (r < 0.45 && bytes.length > 0) {
    // Byte-level mutations: overwrite, insert, delete, truncate.
    const edits = int(rng, 1, 3);
    for (let e = 0; e < edits && bytes.length > 0; e++) {
      const at = int(rng, 0, bytes.length - 1);
      const op = int(rng, 0, 3);
      if (op === 0) bytes[at] = int(rng, 0, 255);
      else if (op === 1)
        bytes = Buffer.concat([bytes.subarray(0, at), randomBuffer(rng, int(rng, 1, 4)), bytes.subarray(at)]);
      else if (op === 2) bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + int(rng, 1, 4))]);
      else bytes = bytes.subarray(0, at);
    }
  }
  return bytes;
}

/** The oracle's prediction in the parser's event vocabulary (fail events without the string code). */
function expectedEvents(input: Buffer, cfg: { maxPayload: number; masked: boolean }): string[] {
  const { events, end } = predict(input, cfg);
  const out = events.map((e) =>
    e.type === 'message'
      ? `message ${e.binary ? 'binary' : 'text'} ${e.data.toString('hex')}`
      : `${e.type} ${e.data.toString('hex')}`,
  );
  if (end.type === 'close') out.push(`close ${end.code} ${end.reason.toString('hex')}`);
  if (end.type === 'fail') out.push(`fail ${end.code}`);
  return out;
}

function comparable(events: ParserEvent[]): string[] {
  return events.map((e) => {
    switch (e.type) {
      case 'message':
        return `message ${e.binary ? 'binary' : 'text'} ${e.data}`;
      case 'close':
        return `close ${e.code} ${e.reason}`;
      case 'fail':
        return `fail ${e.closeCode}`;
      default:
        return `${e.type} ${e.data}`;
    }
  });
}

test(
  `FrameParser fuzz: ${CASES} inputs never throw, split-independent, match the oracle (FUZZ_SEED=${SEED})`,
  { timeout: 60_000 },
  () => {
    const master = seededRandom(SEED);
    const failures: string[] = [];
    for (let i = 0; i < CASES && failures.length < 5; i++) {
      const caseSeed = Math.floor(master() * 2 ** 32);
      const rng = seededRandom(caseSeed);
      const cfg = { maxPayload: pick(rng, [125, 300, 70_000]), masked: chance(rng, 0.85) };
      const opts = { maxPayload: cfg.maxPayload, expectMasked: cfg.masked };
      const input = makeInput(rng, cfg);
      const where = `case ${i} (FUZZ_SEED=${SEED}, case seed ${caseSeed}), maxPayload ${cfg.maxPayload}, expectMasked ${cfg.masked}, input ${hex(input)}`;

      const whole = feed(input, [], opts);
      const bytewise = feed(input, byteCuts(input.length), opts);
      const cuts = randomCuts(rng, input.length);
      const split = feed(input, cuts, opts);
      const threw = whole.threw ?? bytewise.threw ?? split.threw;
      if (threw !== undefined) {
        failures.push(`${where}: parser threw ${inspect(threw)}`);
        continue;
      }
      try {
        assert.deepEqual(bytewise.events, whole.events, 'byte-by-byte vs whole');
        assert.deepEqual(split.events, whole.events, `split at ${cuts.join(',')} vs whole`);
        assert.deepEqual(comparable(whole.events), expectedEvents(input, cfg), 'parser vs oracle');
        const last = whole.events.at(-1);
        assert.equal(
          whole.stopped,
          last?.type === 'close' || last?.type === 'fail',
          'stopped exactly after close or failure',
        );
      } catch (err) {
        const end = predict(input, cfg).end;
        failures.push(
          `${where}; oracle: ${end.type === 'fail' ? `fail ${end.code}, ${end.why}` : end.type}: ${(err as Error).message}`,
        );
      }
    }
    assert.equal(
      failures.length,
      0,
      `FrameParser fuzz failures (replay with FUZZ_SEED=${SEED}):\n${failures.join('\n\n')}`,
    );
  },
);
