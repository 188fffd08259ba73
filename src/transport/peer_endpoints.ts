// The non-raft endpoints of etcd's peer listener, as a handler the server fills with callbacks:
// GET /members (membership as JSON), GET /version, POST /leases (keepalive forwarded to the
// leader, protobuf LeaseKeepAliveRequest/Response) and POST /leases/internal (TimeToLive,
// leasepb.LeaseInternalRequest/Response); and the client side of each, for talking to a peer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  type LeaseTimeToLiveResponse,
} from '../gen/etcdserverpb/rpc.js';
import { LeaseInternalRequest, LeaseInternalResponse } from '../gen/leasepb/lease.js';
import { CT_PROTOBUF, DEFAULT_SERVER_VERSION, idHex, OUT_HDR } from './constants.js';
import { defaultDialer, type PeerDialer } from './dialer.js';
import type { PeerHandler } from './http_server.js';
import { httpError, methodNotAllowed, urlPath } from './http_util.js';

export const MEMBERS_PATH = '/members';
export const VERSION_PATH = '/version';
export const LEASES_PATH = '/leases';
export const LEASES_INTERNAL_PATH = '/leases/internal';
export const ERR_LEASE_NOT_FOUND = 'lease not found';
export const ERR_LEASE_HTTP_TIMEOUT = 'waiting for node to catch up its applied index has timed out';

/** A member as etcd's membership.Member marshals to JSON. */
export interface PeerMember {
  id: bigint;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner?: boolean;
}

/** etcd's JSON for members: the ID as a bare (64-bit) number, empty name/clientURLs omitted. */
export function membersJson(ms: readonly PeerMember[]): string {
  const parts = ms.map((m) => {
    let s = `{"id":${m.id.toString()},"peerURLs":${JSON.stringify(m.peerURLs)}`;
    if (m.isLearner) s += ',"isLearner":true';
    if (m.name) s += `,"name":${JSON.stringify(m.name)}`;
    if (m.clientURLs.length > 0) s += `,"clientURLs":${JSON.stringify(m.clientURLs)}`;
    return `${s}}`;
  });
  return `[${parts.join(',')}]\n`;
}

export function parseMembersJson(text: string): PeerMember[] {
  // Quote the 64-bit IDs before JSON.parse so they survive exactly.
  const raw = JSON.parse(text.replace(/"id":\s*(\d+)/g, '"id":"$1"')) as {
    id: string;
    name?: string;
    peerURLs?: string[];
    clientURLs?: string[];
    isLearner?: boolean;
  }[];
  return raw.map((m) => ({
    id: BigInt(m.id),
    name: m.name ?? '',
    peerURLs: m.peerURLs ?? [],
    clientURLs: m.clientURLs ?? [],
    ...(m.isLearner ? { isLearner: true } : {}),
  }));
}

/** An error a lease callback throws to choose the answer: 404 (not found), 408 (timeout), ... */
export class PeerHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface PeerEndpointsOptions {
  clusterId(): bigint;
  members(): PeerMember[];
  /** The decided cluster version ("3.4.0"), or undefined ("not_decided"). */
  clusterVersion(): string | undefined;
  serverVersion?: string;
  /** Renews a lease on the leader; resolves to the new TTL. */
  renewLease?(id: bigint): Promise<number>;
  /** TimeToLive on the leader. */
  leaseTimeToLive?(id: bigint, keys: boolean): Promise<LeaseTimeToLiveResponse>;
}

export function createPeerEndpointsHandler(opts: PeerEndpointsOptions): PeerHandler {
  const serverVersion = opts.serverVersion ?? DEFAULT_SERVER_VERSION;
  return (req, res) => {
    const path = urlPath(req.url);
    switch (path) {
      case MEMBERS_PATH:
        if (req.method !== 'GET') methodNotAllowed(res, 'GET');
        else {
          res.writeHead(200, {
            [OUT_HDR.clusterId]: idHex(opts.clusterId()),
            'Content-Type': 'application/json',
          });
          res.end(membersJson(opts.members()));
        }
        return true;
      case VERSION_PATH:
        if (req.method !== 'GET') methodNotAllowed(res, 'GET');
        else {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(
            JSON.stringify({
              etcdserver: serverVersion,
              etcdcluster: opts.clusterVersion() ?? 'not_decided',
            }),
          );
        }
        return true;
      case LEASES_PATH:
      case LEASES_INTERNAL_PATH:
        if (!opts.renewLease || !opts.leaseTimeToLive) return false;
        if (req.method !== 'POST') methodNotAllowed(res, 'POST');
        else void serveLease(req, res, path, opts);
        return true;
      default:
        return false;
    }
  };
}

