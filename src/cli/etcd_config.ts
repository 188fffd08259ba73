// Turns parsed flags into a validated ServerConfig, with etcd's rules and a plain message on error.
import { parseGoDuration, parseRetention } from '../server/auto_compactor.js';
import { defaultConfig, type ServerConfig } from '../server/config.js';
import { CipherSuiteError, opensslCiphers, type TlsInfo } from '../transport/tls/index.js';
import { FlagError, type ParsedFlags, parseBool } from './flags.js';

function parseUrls(flag: string, text: string): URL[] {
  const urls: URL[] = [];
  for (const part of text.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw new FlagError(
        `invalid value "${s}" for --${flag}: not a URL (expected e.g. http://127.0.0.1:2379)`,
      );
    }
    if (!['http:', 'https:', 'unix:', 'unixs:'].includes(url.protocol)) {
      throw new FlagError(
        `invalid value "${s}" for --${flag}: URL scheme must be http, https, unix or unixs`,
      );
    }
    if ((url.protocol === 'http:' || url.protocol === 'https:') && url.port === '') {
      throw new FlagError(
        `invalid value "${s}" for --${flag}: URL address does not have the form "host:port"`,
      );
    }
    if (url.pathname !== '/' && url.pathname !== '') {
      throw new FlagError(`invalid value "${s}" for --${flag}: URL must not contain a path`);
    }
    urls.push(url);
  }
  if (urls.length === 0) throw new FlagError(`--${flag} must list at least one URL`);
  return urls;
}

function parseInitialCluster(text: string): Map<string, string[]> {
  const cluster = new Map<string, string[]>();
  for (const part of text.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    const eq = s.indexOf('=');
    if (eq <= 0) throw new FlagError(`--initial-cluster entry "${s}" must have the form name=peerURL`);
    const name = s.slice(0, eq);
    const url = parseUrls('initial-cluster', s.slice(eq + 1))[0]!;
    const list = cluster.get(name) ?? [];
    list.push(urlString(url));
    cluster.set(name, list);
  }
  return cluster;
}

/** A URL as etcd prints it: scheme://host:port, no trailing slash. */
export function urlString(url: URL): string {
  if (url.protocol === 'unix:' || url.protocol === 'unixs:')
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  return `${url.protocol}//${url.host}`;
}

function int(flags: ParsedFlags, name: string, min = 0): number {
  const n = Number(flags.values.get(name));
  if (!Number.isSafeInteger(n) || n < min) throw new FlagError(`--${name} must be an integer >= ${min}`);
  return n;
}

