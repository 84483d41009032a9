/**
 * FrameParser: bytes in, protocol events out (RFC 6455 sections 5 and 7). Sans-I/O: it never
 * touches a socket or a timer, so it can be fed byte by byte in tests and fuzzed on its own.
 *
 * It reassembles fragmented messages, lets control frames interleave with fragments, unmasks,
 * validates UTF-8 of text messages fragment by fragment (failing in the fragment where the
 * invalid byte arrives), enforces maxPayload before buffering, and checks every rule a
 * receiver must: reserved bits and opcodes, masking direction, control frame size and FIN,
 * minimal length encoding, close codes and close reasons.
 */
import { CloseCode, closeCodeIsValid } from './close-codes.js';
import { ProtocolError } from './errors.js';
import { applyMask } from './mask.js';
import { MAX_CONTROL_PAYLOAD, Opcode } from './opcodes.js';
import { Utf8Validator, isValidUtf8 } from './utf8.js';

/** Receives what the parser finds. Implemented by the connection (one object, no closures). */
export interface FrameParserHandler {
  /** A complete message. `data` is a slice of received bytes where possible (no copy). */
  onMessage(data: Buffer, isBinary: boolean): void;
  onPing(data: Buffer): void;
  onPong(data: Buffer): void;
  /** A valid Close frame. `code` is 1005 when the frame carried no code. */
  onClose(code: number, reason: Buffer): void;
  /** The peer broke the protocol; the parser has stopped. Fail the connection with `err.closeCode`. */
  onProtocolError(err: ProtocolError): void;
}

export interface FrameParserOptions {
  /** Frames must be masked (a server reading a client) or must not be (a client reading a server). */
  expectMasked: boolean;
  /** Largest message (sum of its fragments) accepted; 0 means no limit. Over it: close 1009. */
  maxPayload: number;
}

const enum State {
  Header,
  Length16,
  Length64,
  MaskKey,
  Payload,
  Stopped,
}

const EMPTY = Buffer.alloc(0);

export class FrameParser {
  private readonly handler: FrameParserHandler;
  private readonly expectMasked: boolean;
  private readonly maxPayload: number;

  // Unconsumed input: chunks[0] is read from `offset` on.
  private chunks: Buffer[] = [];
  private offset = 0;
  private buffered = 0;

  private state: State = State.Header;
  // Current frame.
  private fin = false;
  private opcode = 0;
  private masked = false;
  private payloadLength = 0;
  private readonly maskKey = Buffer.alloc(4);

  // Current fragmented data message (opcode 0 when none is in progress).
  private messageOpcode = 0;
  private messageLength = 0;
  private fragments: Buffer[] = [];
  private readonly utf8 = new Utf8Validator();

  constructor(handler: FrameParserHandler, options: FrameParserOptions) {
    this.handler = handler;
    this.expectMasked = options.expectMasked;
    this.maxPayload = options.maxPayload;
  }

  /** True once a Close frame was received or a protocol error found: further input is ignored. */
  get stopped(): boolean {
    return this.state === State.Stopped;
  }

  /** Stop parsing; later input is dropped. Used when the connection goes away. */
  stop(): void {
    this.state = State.Stopped;
    this.chunks = [];
    this.fragments = [];
    this.buffered = 0;
  }

  /** Feed received bytes, in any split. Handler callbacks run synchronously from here. */
  push(chunk: Buffer): void {
    if (this.state === State.Stopped || chunk.length === 0) return;
    if (this.buffered === 0) {
      this.chunks = [chunk];
      this.offset = 0;
    } else {
      this.chunks.push(chunk);
    }
    this.buffered += chunk.length;

    while (!this.stopped) {
      switch (this.state) {
        case State.Header:
          if (this.buffered < 2) return;
          if (!this.readHeader()) return;
          break;
        case State.Length16:
          if (this.buffered < 2) return;
          if (!this.readLength16()) return;
          break;
        case State.Length64:
          if (this.buffered < 8) return;
          if (!this.readLength64()) return;
          break;
        case State.MaskKey:
          if (this.buffered < 4) return;
          this.take(4).copy(this.maskKey);
          this.state = State.Payload;
          break;
        case State.Payload:
          if (this.buffered < this.payloadLength) return;
          this.readPayload();
          break;
      }
    }
  }

