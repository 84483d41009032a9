/**
 * TLS helpers for tests: a throwaway self-signed certificate for `localhost`, made with the
 * `openssl` command at test time (Node's crypto can make keys but not X.509 certificates).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCert {
  /** PEM private key (RSA 2048, unencrypted). */
  key: string;
  /** PEM certificate, CN=localhost, valid one day. */
  cert: string;
}

let cached: SelfSignedCert | undefined;

/**
 * A self-signed certificate for `localhost`. Generated once per process and cached. Throws
 * with a clear message when `openssl` is not installed: TLS tests must not pass silently.
 */
export function selfSignedCert(): SelfSignedCert {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'duet-tls-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  try {
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-subj',
          '/CN=localhost',
          '-days',
          '1',
          '-keyout',
          keyPath,
          '-out',
          certPath,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
      );
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      if (e.code === 'ENOENT') {
        throw new Error(
          'TLS tests need the `openssl` command to generate a self-signed certificate, and it was not found on PATH',
          { cause: err },
        );
      }
      throw new Error(
        `openssl failed to generate a self-signed certificate: ${e.stderr?.toString().trim() || e.message}`,
        { cause: err },
      );
    }
    cached = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
