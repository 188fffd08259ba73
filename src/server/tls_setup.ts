// Turns the configured TLS settings into loaded ones at start, as etcd's embed does: auto TLS
// (self-signed certs under <data-dir>/fixtures/{client,peer}) when asked for and no cert files are
// given, and the rule that an https URL needs a cert and key.
import { join } from 'node:path';
import {
  CLIENT_TLS_FLAGS,
  LoadedTls,
  PEER_TLS_FLAGS,
  selfCert,
  type TlsInfo,
  tlsInfoEmpty,
} from '../transport/tls/index.js';
import type { ServerConfig } from './config.js';
import type { Logger } from './logger.js';

export class TlsSetupError extends Error {}

async function resolve(
  side: 'client' | 'peer',
  info: TlsInfo,
  auto: boolean,
  urls: readonly URL[],
  config: ServerConfig,
  log: Logger,
): Promise<LoadedTls | undefined> {
  const flags = side === 'client' ? CLIENT_TLS_FLAGS : PEER_TLS_FLAGS;
  let use = info;
  if (auto && !tlsInfoEmpty(info)) {
    log.warn({}, `ignoring ${side} auto TLS since certs given`);
  } else if (auto) {
    const dir = join(config.dataDir, 'fixtures', side);
    const files = await selfCert(
      dir,
      urls.map((u) => u.host),
      config.selfSignedCertValidity,
    );
    use = { ...info, ...files, selfCert: true };
    log.info({ dir }, `using self-signed ${side} TLS certificate (auto TLS)`);
  }
  const httpsUrl = urls.find((u) => u.protocol === 'https:' || u.protocol === 'unixs:');
  if (tlsInfoEmpty(use)) {
    if (httpsUrl) {
      throw new TlsSetupError(
        `TLS key/cert (${flags.cert}, ${flags.key}) must be provided for ${side} url ${httpsUrl.protocol}//${httpsUrl.host} with HTTPS scheme`,
      );
    }
    return undefined;
  }
  for (const u of urls) {
    if (u.protocol === 'http:' || u.protocol === 'unix:')
      log.warn(
        { url: `${u.protocol}//${u.host}` },
        `scheme is ${u.protocol.slice(0, -1).toUpperCase()} while key and cert files are present; ignoring key and cert files for this ${side} URL`,
      );
  }
  return LoadedTls.load(use, flags);
}

/** The client port's TLS, or undefined when no https client URL needs it. */
export function loadClientTls(config: ServerConfig, log: Logger): Promise<LoadedTls | undefined> {
  return resolve('client', config.clientTls, config.clientAutoTls, config.listenClientUrls, config, log);
}

/** The peer TLS (listener and dials), or undefined when none is configured. */
export function loadPeerTls(config: ServerConfig, log: Logger): Promise<LoadedTls | undefined> {
  return resolve('peer', config.peerTls, config.peerAutoTls, config.listenPeerUrls, config, log);
}
