/**
 * cli/tls-files.ts in process: `--tls-cert` / `--tls-key` read and checked before listening,
 * every refusal naming the option, the file and the remedy. serve.test.ts and exec.test.ts
 * run the options end to end.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTlsFiles } from '../../src/cli/tls-files.js';
import { selfSignedCert } from '../tls-helpers.js';

describe('readTlsFiles', () => {
  let dir: string;
  const file = (name: string): string => join(dir, name);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'duet-tls-files-'));
    const { cert, key } = selfSignedCert();
    writeFileSync(file('cert.pem'), cert);
    writeFileSync(file('key.pem'), key);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(file('other-key.pem'), other.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const locked = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    writeFileSync(file('encrypted-key.pem'), locked.privateKey);
    writeFileSync(file('garbage.pem'), 'not a PEM file\n');
    writeFileSync(file('both.pem'), cert + key);
    writeFileSync(file('broken-cert.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    writeFileSync(file('unreadable.pem'), key);
    chmodSync(file('unreadable.pem'), 0o000);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('neither option: undefined (no TLS); both, matching: the two files as read', () => {
    assert.equal(readTlsFiles(undefined, undefined), undefined);
    const files = readTlsFiles(file('cert.pem'), file('key.pem'));
    assert.match(files!.cert.toString(), /BEGIN CERTIFICATE/);
    assert.match(files!.key.toString(), /PRIVATE KEY/);
    // A file holding both the certificate and its key serves for each.
    assert.ok(readTlsFiles(file('both.pem'), file('both.pem')));
  });

  it('one without the other is refused', () => {
    assert.throws(() => readTlsFiles(file('cert.pem'), undefined), { message: '--tls-cert and --tls-key go together' });
    assert.throws(() => readTlsFiles(undefined, file('key.pem')), { message: '--tls-cert and --tls-key go together' });
  });

  it('a file that cannot be read: the option, the file and why', () => {
    assert.throws(() => readTlsFiles(file('nope.pem'), file('key.pem')), {
      message: `--tls-cert ${file('nope.pem')}: cannot read it: no such file (ENOENT)`,
    });
    assert.throws(() => readTlsFiles(file('cert.pem'), dir), {
      message: `--tls-key ${dir}: cannot read it: it is a directory (EISDIR)`,
    });
    // root reads any file whatever its mode; everyone else gets EACCES.
    if (process.getuid?.() !== 0) {
      assert.throws(() => readTlsFiles(file('cert.pem'), file('unreadable.pem')), {
        message: `--tls-key ${file('unreadable.pem')}: cannot read it: permission denied (EACCES)`,
      });
    }
  });

  it('swapped files: says so and gives the right order', () => {
    assert.throws(() => readTlsFiles(file('key.pem'), file('cert.pem')), {
      message:
        `--tls-cert and --tls-key look swapped: ${file('key.pem')} holds a private key and ${file('cert.pem')} ` +
        `a certificate; try --tls-cert ${file('cert.pem')} --tls-key ${file('key.pem')}`,
    });
  });

  it('a key given as the certificate, or a certificate as the key: where it belongs', () => {
    assert.throws(() => readTlsFiles(file('key.pem'), file('key.pem')), {
      message: `--tls-cert ${file('key.pem')}: no PEM certificate in it (a "-----BEGIN CERTIFICATE-----" block); it holds a private key, which goes to --tls-key`,
    });
    assert.throws(() => readTlsFiles(file('cert.pem'), file('cert.pem')), {
      message: `--tls-key ${file('cert.pem')}: no PEM private key in it (a "-----BEGIN PRIVATE KEY-----" block); it holds a certificate, which goes to --tls-cert`,
    });
  });

  it('a file that is not PEM at all', () => {
    assert.throws(() => readTlsFiles(file('garbage.pem'), file('key.pem')), {
      message: `--tls-cert ${file('garbage.pem')}: no PEM certificate in it (a "-----BEGIN CERTIFICATE-----" block)`,
    });
    assert.throws(() => readTlsFiles(file('cert.pem'), file('garbage.pem')), {
      message: `--tls-key ${file('garbage.pem')}: no PEM private key in it (a "-----BEGIN PRIVATE KEY-----" block)`,
    });
  });

  it('an encrypted key: asks for an unencrypted one and says how to make it', () => {
    assert.throws(() => readTlsFiles(file('cert.pem'), file('encrypted-key.pem')), {
      message:
        `--tls-key ${file('encrypted-key.pem')}: the key is encrypted with a passphrase; give an unencrypted one ` +
        `(openssl pkey -in ${file('encrypted-key.pem')} -out plain-key.pem)`,
    });
  });

  it("another certificate's key: says the key does not belong to the certificate", () => {
    assert.throws(() => readTlsFiles(file('cert.pem'), file('other-key.pem')), {
      message: `--tls-key ${file('other-key.pem')} is not the private key of the certificate in ${file('cert.pem')}`,
    });
  });

  it('a certificate block that OpenSSL cannot parse: both files named, with its reason', () => {
    assert.throws(
      () => readTlsFiles(file('broken-cert.pem'), file('key.pem')),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.ok(
          err.message.startsWith(`--tls-cert ${file('broken-cert.pem')} / --tls-key ${file('key.pem')}: `),
          err.message,
        );
        return true;
      },
    );
  });
});
