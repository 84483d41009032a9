/**
 * FrameParser: bytes in, protocol events out (RFC 6455 sections 5 and 7). Sans-I/O: it never
 * touches a socket or a timer, so it can be fed byte by byte in tests and fuzzed on its own.
 *
 * It reassembles fragmented messages, lets control frames interleave with fragments, unmasks,
 * validates UTF-8 of text messages as the bytes arrive (failing in the push that brings the
 * first impossible byte, even inside a frame whose rest has not come, as RFC 6455 section 8.1
 * asks), enforces maxPayload before buffering, and checks every rule a receiver must: reserved
 * bits and opcodes, masking direction, control frame size and FIN, minimal length encoding,
 * close codes and close reasons.
 *
 * Why one file of ~500 lines: the parser is one state machine (header, extended length, mask,
 * payload, per frame; assembly per message) whose states share a handful of fields on the hot
 * path. Split over files, each state would have to reach into the others' fields.
 */
import { kMaxLength } from 'node:buffer';
import { CloseCode, closeCodeIsValid } from './close-codes.js';
import { createError, type ProtocolError, type ProtocolErrorCode } from './errors.js';
import { applyMask } from './mask.js';
import { MAX_CONTROL_PAYLOAD, Opcode } from './opcodes.js';
import { Utf8Validator, isValidUtf8 } from './utf8.js';

/** Receives what the parser finds. Implemented by the connection (one object, no closures). */
export interface FrameParserHandler {
  /**
   * A complete message. `data` is a slice of received bytes where possible (no copy).
   * `compressed`: the message had RSV1 set (permessage-deflate); `data` is still deflated and
   * its UTF-8 was not checked. The handler may call `pause()` to inflate it before the parser
   * goes on to the frames behind it.
   */
  onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void;
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
  /**
   * Most frames one data message may arrive in: its first frame and every continuation frame,
   * empty ones included (control frames between them do not count). 0 or absent means no
   * limit. Over it: close 1009 (WS_ERR_TOO_MANY_BUFFERED_PARTS, ws's code for its maxFragments) at the header of the frame that
   * goes over, so a peer cannot keep one message open with endless tiny or empty fragments.
   */
  maxFragments?: number;
  /**
   * permessage-deflate was negotiated: RSV1 may be set on the first frame of a data message
   * (RFC 7692 section 6). Otherwise RSV1 is a protocol error (1002).
   */
  allowCompressed?: boolean;
}

const enum State {
  Header,
  Payload,
  Stopped,
}

const EMPTY = Buffer.alloc(0);
const SCRATCH_KEY = Buffer.alloc(4);

/** Header size implied by the second header byte: 2, plus 2 or 8 length bytes, plus a 4-byte mask key. */
function headerSize(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0);
}

/**
 * Capacity for a buffer that must hold `needed` bytes, growing from `current` by doubling, at
 * most `limit`. A frame's first allocation takes up to 64 KiB at once (`limit` is its exact
 * length), and for frames up to 16 MiB the whole length is allocated once an eighth of it has
 * arrived, so a large frame split over many reads is copied about once, not once per doubling.
 * A fragmented message starts at 4 KiB, since its final size is unknown and the user receives
 * a view of the buffer. Either way memory follows the bytes actually received (within a factor
 * of 8, and of 2 above 16 MiB), never merely a length a peer declared.
 */
const JUMP_LIMIT = 16 * 1024 * 1024;

function grownCapacity(current: number, needed: number, limit: number, first = 64 * 1024, jumpAt = 0): number {
  if (jumpAt > 0 && needed * jumpAt >= limit) return limit;
  let capacity = Math.max(current * 2, first);
  while (capacity < needed) capacity *= 2;
  return Math.min(capacity, limit);
}

export class FrameParser {
  private readonly handler: FrameParserHandler;
  private readonly expectMasked: boolean;
  private readonly maxPayload: number;
  private readonly maxFragments: number;
  private readonly allowCompressed: boolean;

  private state: State = State.Header;
  // Header bytes that arrived split over several pushes (at most 14).
  private head: Buffer | undefined;
  private headLength = 0;

