/**
 * `duet exec` end to end: the built CLI in a child process running small Node programs, real
 * clients (ws), process lifetimes checked with kill(pid, 0), memory from /proc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type * as http from 'node:http';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WS from 'ws';
import { selfSignedCert } from '../tls-helpers.js';
import { CLI, listening, startDuet, type Listening } from './cli-process.js';

const T = { timeout: 20_000 };

/** Start `duet exec [options] -- node -e SCRIPT`. */
function exec(script: string, options: string[] = []): Promise<Listening> {
  return startDuet(['exec', '--port', '0', ...options, '--', process.execPath, '-e', script]);
}

/**
 * Open a connection; what it receives is recorded from the start (see `record`): a program's
 * first line can come in the same read as the 101 answer, and then its 'message' is emitted
 * before an `await open()` returns.
 */
function open(url: string, options?: WS.ClientOptions): Promise<WS> {
  const ws = new WS(url, options);
  recordings.set(ws, startRecording(ws));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Open a connection once the server takes it (a refusal, e.g. 503, is tried again), within 5 s. */
async function openWhenRoom(url: string): Promise<WS> {
  let opened: WS | undefined;
  await until(() => {
    if (opened === undefined) {
      const attempt = new WS(url);
      attempt.once('open', () => (opened = attempt));
      attempt.once('error', () => {});
      attempt.once('unexpected-response', () => attempt.terminate());
    }
    return opened !== undefined;
  }, 5000);
  return opened!;
}

interface Recording {
  messages: string[];
  /** Whether each message was binary. */
  binary: boolean[];
  closed: Promise<{ code: number; reason: string }>;
}
const recordings = new WeakMap<WS, Recording>();

function startRecording(ws: WS): Recording {
  const messages: string[] = [];
  const binary: boolean[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    messages.push(data.toString('utf8'));
    binary.push(isBinary);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
  );
  return { messages, binary, closed };
}

/** The text messages and the close of `ws`: since it was made, for a connection from `open`. */
function record(ws: WS): Recording {
  return recordings.get(ws) ?? startRecording(ws);
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const UPPERCASE_LINES = `
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => process.stdout.write(d.toUpperCase()));
`;

test(
  'lines both ways, in order, UTF-8 intact; the program sees CGI variables and request headers, never HTTP_PROXY',
  T,
  async () => {
    const env = await exec(`
    const e = process.env;
    console.log(JSON.stringify([e.REMOTE_ADDR, e.QUERY_STRING, e.REQUEST_URI, e.SCRIPT_NAME, e.HTTP_X_TOKEN, e.HTTP_PROXY ?? null, e.SERVER_PORT, e.REQUEST_METHOD]));
    ${UPPERCASE_LINES}`);
    try {
      const ws = await open(`${env.url}/room/7?a=1&b=2`, {
        headers: { 'X-Token': 'secret', Proxy: 'http://evil.example:3128' },
      });
      const rec = record(ws);
      await until(() => rec.messages.length === 1);
      const port = new URL(env.url).port;
      assert.deepEqual(JSON.parse(rec.messages[0]), [
        '127.0.0.1',
        'a=1&b=2',
        '/room/7?a=1&b=2',
        '/room/7',
        'secret',
        null,
        port,
        'GET',
      ]);
      for (const line of ['one', 'two', 'grüße 😀', '']) ws.send(line);
      await until(() => rec.messages.length === 5);
      assert.deepEqual(rec.messages.slice(1), ['ONE', 'TWO', 'GRÜSSE 😀', '']);
      ws.close(1000);
      assert.equal((await rec.closed).code, 1000);
    } finally {
      await env.stop();
    }
  },
);

test(
  'the program exiting closes the connection: 1000 after exit 0 (last line without a newline sent too), 1011 "exit 3" otherwise',
  T,
  async () => {
    const ok = await exec(`process.stdout.write('first\\nsecond\\r\\nlast without newline');`);
    const failing = await exec(`console.log('about to fail'); process.exit(3);`);
    try {
      const a = record(await open(ok.url));
      assert.deepEqual(await a.closed, { code: 1000, reason: '' });
      assert.deepEqual(a.messages, ['first', 'second', 'last without newline']);
      const b = record(await open(failing.url));
      assert.deepEqual(await b.closed, { code: 1011, reason: 'exit 3' });
      assert.deepEqual(b.messages, ['about to fail']);
    } finally {
      await Promise.all([ok.stop(), failing.stop()]);
    }
  },
);

test(
  'a client that leaves stops its program: SIGTERM, then SIGKILL after --kill-timeout for one that ignores it',
  T,
  async () => {
    const polite = await exec(`console.log(process.pid); setInterval(() => {}, 1000);`);
    const stubborn = await exec(
      `process.on('SIGTERM', () => {}); process.stdin.resume(); console.log(process.pid); setInterval(() => {}, 1000);`,
      ['--kill-timeout', '300'],
    );
    try {
      for (const env of [polite, stubborn]) {
        const ws = await open(env.url);
        const rec = record(ws);
        await until(() => rec.messages.length === 1);
        const pid = Number(rec.messages[0]);
        assert.ok(alive(pid), 'the program runs while the client is there');
        const left = Date.now();
        ws.terminate();
        await until(() => !alive(pid), 3000);
        if (env === stubborn)
          assert.ok(Date.now() - left >= 250, 'SIGTERM was ignored, so SIGKILL came after the kill timeout');
      }
    } finally {
      await Promise.all([polite.stop(), stubborn.stop()]);
    }
  },
);

test(
  '--max-processes: a connection over the limit gets 503; once a program has stopped there is room again',
  T,
  async () => {
    const env = await exec(UPPERCASE_LINES, ['--max-processes', '1']);
    try {
      const first = await open(env.url);
      const refused = new WS(env.url);
      refused.on('error', () => {});
      const [, res] = (await once(refused, 'unexpected-response')) as [unknown, http.IncomingMessage];
      assert.equal(res.statusCode, 503);
      refused.terminate();
      const rec = record(first);
      first.close(1000);
      await rec.closed;
      // The program gets SIGTERM when the connection ends; its slot frees when it has exited.
      const again = await openWhenRoom(env.url);
      const r2 = record(again);
      again.send('room again');
      await until(() => r2.messages.length === 1);
      assert.deepEqual(r2.messages, ['ROOM AGAIN']);
      again.close();
    } finally {
      await env.stop();
    }
  },
);

test('--binary passes raw bytes both ways; without it a binary message is refused with 1003', T, async () => {
  const bin = await exec(`process.stdin.pipe(process.stdout);`, ['--binary']);
  const text = await exec(UPPERCASE_LINES);
  try {
    const ws = await open(bin.url);
    const got: Buffer[] = [];
    const types: boolean[] = [];
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      types.push(isBinary);
      got.push(d);
    });
    const bytes = Buffer.from([0, 1, 2, 10, 13, 255, 254, 0]);
    // An error or close ends the wait too, and is reported below rather than thrown by ws.
    const errors: string[] = [];
    ws.on('error', (err) => errors.push(err.message));
    let closedWith: number | undefined;
    ws.once('close', (code: number) => (closedWith = code));
    ws.send(bytes);
    await until(() => Buffer.concat(got).length >= bytes.length || closedWith !== undefined);
    assert.deepEqual({ errors, closedWith }, { errors: [], closedWith: undefined });
    assert.deepEqual(Buffer.concat(got), bytes);
    assert.ok(
      types.every((isBinary) => isBinary),
      `every message binary: ${types.join(',')}`,
    );
    ws.close();

    const t = await open(text.url);
    const rec = record(t);
    t.send(Buffer.from([1, 2, 3]));
    assert.equal((await rec.closed).code, 1003);
  } finally {
    await Promise.all([bin.stop(), text.stop()]);
  }
});

