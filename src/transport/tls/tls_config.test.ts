// Bad TLS files fail with a sentence naming the file and its flag; cipher names map to OpenSSL's;
// auto TLS makes a usable cert once and reuses it.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CipherSuiteError, opensslCiphers } from './ciphers.js';
import { selfCert } from './self_cert.js';
import { emptyTlsInfo, LoadedTls, PEER_TLS_FLAGS, rejectionMessage, TlsConfigError } from './tls_config.js';

test('auto TLS: an ECDSA cert with the listen hosts as SANs, reused on the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'etcd-ts-selfcert-'));
  try {
    const files = await selfCert(
      join(dir, 'fixtures', 'peer'),
      ['127.0.0.1:2380', 'localhost:2381', '[::1]:2382'],
      2,
    );
    const cert = new X509Certificate(readFileSync(files.certFile));
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.match(cert.subjectAltName ?? '', /DNS:localhost/);
    const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365 * 86400_000);
    assert.ok(years > 1.9 && years < 2.1, `validity ${years} years`);
    const again = await selfCert(join(dir, 'fixtures', 'peer'), ['127.0.0.1:2380'], 1);
    assert.equal(readFileSync(again.certFile, 'utf8'), readFileSync(files.certFile, 'utf8'));
    // and it loads as a side's TLS
    LoadedTls.load({ ...emptyTlsInfo(), ...files, selfCert: true }, PEER_TLS_FLAGS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad files: plain sentences that name the file and the flag', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'etcd-ts-badtls-'));
  try {
    const a = await selfCert(join(dir, 'a'), ['127.0.0.1:1']);
    const b = await selfCert(join(dir, 'b'), ['127.0.0.1:1']);
    const load =
      (certFile: string, keyFile: string, extra = {}) =>
      () =>
        LoadedTls.load({ ...emptyTlsInfo(), certFile, keyFile, ...extra }, PEER_TLS_FLAGS);
    assert.throws(load(join(dir, 'nope.pem'), a.keyFile), (e: Error) => {
      assert.ok(e instanceof TlsConfigError);
      assert.match(e.message, /cannot read certificate file .*nope\.pem \(--peer-cert-file\): no such file/);
      return true;
    });
    writeFileSync(join(dir, 'junk.key'), 'not a key');
    assert.throws(
      load(a.certFile, join(dir, 'junk.key')),
      /junk\.key \(--peer-key-file\) is not a PEM private key/,
    );
    assert.throws(load(a.certFile, b.keyFile), /does not match the certificate/);
    assert.throws(load(a.certFile, ''), /--peer-cert-file and --peer-key-file must both be given/);
    assert.throws(
      load(a.certFile, a.keyFile, { trustedCaFile: join(dir, 'junk.key') }),
      /\(--peer-trusted-ca-file\) holds no PEM certificate/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cipher suites: Go names to OpenSSL names, TLS 1.3 kept on, unknown names refused', () => {
  assert.equal(opensslCiphers([]), undefined);
  assert.equal(
    opensslCiphers(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305']),
    'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305',
  );
  assert.throws(() => opensslCiphers(['TLS_NOPE']), CipherSuiteError);
});

test("rejection line: etcd's wording", () => {
  assert.equal(
    rejectionMessage('127.0.0.1:5000', 'remote error: tls: bad certificate', ''),
    'rejected connection from "127.0.0.1:5000" (error "remote error: tls: bad certificate", ServerName "")',
  );
});