export function flagsToConfig(flags: ParsedFlags): ServerConfig {
  const v = (name: string) => flags.values.get(name) ?? '';
  const cfg = defaultConfig();
  cfg.name = v('name');
  cfg.dataDir = flags.explicit.has('data-dir') ? v('data-dir') : `${cfg.name}.etcd`;
  cfg.listenClientUrls = parseUrls('listen-client-urls', v('listen-client-urls'));
  cfg.advertiseClientUrls = parseUrls('advertise-client-urls', v('advertise-client-urls'));
  cfg.listenPeerUrls = parseUrls('listen-peer-urls', v('listen-peer-urls'));
  cfg.initialAdvertisePeerUrls = parseUrls('initial-advertise-peer-urls', v('initial-advertise-peer-urls'));
  // etcd: with no --initial-cluster given, the default names this member with its advertised peer URLs
  cfg.initialCluster = flags.explicit.has('initial-cluster')
    ? parseInitialCluster(v('initial-cluster'))
    : new Map([[cfg.name, cfg.initialAdvertisePeerUrls.map(urlString)]]);
  const state = v('initial-cluster-state');
  if (state !== 'new' && state !== 'existing') {
    throw new FlagError(
      `invalid value "${state}" for --initial-cluster-state: valid values are "new", "existing"`,
    );
  }
  cfg.initialClusterState = state;
  cfg.initialClusterToken = v('initial-cluster-token');
  cfg.maxRequestBytes = int(flags, 'max-request-bytes', 1);
  cfg.maxTxnOps = int(flags, 'max-txn-ops', 1);
  cfg.quotaBackendBytes = int(flags, 'quota-backend-bytes');
  // etcd: an unset (or zero) batch interval or limit means the default
  const interval = v('backend-batch-interval');
  if (interval !== '') {
    let ms: number;
    try {
      ms = parseGoDuration(interval);
    } catch (err) {
      throw new FlagError(
        `invalid value "${interval}" for --backend-batch-interval: ${(err as Error).message}`,
      );
    }
    if (ms < 0) throw new FlagError(`--backend-batch-interval must not be negative (got "${interval}")`);
    if (ms > 0) cfg.backendBatchIntervalMs = ms;
  }
  const limit = int(flags, 'backend-batch-limit');
  if (limit > 0) cfg.backendBatchLimit = limit;
  const compactionMode = v('auto-compaction-mode');
  if (compactionMode !== 'periodic' && compactionMode !== 'revision') {
    throw new FlagError(`unknown auto-compaction-mode "${compactionMode}": use periodic or revision`);
  }
  cfg.autoCompactionMode = compactionMode;
  cfg.autoCompactionRetention = v('auto-compaction-retention') || '0';
  try {
    parseRetention(compactionMode, cfg.autoCompactionRetention);
  } catch (err) {
    throw new FlagError(
      `invalid value "${cfg.autoCompactionRetention}" for --auto-compaction-retention: ${(err as Error).message}`,
    );
  }
  cfg.autoDisarmNoSpace = parseBool(
    'experimental-auto-disarm-nospace',
    v('experimental-auto-disarm-nospace'),
  );
  cfg.snapshotCount = int(flags, 'snapshot-count', 1);
  cfg.snapshotCatchUpEntries = int(flags, 'experimental-snapshot-catchup-entries', 1);
  cfg.heartbeatIntervalMs = int(flags, 'heartbeat-interval', 1);
  cfg.electionTimeoutMs = int(flags, 'election-timeout', 1);
  if (cfg.electionTimeoutMs < 5 * cfg.heartbeatIntervalMs) {
    throw new FlagError(
      `--election-timeout[${cfg.electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${cfg.heartbeatIntervalMs}ms]`,
    );
  }
  cfg.maxConcurrentStreams = Math.min(int(flags, 'max-concurrent-streams', 1), 2 ** 32 - 1);
  cfg.strictReconfigCheck = parseBool('strict-reconfig-check', v('strict-reconfig-check'));
  cfg.preVote = parseBool('pre-vote', v('pre-vote'));
  cfg.unsafeNoFsync = parseBool('unsafe-no-fsync', v('unsafe-no-fsync'));
  const level = parseBool('debug', v('debug')) ? 'debug' : v('log-level');
  if (!['debug', 'info', 'warn', 'error', 'panic', 'fatal'].includes(level)) {
    throw new FlagError(
      `invalid value "${level}" for --log-level: use debug, info, warn, error, panic or fatal`,
    );
  }
  cfg.logLevel = level as ServerConfig['logLevel'];

  let ciphers: string | undefined;
  try {
    ciphers = opensslCiphers(
      v('cipher-suites')
        .split(',')
        .map((c) => c.trim())
        .filter((c) => c !== ''),
    );
  } catch (err) {
    if (err instanceof CipherSuiteError) throw new FlagError(`--cipher-suites: ${err.message}`);
    throw err;
  }
  const tlsInfo = (p: string, crl: string, clientAuth: string): TlsInfo => ({
    certFile: v(`${p}cert-file`),
    keyFile: v(`${p}key-file`),
    trustedCaFile: v(`${p}trusted-ca-file`),
    clientCertAuth: parseBool(clientAuth, v(clientAuth)),
    crlFile: v(crl),
    allowedCn: p === 'peer-' ? v('peer-cert-allowed-cn') : '',
    allowedHostname: v(`${p === 'peer-' ? 'peer' : 'client'}-cert-allowed-hostname`),
    selfCert: false,
    ciphers,
  });
  cfg.clientTls = tlsInfo('', 'client-crl-file', 'client-cert-auth');
  cfg.peerTls = tlsInfo('peer-', 'peer-crl-file', 'peer-client-cert-auth');
  if (cfg.peerTls.allowedCn !== '' && cfg.peerTls.allowedHostname !== '') {
    throw new FlagError(
      `--peer-cert-allowed-cn and --peer-cert-allowed-hostname are mutually exclusive (cn="${cfg.peerTls.allowedCn}", hostname="${cfg.peerTls.allowedHostname}")`,
    );
  }
  cfg.clientAutoTls = parseBool('auto-tls', v('auto-tls'));
  cfg.peerAutoTls = parseBool('peer-auto-tls', v('peer-auto-tls'));
  cfg.selfSignedCertValidity = int(flags, 'self-signed-cert-validity', 1);

  const own = cfg.initialCluster.get(cfg.name);
  if (own === undefined) {
    throw new FlagError(
      `couldn't find local name "${cfg.name}" in the initial cluster configuration (--initial-cluster=${v('initial-cluster')}); add ${cfg.name}=<peer URL> or fix --name`,
    );
  }
  const advertised = cfg.initialAdvertisePeerUrls.map(urlString).sort();
  if ([...own].sort().join(',') !== advertised.join(',')) {
    throw new FlagError(
      `--initial-cluster has ${cfg.name}=${own.join(',')} but missing from --initial-advertise-peer-urls=${advertised.join(',')}; make them list the same URLs`,
    );
  }
  return cfg;
}