test('a program that cannot be run is refused at start-up: exit 1 with the reason, nothing listens', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-exec-check-'));
  const plain = join(dir, 'plain.sh');
  writeFileSync(plain, '#!/bin/sh\necho hi\n', { mode: 0o644 });
  try {
    for (const [program, reason] of [
      ['/nonexistent/duet-test-program', 'cannot run /nonexistent/duet-test-program: no such file'],
      ['duet-no-such-program', 'cannot run duet-no-such-program: not found in PATH'],
      [plain, `cannot run ${plain}: not executable (chmod +x ${plain}`],
      [dir, `cannot run ${dir}: is a directory, not a program`],
    ]) {
      const child = spawn(process.execPath, [CLI, 'exec', '--port', '0', '--', program], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1, program);
      assert.ok(err.startsWith(`duet: ${reason}`), err);
      assert.equal(err.split('\n').length, 2, 'one line');
      assert.equal(out, '', 'no LISTENING line');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a program gone after start-up: 1011 and a line on stderr; the server goes on serving', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-exec-gone-'));
  const program = join(dir, 'gone.sh');
  writeFileSync(program, '#!/bin/sh\necho hi\n', { mode: 0o755 });
  const env = await startDuet(['exec', '--port', '0', '--', program]);
  rmSync(dir, { recursive: true, force: true });
  try {
    for (let i = 0; i < 2; i++) {
      const rec = record(await open(env.url));
      assert.deepEqual(await rec.closed, { code: 1011, reason: 'cannot start the program' });
    }
    assert.match(env.stderr(), new RegExp(`cannot start ${program.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
  } finally {
    await env.stop();
  }
});

test(
  '--tls-cert/--tls-key serve wss://: lines both ways over TLS; plain HTTP gets 426; bad files exit 1 naming them',
  T,
  async () => {
    const { cert, key } = selfSignedCert();
    const dir = mkdtempSync(join(tmpdir(), 'duet-exec-tls-'));
    writeFileSync(join(dir, 'cert.pem'), cert);
    writeFileSync(join(dir, 'key.pem'), key);
    const env = await exec(UPPERCASE_LINES, ['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
    try {
      assert.match(env.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
      const ws = await open(env.url, { rejectUnauthorized: false });
      const rec = record(ws);
      ws.send('over tls');
      await until(() => rec.messages.length === 1);
      assert.deepEqual(rec.messages, ['OVER TLS']);
      const plain = await new Promise<number>((resolve, reject) => {
        https
          .get(env.url.replace('wss:', 'https:') + '/', { rejectUnauthorized: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject);
      });
      assert.equal(plain, 426);
      const closed = rec.closed;
      env.child.kill('SIGTERM');
      assert.equal((await closed).code, 1001);
      const [exitCode] = (await once(env.child, 'exit')) as [number | null];
      assert.equal(exitCode, 0);

      const swapped = spawn(
        process.execPath,
        [
          CLI,
          'exec',
          '--port',
          '0',
          '--tls-cert',
          join(dir, 'key.pem'),
          '--tls-key',
          join(dir, 'cert.pem'),
          '--',
          process.execPath,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      swapped.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(swapped, 'exit')) as [number | null];
      assert.equal(code, 1);
      assert.match(err, /^duet: --tls-cert and --tls-key look swapped: .*key\.pem holds a private key/);
    } finally {
      await env.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('SIGTERM: clients get 1001, every program is stopped, duet exec exits 0', T, async () => {
  const env = await exec(`console.log(process.pid); setInterval(() => {}, 1000);`);
  const clients = await Promise.all([open(env.url), open(env.url)]);
  const recs = clients.map(record);
  await until(() => recs.every((r) => r.messages.length === 1));
  const pids = recs.map((r) => Number(r.messages[0]));
  const exited = once(env.child, 'exit');
  env.child.kill('SIGTERM');
  for (const r of recs) assert.equal((await r.closed).code, 1001);
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0);
  for (const pid of pids) assert.equal(alive(pid), false);
});

test(
  'a client that does not read: the program is paused, duet exec does not buffer its output without bound',
  { timeout: 60_000 },
  async () => {
    // The program writes 100-byte lines as fast as its stdout takes them, and says on stderr
    // how many it has written and, while stdout is full, for how long (by its own clock) it has
    // been waiting for 'drain'. Paused = one wait lasting seconds: duet exec stopped reading its
    // stdout. That holds on a slow or busy machine too; only how soon it happens varies, and
    // the deadlines for that are generous.
    const env = await exec(`
    const line = 'x'.repeat(99) + '\\n';
    let n = 0;
    let since = -1;
    const more = () => {
      since = -1;
      while (process.stdout.write(line)) n++;
      n++;
      since = Date.now();
      process.stdout.once('drain', more);
    };
    more();
    setInterval(() => process.stderr.write('n=' + n + ' waiting=' + (since < 0 ? -1 : Date.now() - since) + '\\n'), 100);`);
    try {
      const report = (): { written: number; waiting: number } => {
        const last = /n=(\d+) waiting=(-?\d+)\n(?!.*n=)/s.exec(env.stderr());
        return { written: Number(last?.[1] ?? 0), waiting: Number(last?.[2] ?? -1) };
      };
      const rssKiB = (): number =>
        Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${env.child.pid}/status`, 'utf8'))![1]);
      const before = rssKiB();
      const ws = await open(env.url);
      let closedWith = 0;
      ws.once('close', (code: number) => (closedWith = code));
      const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      socket.pause();
      // Kernel socket and pipe buffers take some megabytes first; after that the program must
      // stay stuck in one write.
      const STUCK_MS = 2000;
      await until(() => report().waiting >= STUCK_MS, 30_000).catch(() => {
        assert.fail(
          `the program never waited ${STUCK_MS} ms for its stdout to drain while its client read nothing: ${JSON.stringify(report())}`,
        );
      });
      const stuck = report();
      assert.ok(stuck.written > 0, 'the program wrote');
      const grown = rssKiB() - before;
      assert.ok(grown < 48 * 1024, `duet exec grew by ${grown} KiB while its client read nothing`);
      let count = 0;
      let bad = 0;
      ws.on('message', (d: Buffer) => {
        count++;
        if (d.length !== 99) bad++;
      });
      socket.resume();
      // Everything written while paused, and then more: the program writes again.
      await until(() => count >= stuck.written + 10_000, 20_000);
      assert.equal(bad, 0, 'every line arrives whole');
      assert.equal(closedWith, 0, 'the connection stayed open');
      assert.equal(ws.readyState, WS.OPEN);
      ws.terminate();
    } finally {
      await env.stop();
    }
  },
);

