/**
 * The error catalogue (src/protocol/errors.ts, src/browser/errors.ts, the channel protocol's
 * CHANNEL_ERROR_CODES): docs/errors.md documents exactly its codes, with the same class and
 * close code or status; every WS_ERR_* named in the sources and docs is catalogued; createError
 * builds the class the catalogue says; and, end to end over TCP, the errors users get are
 * instances of those classes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  ConnectionClosedError,
  DuetError,
  ERROR_CODES,
  HandshakeError,
  LimitExceededError,
  ProtocolError,
  RENAMED_ERROR_CODES,
  createError,
  type DuetErrorClassName,
  type DuetErrorCode,
} from '../../src/protocol/index.js';
import { applicationThrew } from '../../src/protocol/errors.js';
import * as root from '../../src/index.js';
import { CHANNEL_ERROR_CODES, WebSocket, WebSocketServer } from '../../src/index.js';
import {
  CLIENT_ERROR_CODES,
  CLIENT_RENAMED_ERROR_CODES,
  DuetError as ClientDuetError,
} from '../../src/browser/client.js';
import { HOST, startServer } from '../helpers.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const T = { timeout: 15_000 };

const CODES = Object.keys(ERROR_CODES) as DuetErrorCode[];
const CLIENT_CODES = Object.keys(CLIENT_ERROR_CODES);
const CHANNEL_CODES = Object.keys(CHANNEL_ERROR_CODES);
const RENAMED: Record<string, string> = { ...RENAMED_ERROR_CODES, ...CLIENT_RENAMED_ERROR_CODES };

function read(path: string): string {
  return readFileSync(join(REPO, path), 'utf8');
}

function filesUnder(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(REPO, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...filesUnder(path, ext));
    else if (entry.name.endsWith(ext)) out.push(path);
  }
  return out;
}

/** The lines of the section under `## heading`, up to the next `## `. */
function section(markdown: string, heading: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.indexOf(`## ${heading}`);
  assert.ok(start >= 0, `docs/errors.md has a "## ${heading}" section`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

interface Row {
  anchor: string;
  code: string;
  cells: string[];
}

/** The table rows of a section whose first cell is `<a id="..."></a>`code``. */
function rows(lines: string[]): Row[] {
  const out: Row[] = [];
  for (const line of lines) {
    if (!line.startsWith('| <a id=')) continue;
    const cells = line
      .slice(1, -1)
      .split(' | ')
      .map((c) => c.trim());
    const m = /^<a id="([^"]+)"><\/a>`([^`]+)`$/.exec(cells[0]);
    assert.ok(m, `first cell of ${line}`);
    out.push({ anchor: m[1], code: m[2], cells: cells.slice(1) });
  }
  return out;
}

const DOC = read('docs/errors.md');

