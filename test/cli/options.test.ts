/**
 * cli/options.ts on its own, in process: the option values every `duet` command parses
 * (wholeNumber, portNumber, with the exact one-line errors users read) and the LISTENING line.
 * The flags themselves are declared by each command (serve.ts, connect.ts, exec.ts, with
 * node:util parseArgs); serve.test.ts, connect.test.ts and exec.test.ts run them end to end.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { listeningLine, openLine, parseCommandLine, portNumber, wholeNumber } from '../../src/cli/options.js';

describe('wholeNumber', () => {
  it('an absent option gives the fallback', () => {
    assert.equal(wholeNumber('max-payload', undefined, 1234), 1234);
  });

  it('decimal digits give their number, leading zeros included', () => {
    assert.equal(wholeNumber('n', '0', 5), 0);
    assert.equal(wholeNumber('n', '42', 5), 42);
    assert.equal(wholeNumber('n', '007', 5), 7);
    assert.equal(wholeNumber('n', '1048576', 5), 1_048_576);
  });

  it('anything but digits is refused: "--NAME must be a whole number, got "VALUE""', () => {
    for (const bad of ['', '-1', '+1', '1.5', '1e3', '0x10', 'abc', ' 1', '1 ', '12a', '١٢', 'Infinity', 'NaN']) {
      assert.throws(
        () => wholeNumber('max-line', bad, 5),
        (err: unknown) => {
          assert.ok(err instanceof Error);
          assert.equal(err.message, `--max-line must be a whole number, got "${bad}"`);
          return true;
        },
        JSON.stringify(bad),
      );
    }
  });
});

describe('portNumber', () => {
  it('0 (a free port) up to 65535 are ports', () => {
    assert.equal(portNumber('0', 8080), 0);
    assert.equal(portNumber('80', 8080), 80);
    assert.equal(portNumber('65535', 8080), 65535);
  });

  it('an absent --port gives the fallback', () => {
    assert.equal(portNumber(undefined, 8080), 8080);
  });

  it('past 65535, negative or not a number: "--port "V" is not a valid port: use 0-65535 ..."', () => {
    for (const bad of ['65536', '99999999', '-1', 'http', '', '1.5']) {
      assert.throws(() => portNumber(bad, 8080), {
        message: `--port "${bad}" is not a valid port: use 0-65535 (0 picks a free one)`,
      });
    }
  });
});

describe('listeningLine', () => {
  const bound = { address: '127.0.0.1', family: 'IPv4', port: 41234 };

  it('the port really bound, not the one asked for (--port 0)', () => {
    assert.equal(listeningLine('ws', '127.0.0.1', bound, 0), 'LISTENING ws://127.0.0.1:41234');
  });

  it('wss for TLS', () => {
    assert.equal(listeningLine('wss', '127.0.0.1', bound, 0), 'LISTENING wss://127.0.0.1:41234');
  });

  it('an IPv6 host in brackets; a host name as it is', () => {
    assert.equal(
      listeningLine('ws', '::1', { ...bound, address: '::1', family: 'IPv6' }, 0),
      'LISTENING ws://[::1]:41234',
    );
    assert.equal(listeningLine('ws', 'localhost', bound, 0), 'LISTENING ws://localhost:41234');
  });

  it('no address to read the port from (null, or a pipe path): the port given', () => {
    assert.equal(listeningLine('ws', '127.0.0.1', null, 8080), 'LISTENING ws://127.0.0.1:8080');
    assert.equal(listeningLine('ws', '127.0.0.1', '/tmp/duet.sock', 8080), 'LISTENING ws://127.0.0.1:8080');
  });
});

describe('parseCommandLine', () => {
  const options = { port: { type: 'string' }, verbose: { type: 'boolean', short: 'v' } } as const;

  it('a value starting with a dash and a digit goes to its option (--port -1), so its own check can explain it', () => {
    assert.equal(parseCommandLine('serve', ['--port', '-1'], options).values.port, '-1');
    assert.equal(parseCommandLine('serve', ['--port', '-80', '-v'], options).values.port, '-80');
  });

  it('anything else is node:util parseArgs as it is: strict, a boolean before a dash-digit word, "--" ends options', () => {
    assert.deepEqual(
      { ...parseCommandLine('serve', ['--port', '80', '-v'], options).values },
      { port: '80', verbose: true },
    );
    const parsed = parseCommandLine('exec', ['-v', '--', '--port', '-1'], options, true);
    assert.deepEqual({ ...parsed.values }, { verbose: true });
    assert.deepEqual(parsed.positionals, ['--port', '-1']);
    assert.throws(() => parseCommandLine('serve', ['-v', '-1'], options), /Unknown option '-1'/);
  });

  it('a parse error says where the options are listed', () => {
    assert.throws(
      () => parseCommandLine('connect', ['--bogus'], options),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /^Unknown option '--bogus'/);
        assert.match(err.message, /\n\("duet help connect" lists the options\)$/);
        return true;
      },
    );
  });
});

describe('openLine', () => {
  it('the page to open in a browser: http(s) for ws(s), the bound port', () => {
    assert.equal(openLine('ws', '127.0.0.1', 8080, 'the demo'), 'open http://127.0.0.1:8080/ for the demo');
    assert.equal(openLine('wss', 'localhost', 443, 'the demo'), 'open https://localhost:443/ for the demo');
  });

  it('a wildcard address shows its loopback; IPv6 in brackets', () => {
    assert.equal(openLine('ws', '0.0.0.0', 1, 'x'), 'open http://127.0.0.1:1/ for x');
    assert.equal(openLine('ws', '::', 1, 'x'), 'open http://[::1]:1/ for x');
    assert.equal(openLine('ws', '::1', 1, 'x'), 'open http://[::1]:1/ for x');
  });
});