  private fail(code: ConstructorParameters<typeof ProtocolError>[0], message: string, closeCode: number = CloseCode.PROTOCOL_ERROR): false {
    this.stop();
    this.handler.onProtocolError(new ProtocolError(code, message, closeCode));
    return false;
  }

  /** Read `n` bytes (n <= buffered): a slice when they lie in one chunk, a copy otherwise. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    const available = first.length - this.offset;
    if (n <= available) {
      const out = first.subarray(this.offset, this.offset + n);
      if (n === available) {
        this.chunks.shift();
        this.offset = 0;
      } else {
        this.offset += n;
      }
      return out;
    }
    // Spread over several chunks: one copy. Walk by index and drop the used chunks with one
    // splice; shifting them one by one costs O(chunks^2) when a big frame came in tiny pieces.
    const out = Buffer.allocUnsafe(n);
    const chunks = this.chunks;
    let written = 0;
    let index = 0;
    let from = this.offset;
    while (written < n) {
      const chunk = chunks[index];
      const count = Math.min(chunk.length - from, n - written);
      chunk.copy(out, written, from, from + count);
      written += count;
      if (from + count === chunk.length) {
        index++;
        from = 0;
      } else {
        from += count;
      }
    }
    chunks.splice(0, index);
    this.offset = from;
    return out;
  }

  /** Byte `i` of the unconsumed input without consuming it. */
  private peek(i: number): number {
    let index = this.offset + i;
    for (const chunk of this.chunks) {
      if (index < chunk.length) return chunk[index];
      index -= chunk.length;
    }
    return 0;
  }