  // Current frame.
  private fin = false;
  private opcode = 0;
  private masked = false;
  private rsv1 = false;
  private payloadLength = 0;
  // The mask key as a 32-bit number: per connection, no Buffer object (idle memory); it is
  // written into a shared scratch key only while a payload is unmasked, synchronously.
  private maskKey = 0;
  // A payload arriving in pieces is copied into `frameBuffer` as it comes, never kept as a
  // list of received chunks: memory follows the bytes received, not the number of reads.
  private frameBuffer: Buffer | undefined;
  private frameFilled = 0;

  // Current fragmented data message (opcode 0 when none is in progress). Fragments are copied
  // into one growing buffer: a slice would keep its whole socket read alive.
  private messageOpcode = 0;
  private messageCompressed = false;
  private messageLength = 0;
  // Frames of the current data message so far (set to 1 by its first frame).
  private messageFrames = 0;
  private messageBuffer: Buffer | undefined;
  // Text that is fragmented or arrives in pieces needs a streaming validator; made on first use.
  private utf8: Utf8Validator | undefined;

  // pause(): input waits here, in order, until resume().
  private paused = false;
  // Made on first use (most connections never pause): idle memory.
  private pending: Buffer[] | undefined;

  constructor(handler: FrameParserHandler, options: FrameParserOptions) {
    this.handler = handler;
    this.expectMasked = options.expectMasked;
    this.maxPayload = options.maxPayload;
    this.maxFragments = options.maxFragments || Infinity;
    this.allowCompressed = options.allowCompressed === true;
  }

  /** True once a Close frame was received or a protocol error found: further input is ignored. */
  get stopped(): boolean {
    return this.state === State.Stopped;
  }

  /** Stop parsing; later input is dropped. Used when the connection goes away. */
  stop(): void {
    this.state = State.Stopped;
    this.frameBuffer = undefined;
    this.messageBuffer = undefined;
    this.pending = undefined;
  }

  /**
   * Stop acting on input until resume(): bytes pushed meanwhile (and the rest of the current
   * push) are kept in order. Used while a compressed message is inflated asynchronously, so
   * the frames behind it (a Close included) are handled after it, never before.
   */
  pause(): void {
    this.paused = true;
  }

  /** True between pause() and resume(). */
  get isPaused(): boolean {
    return this.paused;
  }

  /** A fragmented message is being assembled: its first frame arrived, its last has not. */
  get assembling(): boolean {
    return this.messageOpcode !== 0;
  }

  /** Bytes kept while paused. */
  get pendingBytes(): number {
    let n = 0;
    if (this.pending !== undefined) for (const chunk of this.pending) n += chunk.length;
    return n;
  }

  /** Go on with the input kept since pause() (handler callbacks run from here). */
  resume(): void {
    this.paused = false;
    const pending = this.pending;
    if (pending === undefined) return;
    while (!this.paused && pending.length > 0 && this.state !== State.Stopped) {
      this.parse(pending.shift()!);
    }
  }

  /** Feed received bytes, in any split. Handler callbacks run synchronously from here. */
  push(chunk: Buffer): void {
    if (this.paused || (this.pending !== undefined && this.pending.length > 0)) {
      if (this.state !== State.Stopped && chunk.length > 0) (this.pending ??= []).push(chunk);
      return;
    }
    this.parse(chunk);
  }

  private parse(chunk: Buffer): void {
    const length = chunk.length;
    let pos = 0;
    while (pos < length) {
      if (this.paused) {
        (this.pending ??= []).unshift(chunk.subarray(pos));
        return;
      }
      if (this.state === State.Header) {
        const used = this.readHeader(chunk, pos);
        if (used < 0) return;
        pos += used;
      } else if (this.state === State.Payload) {
        pos += this.readPayload(chunk, pos);
      } else {
        return;
      }
    }
  }

  /** Stop and report `code` (a ProtocolError, or a LimitExceededError for a limit). */
  private fail(code: ProtocolErrorCode, message: string, closeCode?: number): false {
    this.stop();
    this.handler.onProtocolError(createError(code, message, closeCode === undefined ? {} : { closeCode }));
    return false;
  }

