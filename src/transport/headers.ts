// The headers every peer request carries, and etcd's checks on them (version compatibility, then
// cluster ID).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import {
  ERR_CLUSTER_ID_MISMATCH,
  ERR_INCOMPATIBLE_VERSION,
  HDR_CLUSTER_ID,
  HDR_MIN_CLUSTER_VERSION,
  HDR_SERVER_VERSION,
  idHex,
  OUT_HDR,
} from './constants.js';

export interface LocalIdentity {
  localId: bigint;
  clusterId: bigint;
  serverVersion: string;
  minClusterVersion: string;
  /** This member's advertised peer URLs (X-PeerURLs), so a peer that does not know us can answer. */
  peerUrls: readonly string[];
}

export function requestHeaders(local: LocalIdentity, contentType?: string): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {
    [OUT_HDR.serverFrom]: idHex(local.localId),
    [OUT_HDR.serverVersion]: local.serverVersion,
    [OUT_HDR.minClusterVersion]: local.minClusterVersion,
    [OUT_HDR.clusterId]: idHex(local.clusterId),
  };
  if (contentType) h['Content-Type'] = contentType;
  if (local.peerUrls.length > 0) h[OUT_HDR.peerUrls] = local.peerUrls.join(',');
  return h;
}

export function header(h: IncomingHttpHeaders, name: string): string {
  const v = h[name];
  if (v === undefined) return '';
  return Array.isArray(v) ? (v[0] ?? '') : v;
}

interface MajorMinor {
  major: number;
  minor: number;
}

/** Major.minor of a semver string; an absent header means 2.0.0, as in etcd. */
export function parseMajorMinor(v: string): MajorMinor | undefined {
  if (v === '') return { major: 2, minor: 0 };
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

function compareMajorMinor(a: MajorMinor, b: MajorMinor): number {
  if (a.major !== b.major) return a.major < b.major ? -1 : 1;
  if (a.minor !== b.minor) return a.minor < b.minor ? -1 : 1;
  return 0;
}

/**
 * etcd's checkClusterCompatibilityFromHeader: the remote server version must not be below our
 * minimum cluster version, the remote minimum cluster version not above our server version, and
 * the cluster IDs must match. Returns the error text to answer with (412), or undefined.
 */
export function checkCompatibility(
  h: IncomingHttpHeaders,
  local: Pick<LocalIdentity, 'clusterId' | 'serverVersion' | 'minClusterVersion'>,
): string | undefined {
  const remoteServer = parseMajorMinor(header(h, HDR_SERVER_VERSION));
  const remoteMin = parseMajorMinor(header(h, HDR_MIN_CLUSTER_VERSION));
  const localServer = parseMajorMinor(local.serverVersion);
  const localMin = parseMajorMinor(local.minClusterVersion);
  if (!remoteServer || !remoteMin || !localServer || !localMin) return ERR_INCOMPATIBLE_VERSION;
  if (compareMajorMinor(remoteServer, localMin) < 0) return ERR_INCOMPATIBLE_VERSION;
  if (compareMajorMinor(remoteMin, localServer) > 0) return ERR_INCOMPATIBLE_VERSION;
  if (header(h, HDR_CLUSTER_ID) !== idHex(local.clusterId)) return ERR_CLUSTER_ID_MISMATCH;
  return undefined;
}
