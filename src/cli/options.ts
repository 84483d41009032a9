/**
 * Option values and output shared by the `duet` commands.
 */
import type { AddressInfo } from 'node:net';

/** `--name N`: a whole number, or `fallback` when the option is absent. */
export function wholeNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`--${name} must be a whole number, got "${value}"`);
  return Number(value);
}

/** `--port N` (0 picks a free port). */
export function portNumber(value: string | undefined, fallback: number): number {
  const port = wholeNumber('port', value, fallback);
  if (port > 65535) throw new Error(`--port must be 0-65535, got ${port}`);
  return port;
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
  return `LISTENING ${scheme}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
}
