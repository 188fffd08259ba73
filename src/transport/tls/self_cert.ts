// Auto TLS (--auto-tls, --peer-auto-tls): a self-signed ECDSA P-256 certificate and key, written
// to <dir>/cert.pem and <dir>/key.pem, as etcd's SelfCert makes them. Files already there are
// reused, so a restarted member keeps its certificate. Node's crypto makes keys but cannot build
// X.509 certificates; @peculiar/x509 builds and signs them on Node's WebCrypto.
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { x509 as loadX509 } from './x509.js';

export interface SelfCertFiles {
  certFile: string;
  keyFile: string;
}

/** "host:port" or "[v6]:port" or a bare host -> the host alone. */
function hostOf(hostPort: string): string {
  const m = /^\[([^\]]+)\](?::\d*)?$/.exec(hostPort);
  if (m) return m[1]!;
  const i = hostPort.lastIndexOf(':');
  return i > 0 && hostPort.indexOf(':') === i ? hostPort.slice(0, i) : hostPort;
}

/**
 * Makes (or reuses) a self-signed cert for `hosts` (host:port strings, from the listen URLs): IPs
 * become IP SANs, names DNS SANs. Valid from now for `validityYears` (etcd's
 * --self-signed-cert-validity, default 1).
 */
export async function selfCert(
  dir: string,
  hosts: readonly string[],
  validityYears = 1,
): Promise<SelfCertFiles> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile };
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new Error(`cannot create auto TLS directory ${dir}: ${(err as Error).message}`);
  }
  const x509 = loadX509();
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof X509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names: X509.JsonGeneralName[] = [];
  for (const hp of hosts) {
    const h = hostOf(hp);
    if (h === '') continue;
    const entry: X509.JsonGeneralName = { type: isIP(h) ? 'ip' : 'dns', value: h };
    if (!names.some((n) => n.type === entry.type && n.value === entry.value)) names.push(entry);
  }
  const notBefore = new Date();
  const notAfter = new Date(notBefore);
  notAfter.setFullYear(notAfter.getFullYear() + Math.max(1, validityYears));
  // a 128-bit random serial, as etcd draws it; the top bit cleared keeps the DER integer positive
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: 'O=etcd',
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      // peers present the same cert as a client cert, so it is good for both ends
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  writeFileSync(certFile, cert.toString('pem'), { mode: 0o644 });
  return { certFile, keyFile };
}
