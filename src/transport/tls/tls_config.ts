// TLS settings for one side (client port or peer port), as etcd's TLSInfo: files read and checked
// once at start (a bad file is a plain sentence naming it and its flag), turned into node:tls
// options for the listener and for outgoing dials, plus the checks node:tls cannot do during the
// handshake: --*-cert-allowed-cn / --*-cert-allowed-hostname and the CRL.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  type ConnectionOptions,
  checkServerIdentity,
  createSecureContext,
  type DetailedPeerCertificate,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import { normalizeSerial, revokedSerials } from './crl.js';

/** Which flags a side's settings came from, so errors name them. */
export interface TlsFlagNames {
  cert: string;
  key: string;
  ca: string;
  crl: string;
}

export const CLIENT_TLS_FLAGS: TlsFlagNames = {
  cert: '--cert-file',
  key: '--key-file',
  ca: '--trusted-ca-file',
  crl: '--client-crl-file',
};
export const PEER_TLS_FLAGS: TlsFlagNames = {
  cert: '--peer-cert-file',
  key: '--peer-key-file',
  ca: '--peer-trusted-ca-file',
  crl: '--peer-crl-file',
};

export interface TlsInfo {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  clientCertAuth: boolean;
  crlFile: string;
  allowedCn: string;
  allowedHostname: string;
  /** Auto TLS: our cert is self-signed, so our dials do not verify the other end (etcd's InsecureSkipVerify). */
  selfCert: boolean;
  /** An OpenSSL cipher list (see ciphers.ts), or undefined for Node's defaults. */
  ciphers?: string;
}

export function emptyTlsInfo(): TlsInfo {
  return {
    certFile: '',
    keyFile: '',
    trustedCaFile: '',
    clientCertAuth: false,
    crlFile: '',
    allowedCn: '',
    allowedHostname: '',
    selfCert: false,
  };
}

export function tlsInfoEmpty(info: TlsInfo): boolean {
  return info.certFile === '' && info.keyFile === '';
}

export class TlsConfigError extends Error {}

function readPem(path: string, flag: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new TlsConfigError(`cannot read ${what} ${path} (${flag}): ${why ?? (err as Error).message}`);
  }
}

/** A side's TLS, loaded and checked: options for node:tls and the post-handshake checks. */
export class LoadedTls {
  private constructor(
    readonly info: TlsInfo,
    private readonly cert: Buffer,
    private readonly key: Buffer,
    private readonly ca: Buffer | undefined,
  ) {}

  /** Reads and checks the files; throws TlsConfigError with a plain sentence on a bad one. */
  static load(info: TlsInfo, flags: TlsFlagNames): LoadedTls {
    if (info.certFile === '' || info.keyFile === '') {
      throw new TlsConfigError(
        `${flags.cert} and ${flags.key} must both be given (cert: "${info.certFile}", key: "${info.keyFile}")`,
      );
    }
    if (info.allowedCn !== '' && info.allowedHostname !== '') {
      throw new TlsConfigError(
        `AllowedCN and AllowedHostname are mutually exclusive (cn="${info.allowedCn}", hostname="${info.allowedHostname}")`,
      );
    }
    const cert = readPem(info.certFile, flags.cert, 'certificate file');
    const key = readPem(info.keyFile, flags.key, 'key file');
    let x: X509Certificate;
    try {
      x = new X509Certificate(cert);
    } catch {
      throw new TlsConfigError(`${info.certFile} (${flags.cert}) is not a PEM certificate`);
    }
    let k: ReturnType<typeof createPrivateKey>;
    try {
      k = createPrivateKey(key);
    } catch {
      throw new TlsConfigError(`${info.keyFile} (${flags.key}) is not a PEM private key`);
    }
    if (!x.checkPrivateKey(k)) {
      throw new TlsConfigError(
        `the key in ${info.keyFile} (${flags.key}) does not match the certificate in ${info.certFile} (${flags.cert})`,
      );
    }
    let ca: Buffer | undefined;
    if (info.trustedCaFile !== '') {
      ca = readPem(info.trustedCaFile, flags.ca, 'trusted CA file');
      try {
        new X509Certificate(ca);
        createSecureContext({ ca });
      } catch {
        throw new TlsConfigError(`${info.trustedCaFile} (${flags.ca}) holds no PEM certificate`);
      }
    }
    if (info.crlFile !== '') {
      try {
        revokedSerials(readPem(info.crlFile, flags.crl, 'CRL file'));
      } catch (err) {
        if (err instanceof TlsConfigError) throw err;
        throw new TlsConfigError(`${info.crlFile} (${flags.crl}) is not a certificate revocation list`);
      }
    }
    if (info.ciphers !== undefined) {
      try {
        createSecureContext({ ciphers: info.ciphers });
      } catch (err) {
        throw new TlsConfigError(`--cipher-suites: ${(err as Error).message}`);
      }
    }
    return new LoadedTls(info, cert, key, ca);
  }

  /** Whether the listener asks for and verifies client certs (etcd: a trusted CA file implies it). */
  get requiresClientCert(): boolean {
    return this.info.clientCertAuth || this.info.trustedCaFile !== '';
  }

  /** What both ends use: our cert and key, the trusted CAs, TLS 1.2 or later, the cipher list. */
  private common(): Pick<TlsOptions, 'cert' | 'key' | 'ca' | 'minVersion' | 'ciphers'> {
    return { cert: this.cert, key: this.key, ca: this.ca, minVersion: 'TLSv1.2', ciphers: this.info.ciphers };
  }

