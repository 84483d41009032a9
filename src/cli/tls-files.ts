/**
 * `--tls-cert FILE --tls-key FILE` of `duet serve` and `duet exec`: read both PEM files and
 * check them before listening, so that a wrong path, swapped files or a key of another
 * certificate is reported naming the file and what to do, instead of OpenSSL's "PEM
 * routines::no start line".
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/** The PEM certificate (chain) and private key, as node:https takes them. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PRIVATE_KEY = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/;

/** Why a file cannot be read, in words (the system's code stays in brackets). */
function unreadable(option: string, path: string, err: NodeJS.ErrnoException): Error {
  const why: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EISDIR: 'it is a directory',
  };
  const reason = (err.code !== undefined && why[err.code]) || err.message;
  return new Error(`${option} ${path}: cannot read it: ${reason}${err.code ? ` (${err.code})` : ''}`, { cause: err });
}

function read(option: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw unreadable(option, path, err as NodeJS.ErrnoException);
  }
}

/**
 * Both options or neither: undefined for neither; the files, read and checked, for both.
 * Throws an Error whose message names the option, the file and the remedy.
 */
export function readTlsFiles(certPath: string | undefined, keyPath: string | undefined): TlsFiles | undefined {
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) throw new Error('--tls-cert and --tls-key go together');
  const cert = read('--tls-cert', certPath);
  const key = read('--tls-key', keyPath);
  const certText = cert.toString('latin1');
  const keyText = key.toString('latin1');
  const certHasCert = CERTIFICATE.test(certText);
  const keyHasKey = PRIVATE_KEY.test(keyText);
  if (!certHasCert && !keyHasKey && PRIVATE_KEY.test(certText) && CERTIFICATE.test(keyText)) {
    throw new Error(
      `--tls-cert and --tls-key look swapped: ${certPath} holds a private key and ${keyPath} a certificate; ` +
        `try --tls-cert ${keyPath} --tls-key ${certPath}`,
    );
  }
  if (!certHasCert) {
    throw new Error(
      `--tls-cert ${certPath}: no PEM certificate in it (a "-----BEGIN CERTIFICATE-----" block)` +
        (PRIVATE_KEY.test(certText) ? '; it holds a private key, which goes to --tls-key' : ''),
    );
  }
  if (!keyHasKey) {
    throw new Error(
      `--tls-key ${keyPath}: no PEM private key in it (a "-----BEGIN PRIVATE KEY-----" block)` +
        (CERTIFICATE.test(keyText) ? '; it holds a certificate, which goes to --tls-cert' : ''),
    );
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyText)) {
    throw new Error(
      `--tls-key ${keyPath}: the key is encrypted with a passphrase; give an unencrypted one ` +
        `(openssl pkey -in ${keyPath} -out plain-key.pem)`,
    );
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH' || /key values mismatch/i.test(e.message)) {
      throw new Error(`--tls-key ${keyPath} is not the private key of the certificate in ${certPath}`, { cause: err });
    }
    throw new Error(`--tls-cert ${certPath} / --tls-key ${keyPath}: ${e.message}`, { cause: err });
  }
  return { cert, key };
}
