// Certificate revocation lists (--client-crl-file, --peer-crl-file): the serial numbers a CRL
// revokes. As in etcd, a connection whose certificates include a revoked serial is refused; the
// CRL's own signature is not checked (etcd does not either: the file is trusted configuration).
import { x509 } from './x509.js';

/** The revoked serials (lower-case hex, no leading zeros) of a PEM or DER CRL. */
export function revokedSerials(data: Buffer): Set<string> {
  const text = data.toString('latin1');
  const crl = new (x509().X509Crl)(text.includes('-----BEGIN') ? text : new Uint8Array(data));
  return new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber)));
}

/** Hex serial without leading zeros, lower case: how Node's and the CRL's serials are compared. */
export function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '');
}