test('--path and --origin: other paths get 404, other browser origins 403', T, async () => {
  const env = await exec(UPPERCASE_LINES, ['--path', '/only', '--origin', 'https://ok.example']);
  try {
    const status = async (path: string, origin?: string): Promise<number> => {
      const ws = new WS(`${env.url}${path}`, origin === undefined ? {} : { origin });
      ws.on('error', () => {});
      const result = await Promise.race([
        once(ws, 'open').then(() => 101),
        once(ws, 'unexpected-response').then(([, res]) => (res as http.IncomingMessage).statusCode ?? 0),
      ]);
      ws.terminate();
      return result;
    };
    assert.equal(await status('/other'), 404);
    assert.equal(await status('/only', 'https://evil.example'), 403);
    assert.equal(await status('/only', 'https://ok.example'), 101);
    assert.equal(await status('/only'), 101);
  } finally {
    await env.stop();
  }
});

test(
  '--max-payload cuts every longer line, not only one that arrives over several reads; between characters',
  T,
  async () => {
    const env = await exec(
      `process.stdout.write('a'.repeat(25) + '\\n' + 'é'.repeat(8) + '\\n' + '😀'.repeat(3) + '\\n');`,
      ['--max-payload', '10'],
    );
    try {
      const rec = record(await open(env.url));
      assert.equal((await rec.closed).code, 1000);
      assert.deepEqual(rec.messages, ['a'.repeat(10), 'a'.repeat(10), 'aaaaa', 'ééééé', 'ééé', '😀😀', '😀']);
    } finally {
      await env.stop();
    }
  },
);