describe('docs/errors.md documents the catalogue', () => {
  const table = rows(section(DOC, 'Codes'));

  it('lists every code of ERROR_CODES and CLIENT_ERROR_CODES once, and nothing else', () => {
    const documented = table.map((r) => r.code);
    assert.deepEqual([...documented].sort(), [...CODES, ...CLIENT_CODES].sort());
    assert.equal(new Set(documented).size, documented.length, 'no code twice');
  });

  it('gives each code its anchor, class, close code / status, meaning and advice', () => {
    for (const { anchor, code, cells } of table) {
      assert.equal(anchor, code.toLowerCase(), `anchor of ${code}`);
      assert.equal(cells.length, 4, `${code}: class, close code / status, meaning, what to do`);
      const [cls, closeOrStatus, meaning, todo] = cells as [string, string, string, string];
      assert.ok(meaning.length > 10 && todo.length > 5, `${code} has a meaning and advice`);
      if (code in ERROR_CODES) {
        const info: { class: DuetErrorClassName; closeCode?: number; status?: number } =
          ERROR_CODES[code as DuetErrorCode];
        assert.ok(cls.startsWith(`\`${info.class}\``), `${code}: class ${info.class}, documented ${cls}`);
        if (info.closeCode !== undefined)
          assert.ok(
            closeOrStatus.includes(`close ${info.closeCode}`),
            `${code}: close ${info.closeCode} in "${closeOrStatus}"`,
          );
        else assert.ok(!closeOrStatus.includes('close'), `${code}: no close code in "${closeOrStatus}"`);
        if (info.status !== undefined)
          assert.ok(
            closeOrStatus.includes(`HTTP ${info.status}`),
            `${code}: HTTP ${info.status} in "${closeOrStatus}"`,
          );
      } else {
        assert.equal(cls, '`DuetError` (`duet/client`)', `${code} is the browser client's`);
        assert.equal(closeOrStatus, '–');
      }
    }
  });

  it("lists the channel protocol's wire codes in their own section, each once", () => {
    const channel = rows(section(DOC, 'Channel protocol codes (wire format)'));
    assert.deepEqual(channel.map((r) => r.code).sort(), [...CHANNEL_CODES].sort());
    for (const { anchor, code } of channel) assert.equal(anchor, `channel_${code}`);
  });

  it('lists every renamed code with a link to its new name', () => {
    const renamed = new Map<string, string>();
    for (const line of section(DOC, 'Renamed codes')) {
      const m = /^\| `([A-Z0-9_]+)` \| \[`([A-Z0-9_]+)`\]\(#([a-z0-9_]+)\) \|/.exec(line);
      if (m) {
        assert.equal(m[3], m[2].toLowerCase(), `link of ${m[2]}`);
        renamed.set(m[1], m[2]);
      }
    }
    assert.deepEqual(Object.fromEntries(renamed), RENAMED);
  });

  it('every link to errors.md, from any doc or the README, names an anchor that exists', () => {
    const anchors = new Set([...DOC.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1]));
    // Headings of the page itself, GitHub style.
    for (const m of DOC.matchAll(/^#+ (.+)$/gm))
      anchors.add(
        m[1]
          .toLowerCase()
          .replace(/[^a-z0-9 _-]/g, '')
          .replace(/ /g, '-'),
      );
    const sources = [
      ...filesUnder('docs', '.md').map((f) => [f, read(f)] as const),
      ['README.md', read('README.md')] as const,
    ];
    let links = 0;
    for (const [file, text] of sources) {
      const own = file === 'docs/errors.md';
      const pattern = own ? /\]\(#([^)]+)\)/g : /errors\.md#([^)\s]+)\)/g;
      for (const m of text.matchAll(pattern)) {
        links++;
        assert.ok(anchors.has(m[1]), `${file} links to errors.md#${m[1]}, which does not exist`);
      }
    }
    assert.ok(links > 10);
  });
});

describe('every code named anywhere is catalogued', () => {
  const catalogued = new Set<string>([...CODES, ...CLIENT_CODES]);
  // WS_ERR_ followed by a name (not the `WS_ERR_*` of prose).
  const mention = /\bWS_ERR_[A-Z0-9_]*[A-Z0-9]\b/g;

  it('the two tables (Node side, browser client) and the renamed codes do not overlap', () => {
    for (const code of CLIENT_CODES) assert.ok(!(code in ERROR_CODES), `${code} in both tables`);
    for (const [old, now] of Object.entries(RENAMED)) {
      assert.ok(!catalogued.has(old), `${old} is renamed but still catalogued`);
      assert.ok(catalogued.has(now), `${old} renamed to ${now}, which is not catalogued`);
    }
  });

  it('every WS_ERR_* in src/ is in the catalogue (old names only in the tables of renamed codes)', () => {
    const files = filesUnder('src', '.ts');
    assert.ok(files.length > 40);
    let seen = 0;
    for (const file of files) {
      const renamedTable = file === 'src/protocol/errors.ts' || file === 'src/browser/errors.ts';
      for (const [code] of read(file).matchAll(mention)) {
        seen++;
        if (renamedTable && code in RENAMED) continue;
        assert.ok(catalogued.has(code), `${file} names ${code}, which is not in the catalogue`);
        if (file.startsWith('src/browser/'))
          assert.ok(
            code in CLIENT_ERROR_CODES,
            `${file}: the browser client's code ${code} is not in CLIENT_ERROR_CODES`,
          );
      }
    }
    assert.ok(seen > 80, `found ${seen} mentions`);
  });

  it("the browser client makes DuetErrors with its own codes only (besides the server's wire codes)", () => {
    for (const file of filesUnder('src/browser', '.ts')) {
      for (const m of read(file).matchAll(/new DuetError\('([^']+)'/g)) {
        assert.ok(m[1] in CLIENT_ERROR_CODES, `${file}: new DuetError('${m[1]}')`);
      }
      assert.doesNotMatch(read(file), /['"`]DUET_[A-Z_]+['"`]/, `${file} still uses a DUET_* code`);
    }
  });

  it('the docs and the README name current codes only (old names only in errors.md)', () => {
    for (const file of [...filesUnder('docs', '.md'), 'README.md']) {
      for (const [code] of read(file).matchAll(mention)) {
        if (file === 'docs/errors.md' && code in RENAMED) continue;
        assert.ok(catalogued.has(code), `${file} names ${code}, which is not in the catalogue`);
      }
      if (file !== 'docs/errors.md') assert.doesNotMatch(read(file), /`DUET_[A-Z_]+`/, `${file} names a DUET_* code`);
    }
  });
});

/** The classes each catalogue class name must be an instance of, and must not be. */
const CLASSES = {
  DuetError,
  HandshakeError,
  ProtocolError,
  LimitExceededError,
  ConnectionClosedError,
  TypeError,
  RangeError,
};
const EXPECTED: Record<DuetErrorClassName, readonly (keyof typeof CLASSES)[]> = {
  DuetError: ['DuetError'],
  HandshakeError: ['DuetError', 'HandshakeError'],
  ProtocolError: ['DuetError', 'ProtocolError'],
  LimitExceededError: ['DuetError', 'ProtocolError', 'LimitExceededError'],
  ConnectionClosedError: ['DuetError', 'ConnectionClosedError'],
  TypeError: ['DuetError', 'TypeError'],
  RangeError: ['DuetError', 'RangeError'],
};

describe('createError builds the class the catalogue says', () => {
  for (const code of CODES) {
    const info: { class: DuetErrorClassName; closeCode?: number; status?: number } = ERROR_CODES[code];
    it(`${code}: ${info.class}`, () => {
      const err = createError(code, 'what happened');
      for (const [name, cls] of Object.entries(CLASSES)) {
        assert.equal(
          err instanceof cls,
          EXPECTED[info.class].includes(name as keyof typeof CLASSES),
          `${code} instanceof ${name}`,
        );
      }
      assert.ok(err instanceof Error);
      assert.equal(err.code, code);
      assert.equal(err.message, 'what happened');
      assert.equal(err.name, code === 'ABORT_ERR' ? 'AbortError' : info.class);
      if (err instanceof ProtocolError) assert.equal(err.closeCode, info.closeCode);
      if (err instanceof HandshakeError) assert.equal(err.status, info.status);
      assert.match(String(err.stack), new RegExp(`^${err.name}: what happened`));
    });
  }

  it('takes a close code, a status, headers and a cause', () => {
    const cause = new Error('below');
    const limit = createError('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'm', { closeCode: 1008, cause });
    assert.equal(limit.closeCode, 1008);
    assert.equal(limit.cause, cause);
    const refusal = createError('WS_ERR_CLIENT_REJECTED', 'm', { status: 418, headers: { 'Retry-After': 1 } });
    assert.equal(refusal.status, 418);
    assert.deepEqual(refusal.headers, { 'Retry-After': 1 });
    assert.equal(createError('WS_ERR_HANDSHAKE', 'm').status, undefined);
    assert.ok(!('status' in createError('WS_ERR_HANDSHAKE', 'm')), 'no status property when there is none');
    assert.equal(createError('WS_ERR_INVALID_HEADER', 'm', { cause }).cause, cause);
  });

  it("ProtocolError's constructor is as before: (code, message, closeCode = the code's)", () => {
    const plain = new ProtocolError('WS_ERR_INVALID_OPCODE', 'bad');
    assert.equal(plain.closeCode, 1002);
    assert.equal(plain.name, 'ProtocolError');
    assert.equal(new ProtocolError('WS_ERR_INVALID_UTF8', 'bad').closeCode, 1007);
    assert.equal(new ProtocolError('WS_ERR_INVALID_OPCODE', 'bad', 1007).closeCode, 1007);
    assert.ok(!(plain instanceof LimitExceededError));
    assert.ok(new LimitExceededError('WS_ERR_TOO_MANY_BUFFERED_PARTS', 'm') instanceof ProtocolError);
  });

  it('instanceof DuetError holds across the Node side and the browser client, subclasses stay strict', () => {
    const fromClient = new ClientDuetError('WS_ERR_QUEUE_FULL', 'full');
    assert.ok(fromClient instanceof DuetError);
    assert.ok(fromClient instanceof ClientDuetError);
    assert.ok(!(fromClient instanceof ProtocolError));
    assert.ok(createError('WS_ERR_NOT_OPEN', 'm') instanceof ClientDuetError);
    assert.ok(createError('WS_ERR_INVALID_STATUS', 'm') instanceof ClientDuetError);
    const lookalike = Object.assign(new Error('m'), { code: 'WS_ERR_NOT_OPEN', name: 'DuetError' });
    assert.ok(!(lookalike instanceof DuetError));
    assert.ok(!(lookalike instanceof ClientDuetError));
    for (const value of [null, undefined, 'WS_ERR_NOT_OPEN', { code: 'WS_ERR_NOT_OPEN' }] as unknown[])
      assert.ok(!(value instanceof DuetError));
  });

  it('the package root exports the same classes and catalogue', () => {
    assert.equal(root.DuetError, DuetError);
    assert.equal(root.HandshakeError, HandshakeError);
    assert.equal(root.ProtocolError, ProtocolError);
    assert.equal(root.LimitExceededError, LimitExceededError);
    assert.equal(root.ConnectionClosedError, ConnectionClosedError);
    assert.equal(root.ERROR_CODES, ERROR_CODES);
  });

  it('applicationThrew: WS_ERR_UNEXPECTED_CONDITION naming what threw, with what was thrown as cause', () => {
    const thrown = new TypeError('bad origin list');
    const err = applicationThrew('verifyClient', thrown);
    assert.ok(err instanceof DuetError);
    assert.equal(err.code, 'WS_ERR_UNEXPECTED_CONDITION');
    assert.equal(err.message, 'verifyClient threw: bad origin list');
    assert.equal(err.cause, thrown);
    // Not an Error (a string, a number): its text, and the value itself as cause.
    const other = applicationThrew('a headers listener', 42);
    assert.equal(other.message, 'a headers listener threw: 42');
    assert.equal(other.cause, 42);
  });
});

describe('end to end: the errors users get are instances of the classes', () => {
  it('a refused handshake: HandshakeError on both sides, with the status', T, async (t) => {
    const s = await startServer({ verifyClient: (_info, done) => done(false, 403, 'no') });
    t.after(() => s.close());
    const refusals: unknown[] = [];
    s.wss.on('wsClientError', (err, socket) => {
      refusals.push(err);
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    const ws = new WebSocket(`ws://${HOST}:${s.port}/`);
    const [err] = (await once(ws, 'error')) as [Error & { code: string; status?: number }];
    assert.ok(err instanceof HandshakeError);
    assert.ok(err instanceof DuetError);
    assert.equal(err.code, 'WS_ERR_UNEXPECTED_RESPONSE');
    assert.equal(err.status, 403);
    assert.equal(refusals.length, 1);
    const refusal = refusals[0];
    assert.ok(refusal instanceof HandshakeError);
    assert.equal(refusal.code, 'WS_ERR_CLIENT_REJECTED');
    assert.equal(refusal.status, 403);
  });

  it("a refused TCP connection: HandshakeError with the system's code and the cause", T, async () => {
    const probe = net.createServer();
    probe.listen(0, HOST);
    await once(probe, 'listening');
    const { port } = probe.address() as net.AddressInfo;
    probe.close();
    await once(probe, 'close');
    const ws = new WebSocket(`ws://${HOST}:${port}/`);
    const [err] = (await once(ws, 'error')) as [Error & { code: string }];
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal((err.cause as { code?: string }).code, 'ECONNREFUSED');
  });

  it('an aborted attempt: HandshakeError named AbortError, code ABORT_ERR', T, async () => {
    const ws = new WebSocket(`ws://${HOST}:1/`, [], { signal: AbortSignal.abort() });
    const [err] = (await once(ws, 'error')) as [Error & { code: string }];
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ABORT_ERR');
  });

  it('send after close: ConnectionClosedError WS_ERR_NOT_OPEN in the callback', T, async (t) => {
    const s = await startServer();
    t.after(() => s.close());
    const ws = new WebSocket(`ws://${HOST}:${s.port}/`);
    await once(ws, 'open');
    ws.close();
    const err = await new Promise<Error | null | undefined>((resolve) => ws.send('late', resolve));
    assert.ok(err instanceof ConnectionClosedError);
    assert.ok(err instanceof DuetError);
    assert.equal(err.code, 'WS_ERR_NOT_OPEN');
    await once(ws, 'close');
  });

  it('a message over maxPayload: LimitExceededError (a ProtocolError) with 1009, on the server', T, async (t) => {
    const s = await startServer({ maxPayload: 10 });
    t.after(() => s.close());
    const serverErrors: unknown[] = [];
    s.wss.on('connection', (conn) => conn.on('error', (err) => serverErrors.push(err)));
    const ws = new WebSocket(`ws://${HOST}:${s.port}/`, [], { perMessageDeflate: false });
    await once(ws, 'open');
    const closed = once(ws, 'close');
    ws.send('x'.repeat(11));
    await closed;
    assert.equal(serverErrors.length, 1);
    const err = serverErrors[0];
    assert.ok(err instanceof LimitExceededError);
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
    assert.equal(err.closeCode, 1009);
  });

  it('a frame that breaks RFC 6455: ProtocolError with 1002, not a LimitExceededError', T, async (t) => {
    const s = await startServer();
    t.after(() => s.close());
    const serverErrors: unknown[] = [];
    s.wss.on('connection', (conn) => conn.on('error', (err) => serverErrors.push(err)));
    const socket = net.connect(s.port, HOST);
    t.after(() => socket.destroy());
    socket.write(
      `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await once(socket, 'data');
    socket.write(Buffer.from([0x83, 0x80, 0, 0, 0, 0])); // opcode 0x3, reserved
    await once(socket, 'close');
    const err = serverErrors[0];
    assert.ok(err instanceof ProtocolError);
    assert.ok(!(err instanceof LimitExceededError));
    assert.equal(err.code, 'WS_ERR_INVALID_OPCODE');
    assert.equal(err.closeCode, 1002);
  });

  it('an inflated message over maxPayload: LimitExceededError', T, async (t) => {
    const wss = new WebSocketServer({ port: 0, host: HOST, maxPayload: 1000, perMessageDeflate: true });
    await once(wss, 'listening');
    t.after(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const serverErrors: unknown[] = [];
    wss.on('connection', (conn) => conn.on('error', (err) => serverErrors.push(err)));
    const ws = new WebSocket(`ws://${HOST}:${(wss.address() as net.AddressInfo).port}/`);
    await once(ws, 'open');
    const closed = once(ws, 'close');
    ws.send('x'.repeat(100_000)); // compresses to far less than 1000 bytes
    await closed;
    const err = serverErrors[0];
    assert.ok(err instanceof LimitExceededError, `got ${String(err)}`);
    assert.equal(err.closeCode, 1009);
  });
});