async function serveLease(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  opts: PeerEndpointsOptions,
): Promise<void> {
  let body: Buffer;
  try {
    body = await readBody(req);
  } catch {
    return httpError(res, 400, 'error reading body');
  }
  let out: Uint8Array;
  try {
    if (path === LEASES_PATH) {
      let lreq: LeaseKeepAliveRequest;
      try {
        lreq = LeaseKeepAliveRequest.decode(body);
      } catch {
        return httpError(res, 400, 'error unmarshalling request');
      }
      const ttl = await opts.renewLease!(lreq.ID);
      out = LeaseKeepAliveResponse.encode(
        LeaseKeepAliveResponse.fromPartial({ ID: lreq.ID, TTL: ttl }),
      ).finish();
    } else {
      let lreq: LeaseInternalRequest;
      try {
        lreq = LeaseInternalRequest.decode(body);
      } catch {
        return httpError(res, 400, 'error unmarshalling request');
      }
      const r = lreq.LeaseTimeToLiveRequest;
      const ttl = await opts.leaseTimeToLive!(r?.ID ?? 0n, r?.keys ?? false);
      out = LeaseInternalResponse.encode({ LeaseTimeToLiveResponse: ttl }).finish();
    }
  } catch (err) {
    const status = err instanceof PeerHttpError ? err.status : 400;
    return httpError(res, status, (err as Error).message);
  }
  res.writeHead(200, { 'Content-Type': CT_PROTOBUF });
  res.end(out);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// ---- client side -------------------------------------------------------------------------
// Each takes the dialer that knows the peer TLS settings (https peers); default: plain defaults.

async function postProto(
  url: string,
  body: Uint8Array,
  signal: AbortSignal | undefined,
  dialer: PeerDialer,
): Promise<Uint8Array> {
  const res = await dialer.call(url, {
    method: 'POST',
    headers: { 'Content-Type': CT_PROTOBUF },
    body,
    signal,
  });
  const b = new Uint8Array(res.body);
  if (res.status === 408) throw new PeerHttpError(408, ERR_LEASE_HTTP_TIMEOUT);
  if (res.status === 404) throw new PeerHttpError(404, ERR_LEASE_NOT_FOUND);
  if (res.status !== 200)
    throw new PeerHttpError(res.status, `lease: unknown error(${Buffer.from(b).toString()})`);
  return b;
}

/** Forwards a keepalive to the leader's peer URL; resolves to the TTL (etcd's RenewHTTP). */
export async function renewLeaseHttp(
  peerUrl: string,
  id: bigint,
  signal?: AbortSignal,
  dialer: PeerDialer = defaultDialer,
): Promise<number> {
  const body = LeaseKeepAliveRequest.encode({ ID: id }).finish();
  const resp = LeaseKeepAliveResponse.decode(
    await postProto(`${peerUrl.replace(/\/+$/, '')}${LEASES_PATH}`, body, signal, dialer),
  );
  if (resp.ID !== id) throw new Error('lease: renew id mismatch');
  return resp.TTL;
}

/** Asks the leader for a lease's TimeToLive (etcd's TimeToLiveHTTP). */
export async function leaseTimeToLiveHttp(
  peerUrl: string,
  id: bigint,
  keys: boolean,
  signal?: AbortSignal,
  dialer: PeerDialer = defaultDialer,
): Promise<LeaseTimeToLiveResponse> {
  const body = LeaseInternalRequest.encode({ LeaseTimeToLiveRequest: { ID: id, keys } }).finish();
  const raw = await postProto(`${peerUrl.replace(/\/+$/, '')}${LEASES_INTERNAL_PATH}`, body, signal, dialer);
  const resp = LeaseInternalResponse.decode(raw).LeaseTimeToLiveResponse;
  if (!resp || resp.ID !== id) throw new Error('lease: renew id mismatch');
  return resp;
}

/** GET <peer>/members: the membership a peer knows, and its cluster ID. */
export async function fetchMembers(
  peerUrl: string,
  signal?: AbortSignal,
  dialer: PeerDialer = defaultDialer,
): Promise<{ clusterId: bigint; members: PeerMember[] }> {
  const res = await dialer.call(`${peerUrl.replace(/\/+$/, '')}${MEMBERS_PATH}`, { signal });
  const text = res.body.toString();
  if (res.status !== 200)
    throw new Error(`unexpected status ${res.status} from ${peerUrl}${MEMBERS_PATH}: ${text.trim()}`);
  const cid = String(res.headers['x-etcd-cluster-id'] ?? '0');
  return { clusterId: BigInt(`0x${cid}`), members: parseMembersJson(text) };
}

/** GET <peer>/version: {etcdserver, etcdcluster}. */
export async function fetchVersion(
  peerUrl: string,
  signal?: AbortSignal,
  dialer: PeerDialer = defaultDialer,
): Promise<{ etcdserver: string; etcdcluster: string }> {
  const res = await dialer.call(`${peerUrl.replace(/\/+$/, '')}${VERSION_PATH}`, { signal });
  if (res.status !== 200) throw new Error(`unexpected status ${res.status} from ${peerUrl}${VERSION_PATH}`);
  return JSON.parse(res.body.toString()) as { etcdserver: string; etcdcluster: string };
}