test(
  'a program whose background child keeps its stdout: when the client leaves, its slot frees and shutdown does not wait for that child',
  T,
  async () => {
    // The grandchild inherits stdout and outlives the program.
    const env = await exec(
      `
    const g = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'inherit', 'ignore'] });
    console.log(g.pid);
    setInterval(() => {}, 1000);`,
      ['--max-processes', '1'],
    );
    const grandchildren: number[] = [];
    try {
      const ws = await open(env.url);
      const rec = record(ws);
      await until(() => rec.messages.length === 1);
      grandchildren.push(Number(rec.messages[0]));
      ws.close();
      await rec.closed;
      const again = await openWhenRoom(env.url);
      const r2 = record(again);
      await until(() => r2.messages.length === 1);
      grandchildren.push(Number(r2.messages[0]));
      const exited = once(env.child, 'exit');
      env.child.kill('SIGTERM');
      assert.equal((await r2.closed).code, 1001);
      const [code] = (await Promise.race([
        exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('duet exec did not exit')), 5000)),
      ])) as [number | null];
      assert.equal(code, 0);
    } finally {
      for (const pid of grandchildren) if (alive(pid)) process.kill(pid, 'SIGKILL');
      await env.stop();
    }
  },
);

test(
  'a program that does not read its stdin: no listener pile-up, and its exit closes the connection without waiting out a timeout',
  T,
  async () => {
    const env = await exec(`setTimeout(() => { console.log('bye'); process.exit(0); }, 1000);`);
    try {
      const ws = await open(env.url);
      const rec = record(ws);
      let byeAt = 0;
      ws.on('message', () => (byeAt = Date.now()));
      // Far more than the pipe and stdin's buffer take, in many small messages.
      const chunk = 'x'.repeat(2000);
      for (let i = 0; i < 400; i++) ws.send(chunk);
      assert.equal((await rec.closed).code, 1000);
      assert.deepEqual(rec.messages, ['bye']);
      const lag = Date.now() - byeAt;
      assert.ok(lag < 1000, `the close came ${lag} ms after the program's last line`);
      assert.doesNotMatch(env.stderr(), /MaxListenersExceeded/);
    } finally {
      await env.stop();
    }
  },
);

