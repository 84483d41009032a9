/**
 * Option values and output shared by the `duet` commands.
 */
import type { AddressInfo } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type Parsed<T extends OptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: boolean; strict: true }>
>;

/**
 * node:util parseArgs for the command `command`, strict, with two fixes for users: a value
 * that starts with a dash and a digit goes to its option (`--port -1` is read as
 * `--port=-1`, so the option's own check says what is wrong with it, where parseArgs only
 * calls it "ambiguous"), and a parse error ends with where the options are listed.
 */
export function parseCommandLine<T extends OptionsConfig>(
  command: string,
  argv: string[],
  options: T,
  allowPositionals = false,
): Parsed<T> {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    const next = argv[i + 1];
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`);
      i++;
    } else {
      args.push(arg);
    }
  }
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n("duet help ${command}" lists the options)`, { cause: err });
  }
}

/** `--name N`: a whole number, or `fallback` when the option is absent. */
export function wholeNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`--${name} must be a whole number, got "${value}"`);
  return Number(value);
}

/** `--port N` (0 picks a free port). */
export function portNumber(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    throw new Error(`--port "${value}" is not a valid port: use 0-65535 (0 picks a free one)`);
  }
  return Number(value);
}

/**
 * The line tools and tests wait for, with the port really bound (so `--port 0` works):
 * `LISTENING ws://HOST:PORT`, an IPv6 host in brackets.
 */
export function listeningLine(
  scheme: 'ws' | 'wss',
  host: string,
  address: AddressInfo | string | null,
  port: number,
): string {
  const actualPort = typeof address === 'object' && address !== null ? address.port : port;
  return `LISTENING ${scheme}://${bracketed(host)}:${actualPort}`;
}

/**
 * The line after LISTENING for people: where to point a browser. A wildcard bind address
 * (0.0.0.0, ::) is not one to browse to: its loopback stands in for it.
 */
export function openLine(scheme: 'ws' | 'wss', host: string, port: number, what: string): string {
  const browsable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' || host === '[::]' ? '::1' : host;
  return `open ${scheme === 'wss' ? 'https' : 'http'}://${bracketed(browsable)}:${port}/ for ${what}`;
}

function bracketed(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