  private readHeader(): boolean {
    const b0 = this.peek(0);
    const b1 = this.peek(1);
    this.take(2);
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    this.fin = fin;
    this.opcode = opcode;
    this.masked = (b1 & 0x80) !== 0;
    this.payloadLength = b1 & 0x7f;

    if ((b0 & 0x40) !== 0) return this.fail('WS_ERR_UNEXPECTED_RSV_1', 'RSV1 must be clear');
    if ((b0 & 0x30) !== 0) return this.fail('WS_ERR_UNEXPECTED_RSV_2_3', 'RSV2 and RSV3 must be clear');

    switch (opcode) {
      case Opcode.CONTINUATION:
        if (this.messageOpcode === 0) return this.fail('WS_ERR_UNEXPECTED_CONTINUATION', 'continuation frame without a message in progress');
        break;
      case Opcode.TEXT:
      case Opcode.BINARY:
        if (this.messageOpcode !== 0) return this.fail('WS_ERR_EXPECTED_CONTINUATION', 'new data frame before the fragmented message ended');
        break;
      case Opcode.CLOSE:
      case Opcode.PING:
      case Opcode.PONG:
        if (!fin) return this.fail('WS_ERR_EXPECTED_FIN', 'control frames must not be fragmented');
        if (this.payloadLength > MAX_CONTROL_PAYLOAD) return this.fail('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 'control frame payload over 125 bytes');
        break;
      default:
        return this.fail('WS_ERR_INVALID_OPCODE', `invalid opcode 0x${opcode.toString(16)}`);
    }

    if (this.masked !== this.expectMasked) {
      return this.expectMasked
        ? this.fail('WS_ERR_EXPECTED_MASK', 'client frames must be masked')
        : this.fail('WS_ERR_UNEXPECTED_MASK', 'server frames must not be masked');
    }

    if (this.payloadLength === 126) this.state = State.Length16;
    else if (this.payloadLength === 127) this.state = State.Length64;
    else return this.afterLength();
    return true;
  }

  private readLength16(): boolean {
    const length = (this.peek(0) << 8) | this.peek(1);
    this.take(2);
    if (length < 126) return this.fail('WS_ERR_NON_MINIMAL_LENGTH', 'length not minimally encoded');
    this.payloadLength = length;
    return this.afterLength();
  }

  private readLength64(): boolean {
    const bytes = this.take(8);
    const high = bytes.readUInt32BE(0);
    const low = bytes.readUInt32BE(4);
    if (high & 0x80000000) return this.fail('WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'the most significant bit of a 64-bit length must be 0');
    // Above 2^53 - 1 the length is not even representable; no receiver can hold it.
    if (high > 0x1fffff) return this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'payload length over 2^53 - 1', CloseCode.MESSAGE_TOO_BIG);
    const length = high * 0x100000000 + low;
    if (length <= 0xffff) return this.fail('WS_ERR_NON_MINIMAL_LENGTH', 'length not minimally encoded');
    this.payloadLength = length;
    return this.afterLength();
  }

  private afterLength(): boolean {
    if (this.maxPayload > 0 && this.opcode < 0x8 && this.messageLength + this.payloadLength > this.maxPayload) {
      return this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', `message over maxPayload (${this.maxPayload} bytes)`, CloseCode.MESSAGE_TOO_BIG);
    }
    this.state = this.masked ? State.MaskKey : State.Payload;
    return true;
  }

  private readPayload(): void {
    const length = this.payloadLength;
    const payload = length === 0 ? EMPTY : this.take(length);
    if (this.masked && length > 0) applyMask(payload, this.maskKey, 0);
    this.state = State.Header;

    const opcode = this.opcode;
    if (opcode >= 0x8) {
      this.controlFrame(opcode, payload);
      return;
    }

    if (opcode !== Opcode.CONTINUATION) {
      this.messageOpcode = opcode;
    }
    const isText = this.messageOpcode === Opcode.TEXT;
    if (this.fin && this.fragments.length === 0) {
      // Unfragmented message: the common case, no copy.
      this.messageOpcode = 0;
      if (isText && !isValidUtf8(payload)) {
        this.fail('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in text message', CloseCode.INVALID_PAYLOAD);
        return;
      }
      this.handler.onMessage(payload, !isText);
      return;
    }

    if (isText && !this.utf8.push(payload)) {
      this.fail('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in text message', CloseCode.INVALID_PAYLOAD);
      return;
    }
    if (length > 0) this.fragments.push(payload);
    this.messageLength += length;
    if (!this.fin) return;

    if (isText) {
      const complete = this.utf8.complete;
      this.utf8.reset();
      if (!complete) {
        this.fail('WS_ERR_INVALID_UTF8', 'text message ends inside a UTF-8 sequence', CloseCode.INVALID_PAYLOAD);
        return;
      }
    }
    const fragments = this.fragments;
    const data = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments, this.messageLength);
    this.fragments = [];
    this.messageLength = 0;
    this.messageOpcode = 0;
    this.handler.onMessage(data, !isText);
  }

  private controlFrame(opcode: number, payload: Buffer): void {
    if (opcode === Opcode.PING) {
      this.handler.onPing(payload);
      return;
    }
    if (opcode === Opcode.PONG) {
      this.handler.onPong(payload);
      return;
    }
    // Close
    if (payload.length === 0) {
      this.stop();
      this.handler.onClose(CloseCode.NO_STATUS_RECEIVED, EMPTY);
      return;
    }
    if (payload.length === 1) {
      this.fail('WS_ERR_INVALID_CLOSE_PAYLOAD', 'close frame payload of 1 byte');
      return;
    }
    const code = payload.readUInt16BE(0);
    if (!closeCodeIsValid(code)) {
      this.fail('WS_ERR_INVALID_CLOSE_CODE', `invalid close code ${code}`);
      return;
    }
    const reason = payload.subarray(2);
    if (!isValidUtf8(reason)) {
      this.fail('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in close reason', CloseCode.INVALID_PAYLOAD);
      return;
    }
    this.stop();
    this.handler.onClose(code, reason);
  }
}
