/**
 * Words for what `duet connect` prints: what a close code means, and what to do when a
 * connection fails because the URL's scheme does not match the server (wss:// to a plain
 * server, ws:// to a TLS one).
 */
import * as tls from 'node:tls';

const MEANINGS: Readonly<Record<number, string>> = {
  1000: 'normal closure',
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status code',
  1006: 'connection lost without a close frame',
  1007: 'invalid payload data',
  1008: 'policy violation',
  1009: 'message too big',
  1010: 'missing extension',
  1011: 'internal error',
  1012: 'service restart',
  1013: 'try again later',
  1014: 'bad gateway',
  1015: 'TLS handshake failed',
};

/** What a close code means (RFC 6455 section 7.4 and the IANA registry), in a few words. */
export function closeCodeMeaning(code: number): string {
  const known = MEANINGS[code];
  if (known !== undefined) return known;
  if (code >= 3000 && code <= 3999) return 'library or framework code';
  if (code >= 4000 && code <= 4999) return 'application code';
  return 'unknown code';
}

/**
 * `url` as it may be printed: without the `user:password@` part (credentials given in the URL
 * must not end up in a terminal's scrollback or a log). Anything that does not parse is
 * returned as it is.
 */
export function displayUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return String(url);
  }
  if (parsed.username === '' && parsed.password === '') return parsed.href;
  parsed.username = '';
  parsed.password = '';
  return parsed.href;
}

/** `URL` with its scheme switched between ws: and wss: (credentials left out). */
function otherScheme(url: URL): string {
  const switched = new URL(url.href);
  switched.protocol = url.protocol === 'wss:' ? 'ws:' : 'wss:';
  return displayUrl(switched);
}

/**
 * Whether something at `host:port` completes a TLS handshake (any certificate): the test for
 * "this is a wss:// server" after a ws:// attempt was cut off. Resolves false on any failure,
 * or after `ms`.
 */
export function speaksTls(host: string, port: number, ms = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false });
    const done = (answer: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), ms);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/**
 * The line to print for a connection that could not be opened: the error's message, plus
 * the remedy when the scheme does not match the server. `probe` (for tests) says whether the
 * server speaks TLS.
 */
export async function explainFailure(
  err: (Error & { code?: string }) | undefined,
  input: string,
  probe: (host: string, port: number) => Promise<boolean> = speaksTls,
): Promise<string> {
  const message = err?.message ?? 'connection failed';
  if (err?.code === 'WS_ERR_HANDSHAKE_TIMEOUT') return `${message} (--handshake-timeout MS waits longer)`;
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return message;
  }
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol === 'http:') url.protocol = 'ws:';
  const secure = url.protocol === 'wss:';
  const text = `${message} ${String((err?.cause as Error | undefined)?.message ?? '')}`;
  // OpenSSL reads the first bytes of a plain HTTP answer as a TLS record header.
  if (secure && /wrong version number|packet length too long|http request/i.test(text)) {
    return `${url.host} answered in plain text, not TLS: it is a ws:// server, not wss://; try ${otherScheme(url)}`;
  }
  // A TLS server drops a connection that starts with an HTTP request instead of a TLS hello.
  if (!secure && err?.code === 'ECONNRESET') {
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? 80 : Number(url.port);
    if (await probe(hostname, port)) {
      return `${url.host} speaks TLS: it is a wss:// server, not ws://; try ${otherScheme(url)}`;
    }
  }
  return message;
}
