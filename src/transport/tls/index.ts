export { CipherSuiteError, opensslCiphers } from './ciphers.js';
export { revokedSerials } from './crl.js';
export { type SelfCertFiles, selfCert } from './self_cert.js';
export {
  CLIENT_TLS_FLAGS,
  emptyTlsInfo,
  handshakeErrorText,
  LoadedTls,
  PEER_TLS_FLAGS,
  rejectionMessage,
  remoteAddrOf,
  TlsConfigError,
  type TlsFlagNames,
  type TlsInfo,
  tlsInfoEmpty,
} from './tls_config.js';