  /** node:tls server options (ALPN is the caller's). */
  serverOptions(): TlsOptions {
    const require = this.requiresClientCert;
    return {
      ...this.common(),
      requestCert: require,
      rejectUnauthorized: require,
    };
  }

  /** node:tls options for dialing the other side (our cert as the client cert, the trusted CA). */
  clientOptions(): ConnectionOptions {
    return {
      ...this.common(),
      rejectUnauthorized: !this.info.selfCert,
      checkServerIdentity: (host, cert) => {
        const err = checkServerIdentity(host, cert);
        if (err) return err;
        const reason = this.checkPolicy(cert.raw);
        return reason === undefined ? undefined : new Error(reason);
      },
    };
  }

  /** The allowed-CN / allowed-hostname rule on the other end's leaf certificate (DER). */
  private checkPolicy(raw: Buffer | undefined): string | undefined {
    const { allowedCn, allowedHostname } = this.info;
    if (allowedCn === '' && allowedHostname === '') return undefined;
    if (raw === undefined || raw.length === 0) return 'client certificate authentication failed';
    const cert = new X509Certificate(raw);
    let ok: boolean;
    if (allowedCn !== '') ok = commonName(cert) === allowedCn;
    else if (isIP(allowedHostname)) ok = cert.checkIP(allowedHostname) !== undefined;
    else ok = cert.checkHost(allowedHostname, { subject: 'never' }) !== undefined;
    // etcd's (and Go's) text, which operators and etcd's tests look for
    return ok ? undefined : 'client certificate authentication failed';
  }

  private crlCache: { mtimeMs: number; serials: Set<string> } | undefined;

  /** Serials revoked by the CRL file, re-read when it changes (etcd reads it on every accept). */
  private revoked(): Set<string> | undefined {
    const path = this.info.crlFile;
    if (path === '') return undefined;
    try {
      const m = statSync(path).mtimeMs;
      if (this.crlCache?.mtimeMs !== m) {
        this.crlCache = { mtimeMs: m, serials: revokedSerials(readFileSync(path)) };
      }
    } catch {
      // an unreadable CRL later on keeps the last good list (the file was checked at start)
    }
    return this.crlCache?.serials;
  }

  /**
   * The checks after a server-side handshake: CRL, then allowed CN/hostname. Returns the reason to
   * refuse the connection, or undefined.
   */
  checkAccepted(socket: TLSSocket): string | undefined {
    const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate;
    const hasCert = peer !== null && typeof peer === 'object' && peer.raw !== undefined;
    const revoked = this.revoked();
    if (revoked && hasCert) {
      // every certificate the client sent, leaf first (issuerCertificate links to itself at the root)
      const seen = new Set<DetailedPeerCertificate>();
      for (let c: DetailedPeerCertificate | undefined = peer; c && !seen.has(c); c = c.issuerCertificate) {
        seen.add(c);
        const serial = normalizeSerial(c.serialNumber);
        if (revoked.has(serial)) return `transport: certificate serial ${serial} revoked`;
      }
    }
    if (this.requiresClientCert) return this.checkPolicy(hasCert ? peer.raw : undefined);
    return undefined;
  }
}

function commonName(cert: X509Certificate): string {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return '';
}

/** etcd's handshake-failure line (embed.logTLSHandshakeFailure). */
export function rejectionMessage(remoteAddr: string, reason: string, serverName: string): string {
  return `rejected connection from ${JSON.stringify(remoteAddr)} (error ${JSON.stringify(reason)}, ServerName ${JSON.stringify(serverName)})`;
}

/** "ip:port" of a socket's remote end, as Go prints it (also once a failed handshake closed it). */
export function remoteAddrOf(socket: { remoteAddress?: string; remotePort?: number }): string {
  // after a reset the TLS socket forgets its peer; its TCP socket or cached peer name still know
  const s = socket as typeof socket & {
    _parent?: { remoteAddress?: string; remotePort?: number };
    _peername?: { address?: string; port?: number };
  };
  const a = s.remoteAddress ?? s._parent?.remoteAddress ?? s._peername?.address ?? '';
  const port = s.remotePort ?? s._parent?.remotePort ?? s._peername?.port ?? 0;
  const host = a.startsWith('::ffff:') ? a.slice(7) : a;
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Go's wording for a handshake that node:tls (OpenSSL) refused, so logs read as etcd's do; the
 * OpenSSL text is kept when there is no Go counterpart.
 */
export function handshakeErrorText(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  const alert = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(.+)$/.exec(code);
  if (alert) {
    const names: Record<string, string> = {
      BAD_CERTIFICATE: 'bad certificate',
      UNKNOWN_CA: 'unknown certificate authority',
      CERTIFICATE_REQUIRED: 'certificate required',
      CERTIFICATE_REVOKED: 'revoked certificate',
      CERTIFICATE_EXPIRED: 'expired certificate',
      CERTIFICATE_UNKNOWN: 'unknown certificate',
      HANDSHAKE_FAILURE: 'handshake failure',
      PROTOCOL_VERSION: 'protocol version not supported',
      DECRYPT_ERROR: 'error decrypting message',
    };
    const name = names[alert[1]!] ?? alert[1]!.toLowerCase().replace(/_/g, ' ');
    return `remote error: tls: ${name}`;
  }
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return "tls: client didn't provide a certificate";
  if (code === 'ERR_SSL_CERTIFICATE_VERIFY_FAILED' || /certificate verify failed/.test(err.message))
    return "tls: failed to verify client's certificate: x509: certificate signed by unknown authority";
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_HTTP_REQUEST')
    return 'tls: first record does not look like a TLS handshake';
  if (code === 'ECONNRESET') return 'EOF';
  return err.message;
}