  /**
   * Consume header bytes from `chunk` at `pos`. Returns the bytes used, or -1 once the parser
   * stopped. Each part of the header is checked as soon as it is complete, so an error is
   * reported on the push that brings the offending byte.
   */
  private readHeader(chunk: Buffer, pos: number): number {
    const available = chunk.length - pos;
    if (this.headLength === 0 && available >= 2) {
      const size = headerSize(chunk[pos + 1]);
      if (available >= size) {
        // Fast path: the whole header is in this chunk; read it in place.
        if (!this.checkFirstBytes(chunk[pos], chunk[pos + 1])) return -1;
        if (size > 2 + (this.masked ? 4 : 0) && !this.checkExtendedLength(chunk, pos + 2)) return -1;
        if (this.masked) this.maskKey = chunk.readUInt32BE(pos + size - 4);
        return this.headerDone(size);
      }
    }
    // Slow path: gather the header in `head`, checking each part once it is complete.
    const head = (this.head ??= Buffer.allocUnsafe(14));
    let used = 0;
    for (;;) {
      const target = this.headLength < 2 ? 2 : headerSize(head[1]);
      const n = Math.min(target - this.headLength, available - used);
      chunk.copy(head, this.headLength, pos + used, pos + used + n);
      const before = this.headLength;
      this.headLength += n;
      used += n;
      if (before < 2 && this.headLength >= 2 && !this.checkFirstBytes(head[0], head[1])) return -1;
      const lengthEnd = target - (this.masked ? 4 : 0);
      if (lengthEnd > 2 && before < lengthEnd && this.headLength >= lengthEnd && !this.checkExtendedLength(head, 2))
        return -1;
      if (this.headLength < target || (target === 2 && headerSize(head[1]) > 2)) {
        if (used === available) return used;
        continue;
      }
      if (this.masked) this.maskKey = head.readUInt32BE(target - 4);
      this.headLength = 0;
      const done = this.headerDone(0);
      return done < 0 ? -1 : used;
    }
  }