test(
  'a line longer than the server-wide slow-consumer limit (16 MiB) reaches a reading client, and so does what follows it',
  T,
  async () => {
    const env = await exec(`process.stdout.write('x'.repeat(17 * 1024 * 1024) + '\\nafter\\n');`, [
      '--max-payload',
      String(32 * 1024 * 1024),
    ]);
    try {
      const rec = record(await open(env.url));
      assert.deepEqual(await rec.closed, { code: 1000, reason: '' });
      assert.deepEqual(
        rec.messages.map((m) => m.length),
        [17 * 1024 * 1024, 5],
      );
    } finally {
      await env.stop();
    }
  },
);

test('--kill-timeout beyond what a timer can wait is refused', T, async () => {
  const child = spawn(process.execPath, [CLI, 'exec', '--port', '0', '--kill-timeout', '99999999999', '--', 'cat'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let closed = false;
  const exited = once(child, 'close').then(() => (closed = true));
  try {
    await until(() => closed, 5000);
    assert.equal(child.exitCode, 1);
    assert.match(err, /--kill-timeout must be at most 2147483647/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  }
});

test(
  'without "--", the first argument that is not an option starts the program: options after it are the program\'s',
  T,
  async () => {
    const env = await startDuet(['exec', '--port', '0', 'sh', '-c', 'echo "$@"', 'sh', '--binary', '--port', '9']);
    try {
      const url = env.url;
      assert.notEqual(new URL(url).port, '9');
      const ws = await open(url);
      const rec = record(ws);
      assert.deepEqual(await rec.closed, { code: 1000, reason: '' });
      assert.deepEqual(rec.messages, ['--binary --port 9']);
      assert.deepEqual(rec.binary, [false]);
    } finally {
      await env.stop();
    }
  },
);

test(
  'out of file descriptors: the connection whose program cannot start gets 1011, duet exec survives and serves again',
  T,
  async () => {
    // `ulimit -n` in sh lowers the hard limit too, so Node cannot raise it again.
    const env = await listening(
      spawn(
        'sh',
        [
          '-c',
          'ulimit -n 64 && exec "$0" "$@"',
          process.execPath,
          CLI,
          'exec',
          '--port',
          '0',
          '--max-processes',
          '100',
          '--',
          'cat',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const { child } = env;
    const held: WS[] = [];
    /** Open a connection; resolves with the echo of a line, or the close if the program could not start. */
    const attempt = async (url: string): Promise<string | { code: number; reason: string }> => {
      const ws = await open(url);
      const rec = record(ws);
      ws.send('ping');
      const result = await Promise.race([
        until(() => rec.messages.length === 1).then(() => rec.messages[0]),
        rec.closed,
      ]);
      if (typeof result === 'string') held.push(ws);
      return result;
    };
    try {
      const url = env.url;
      let refused: { code: number; reason: string } | undefined;
      for (let i = 0; i < 60 && refused === undefined; i++) {
        const result = await attempt(url);
        if (typeof result !== 'string') refused = result;
      }
      assert.deepEqual(refused, { code: 1011, reason: 'cannot start the program' });
      assert.match(env.stderr(), /cannot start cat: E[MN]FILE/);
      assert.equal(child.exitCode, null, `duet exec exited; stderr: ${env.stderr()}`);
      for (const ws of held.splice(0)) ws.terminate();
      // The programs of those connections stop, and their descriptors free.
      let again: string | { code: number; reason: string } = '';
      for (let i = 0; i < 50 && again !== 'ping'; i++) {
        again = await attempt(url);
        if (again !== 'ping') await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(again, 'ping');
    } finally {
      for (const ws of held) ws.terminate();
      await env.stop();
    }
  },
);

test(
  'bad arguments exit 1 with a one-line reason: --path room, --port 70000 or -1, --max-processes 0, --max-payload 1k',
  T,
  async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--path', 'room'], /--path must start with "\/", got "room"/],
      [['--port', '70000'], /--port "70000" is not a valid port: use 0-65535/],
      [['--port', '-1'], /--port "-1" is not a valid port: use 0-65535/],
      [['--max-processes', '0'], /--max-processes must be at least 1/],
      [['--max-payload', '1k'], /--max-payload must be a whole number, got "1k"/],
    ];
    for (const [args, reason] of cases) {
      const child = spawn(process.execPath, [CLI, 'exec', ...args, '--', process.execPath, '-e', ''], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1, args.join(' '));
      assert.match(err, reason);
    }
  },
);
