// Test PKI made on the fly with @peculiar/x509 (so TLS tests need no fixture files): a CA, leaf
// certs signed by it (CN and SANs of the test's choosing, good for server and client auth), and a
// CRL revoking some of them. Everything is written as PEM into one directory.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface LeafFiles {
  cert: string;
  key: string;
  serial: string;
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${der.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

function serial(): string {
  const b = randomBytes(12);
  b[0]! &= 0x7f;
  b[0]! |= 0x10; // no leading zero byte, so both sides print the same hex
  return b.toString('hex');
}

export class TestCa {
  private constructor(
    readonly dir: string,
    readonly caFile: string,
    private readonly keys: webcrypto.CryptoKeyPair,
    private readonly name: string,
  ) {}

  static async create(dir: string): Promise<TestCa> {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const name = 'CN=etcd-ts test CA';
    const now = Date.now();
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + 86400_000),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, ca.toString('pem'));
    return new TestCa(dir, caFile, keys, name);
  }

  /** A cert for `cn` with SANs localhost and 127.0.0.1 (unless `sans` says otherwise). */
  async leaf(file: string, cn: string, sans: x509.JsonGeneralName[] = defaultSans()): Promise<LeafFiles> {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const sn = serial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: sn,
      subject: `CN=${cn}`,
      issuer: this.name,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + 86400_000),
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        new x509.SubjectAlternativeNameExtension(sans),
        await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey),
      ],
    });
    const out = { cert: join(this.dir, `${file}.crt`), key: join(this.dir, `${file}.key`), serial: sn };
    writeFileSync(out.cert, cert.toString('pem'));
    writeFileSync(out.key, await pkcs8Pem(keys.privateKey));
    return out;
  }

  /** A CRL revoking the given serials. */
  async crl(file: string, serials: string[]): Promise<string> {
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.name,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + 86400_000),
      entries: serials.map((s) => ({ serialNumber: s, revocationDate: new Date(Date.now() - 60_000) })),
      signingKey: this.keys.privateKey,
      signingAlgorithm: ALG,
    });
    const path = join(this.dir, file);
    writeFileSync(path, crl.toString('pem'));
    return path;
  }
}

function defaultSans(): x509.JsonGeneralName[] {
  return [
    { type: 'dns', value: 'localhost' },
    { type: 'ip', value: '127.0.0.1' },
  ];
}