  /** Check the first two header bytes: FIN/RSV/opcode rules and the mask bit. */
  private checkFirstBytes(b0: number, b1: number): boolean {
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    this.fin = fin;
    this.opcode = opcode;
    this.masked = (b1 & 0x80) !== 0;
    this.payloadLength = b1 & 0x7f;
    this.rsv1 = (b0 & 0x40) !== 0;

    if (this.rsv1) {
      // RFC 7692 section 6.1: with permessage-deflate, RSV1 marks the first frame of a
      // compressed data message; on continuation and control frames it is always an error.
      if (!this.allowCompressed) return this.fail('WS_ERR_UNEXPECTED_RSV_1', 'RSV1 must be clear');
      if (opcode !== Opcode.TEXT && opcode !== Opcode.BINARY) {
        return this.fail('WS_ERR_UNEXPECTED_RSV_1', 'RSV1 may only be set on the first frame of a data message');
      }
    }
    if ((b0 & 0x30) !== 0) return this.fail('WS_ERR_UNEXPECTED_RSV_2_3', 'RSV2 and RSV3 must be clear');

    switch (opcode) {
      case Opcode.CONTINUATION:
        if (this.messageOpcode === 0)
          return this.fail('WS_ERR_UNEXPECTED_CONTINUATION', 'continuation frame without a message in progress');
        if (++this.messageFrames > this.maxFragments) {
          return this.fail(
            'WS_ERR_TOO_MANY_BUFFERED_PARTS',
            `message in more than ${this.maxFragments} frames`,
            CloseCode.MESSAGE_TOO_BIG,
          );
        }
        break;
      case Opcode.TEXT:
      case Opcode.BINARY:
        if (this.messageOpcode !== 0)
          return this.fail('WS_ERR_EXPECTED_CONTINUATION', 'new data frame before the fragmented message ended');
        this.messageFrames = 1;
        break;
      case Opcode.CLOSE:
      case Opcode.PING:
      case Opcode.PONG:
        if (!fin) return this.fail('WS_ERR_EXPECTED_FIN', 'control frames must not be fragmented');
        if (this.payloadLength > MAX_CONTROL_PAYLOAD)
          return this.fail('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 'control frame payload over 125 bytes');
        break;
      default:
        return this.fail('WS_ERR_INVALID_OPCODE', `invalid opcode 0x${opcode.toString(16)}`);
    }

    if (this.masked !== this.expectMasked) {
      return this.expectMasked
        ? this.fail('WS_ERR_EXPECTED_MASK', 'client frames must be masked')
        : this.fail('WS_ERR_UNEXPECTED_MASK', 'server frames must not be masked');
    }
    // A 7-bit length is complete here; check it against maxPayload now.
    return this.payloadLength >= 126 || this.checkMaxPayload();
  }

  /** Read and check a 16- or 64-bit length starting at `buf[offset]`. */
  private checkExtendedLength(buf: Buffer, offset: number): boolean {
    if (this.payloadLength === 126) {
      const length = buf.readUInt16BE(offset);
      if (length < 126) return this.fail('WS_ERR_NON_MINIMAL_LENGTH', 'length not minimally encoded');
      this.payloadLength = length;
      return this.checkMaxPayload();
    }
    const high = buf.readUInt32BE(offset);
    const low = buf.readUInt32BE(offset + 4);
    if (high & 0x80000000)
      return this.fail(
        'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
        'the most significant bit of a 64-bit length must be 0',
      );
    // Above 2^53 - 1 the length is not even representable; no receiver can hold it.
    if (high > 0x1fffff)
      return this.fail('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'payload length over 2^53 - 1', CloseCode.MESSAGE_TOO_BIG);
    const length = high * 0x100000000 + low;
    if (length <= 0xffff) return this.fail('WS_ERR_NON_MINIMAL_LENGTH', 'length not minimally encoded');
    // Larger than any Buffer this process can allocate (maxPayload 0 means no limit of ours).
    if (length > kMaxLength)
      return this.fail(
        'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
        `payload length over the largest possible buffer (${kMaxLength} bytes)`,
        CloseCode.MESSAGE_TOO_BIG,
      );
    this.payloadLength = length;
    return this.checkMaxPayload();
  }

  /** Refuse a data frame that would take its message over maxPayload, before buffering any of it. */
  private checkMaxPayload(): boolean {
    if (this.maxPayload > 0 && this.opcode < 0x8 && this.messageLength + this.payloadLength > this.maxPayload) {
      return this.fail(
        'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
        `message over maxPayload (${this.maxPayload} bytes)`,
        CloseCode.MESSAGE_TOO_BIG,
      );
    }
    return true;
  }

  /** The header is complete: an empty payload is handled at once. Returns `used`, or -1 if stopped. */
  private headerDone(used: number): number {
    if (this.payloadLength === 0) {
      this.frameComplete(EMPTY);
      return this.stopped ? -1 : used;
    }
    this.state = State.Payload;
    return used;
  }

  /** Consume payload bytes from `chunk` at `pos`; returns the bytes used. */
  private readPayload(chunk: Buffer, pos: number): number {
    const length = this.payloadLength;
    const available = chunk.length - pos;
    if (this.frameFilled === 0 && available >= length) {
      // The whole payload is in this chunk: hand out a slice, no copy.
      this.state = State.Header;
      this.frameComplete(chunk.subarray(pos, pos + length));
      return length;
    }
    const needed = length - this.frameFilled;
    const n = Math.min(needed, available);
    let buffer = this.frameBuffer;
    if (buffer === undefined || buffer.length < this.frameFilled + n) {
      // Frames up to 16 MiB get their whole length once an eighth has arrived; larger ones keep
      // doubling, so a peer that trickles a huge frame pins at most twice what it sent.
      const jumpAt = length <= JUMP_LIMIT ? 8 : 0;
      const grown = Buffer.allocUnsafe(
        grownCapacity(buffer?.length ?? 0, this.frameFilled + n, length, 64 * 1024, jumpAt),
      );
      if (buffer !== undefined) buffer.copy(grown, 0, 0, this.frameFilled);
      buffer = this.frameBuffer = grown;
    }
    chunk.copy(buffer, this.frameFilled, pos, pos + n);
    // Text is checked as it arrives (RFC 6455 8.1: fail as soon as the bytes cannot be UTF-8),
    // so a peer cannot park an invalid frame by never sending its rest. Binary payloads wait
    // to be unmasked whole: nothing to check, and no extra work on that path.
    const text = this.frameIsPlainText();
    if (text && !this.checkArrivedText(buffer, this.frameFilled, n)) return n;
    this.frameFilled += n;
    if (this.frameFilled === length) {
      this.frameBuffer = undefined;
      this.frameFilled = 0;
      this.state = State.Header;
      // Exactly the payload: grownCapacity never sizes the buffer past the frame's length.
      this.frameComplete(buffer, text);
    }
    return n;
  }

  /** The current frame carries text that is not deflated (so its bytes must be UTF-8 as they are). */
  private frameIsPlainText(): boolean {
    const opcode = this.opcode;
    if (opcode === Opcode.TEXT) return !this.rsv1;
    return opcode === Opcode.CONTINUATION && this.messageOpcode === Opcode.TEXT && !this.messageCompressed;
  }

  /**
   * Unmask the `n` bytes of the current text frame that just arrived at `buffer[from]` and feed
   * them to the message's streaming validator. False (and the parser stopped) at the first
   * byte after which the text can no longer be valid UTF-8.
   */
  private checkArrivedText(buffer: Buffer, from: number, n: number): boolean {
    const piece = buffer.subarray(from, from + n);
    if (this.masked) {
      SCRATCH_KEY.writeUInt32BE(this.maskKey, 0);
      applyMask(piece, SCRATCH_KEY, from & 3);
    }
    if ((this.utf8 ??= new Utf8Validator()).push(piece)) return true;
    return this.fail('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in text message', CloseCode.INVALID_PAYLOAD);
  }

  /**
   * A whole frame payload is here: unmask it and act on it. `checked`: a text payload that
   * arrived in pieces, already unmasked and fed to the UTF-8 validator (checkArrivedText).
   */
  private frameComplete(payload: Buffer, checked = false): void {
    if (this.masked && payload.length > 0 && !checked) {
      SCRATCH_KEY.writeUInt32BE(this.maskKey, 0);
      applyMask(payload, SCRATCH_KEY, 0);
    }
    const opcode = this.opcode;
    if (opcode >= 0x8) {
      this.controlFrame(opcode, payload);
      return;
    }

    if (opcode !== Opcode.CONTINUATION) {
      this.messageOpcode = opcode;
      this.messageCompressed = this.rsv1;
    }
    const isText = this.messageOpcode === Opcode.TEXT;
    const compressed = this.messageCompressed;
    // Deflated bytes are not UTF-8; the inflated text is checked by whoever inflates it.
    const checkUtf8 = isText && !compressed;
    if (this.fin && this.messageLength === 0 && this.messageBuffer === undefined) {
      // Unfragmented message (or one whose earlier fragments were all empty): no copy.
      this.messageOpcode = 0;
      this.messageCompressed = false;
      if (checked) {
        if (!this.utf8EndsMessage()) return;
      } else {
        this.utf8?.reset();
        if (checkUtf8 && !isValidUtf8(payload)) {
          this.fail('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in text message', CloseCode.INVALID_PAYLOAD);
          return;
        }
      }
      this.handler.onMessage(payload, !isText, compressed);
      return;
    }

    if (checkUtf8 && !checked && !(this.utf8 ??= new Utf8Validator()).push(payload)) {
      this.fail('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in text message', CloseCode.INVALID_PAYLOAD);
      return;
    }
    if (payload.length > 0) {
      const total = this.messageLength + payload.length;
      let buffer = this.messageBuffer;
      if (buffer === undefined || buffer.length < total) {
        const limit = this.maxPayload > 0 ? Math.max(this.maxPayload, total) : Number.MAX_SAFE_INTEGER;
        const grown = Buffer.allocUnsafe(grownCapacity(buffer?.length ?? 0, total, limit, 4096));
        if (buffer !== undefined) buffer.copy(grown, 0, 0, this.messageLength);
        buffer = this.messageBuffer = grown;
      }
      payload.copy(buffer, this.messageLength);
      this.messageLength = total;
    }
    if (!this.fin) return;

    if (checkUtf8 && !this.utf8EndsMessage()) return;
    // A buffer exists here: a message with no bytes buffered before its last frame and none in
    // it took the no-copy path above.
    const data = this.messageBuffer!.subarray(0, this.messageLength);
    this.messageBuffer = undefined;
    this.messageLength = 0;
    this.messageOpcode = 0;
    this.messageCompressed = false;
    this.handler.onMessage(data, !isText, compressed);
  }

  /** The text message ends here: its validator must be at a character boundary. Resets it. */
  private utf8EndsMessage(): boolean {
    const utf8 = (this.utf8 ??= new Utf8Validator());
    const complete = utf8.complete;
    utf8.reset();
    return (
      complete ||
      this.fail('WS_ERR_INVALID_UTF8', 'text message ends inside a UTF-8 sequence', CloseCode.INVALID_PAYLOAD)
    );
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
      this.fail('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 'close frame payload of 1 byte');
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
