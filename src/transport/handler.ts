// The /raft routes a member serves to its peers: POST /raft (pipeline), GET /raft/stream/{msgapp,
// message}/<from id> (streams), POST /raft/snapshot, GET /raft/probing. Checks, status codes and
// error texts as etcd's rafthttp handlers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Message } from '../gen/raftpb/raft.js';
import {
  ERR_REMOVED_MEMBER_BODY,
  ERR_REMOVED_MEMBER_PROCESS,
  HDR_PEER_URLS,
  HDR_RAFT_TO,
  HDR_SERVER_FROM,
  idHex,
  OUT_HDR,
  PROBING_PATH,
  parseIdHex,
  RAFT_PREFIX,
  READ_BYTES_LIMIT,
  SNAPSHOT_PATH,
  STREAM_PREFIX,
  type StreamType,
  streamEndpoint,
} from './constants.js';
import { checkCompatibility, header } from './headers.js';
import { httpError, methodNotAllowed, urlPath } from './http_util.js';
import type { Peer } from './peer.js';
import { receiveSnapshot } from './snapshot_receiver.js';
import type { TransportContext } from './types.js';

export interface PeerRegistry {
  get(id: bigint): Peer | undefined;
  /** A member we do not know yet, met through its request: reachable by pipeline only. */
  addRemote(id: bigint, urls: string[]): void;
}

export type PeerRequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function createRaftHandler(ctx: TransportContext, peers: PeerRegistry): PeerRequestHandler {
  const msgappPath = `${streamEndpoint('msgappv2')}/`;
  const messagePath = `${streamEndpoint('message')}/`;

  /** Version and cluster checks shared by all three; answers 412 and returns false on failure. */
  const admit = (req: IncomingMessage, res: ServerResponse): boolean => {
    res.setHeader(OUT_HDR.clusterId, idHex(ctx.local.clusterId));
    const err = checkCompatibility(req.headers, ctx.local);
    if (err === undefined) return true;
    ctx.logger.warn(
      {
        'local-member-id': idHex(ctx.local.localId),
        'local-member-cluster-id': idHex(ctx.local.clusterId),
        'remote-peer-server-name': header(req.headers, HDR_SERVER_FROM),
        'remote-peer-cluster-id': header(req.headers, 'x-etcd-cluster-id'),
        error: err,
      },
      err === 'cluster ID mismatch' ? 'request cluster ID mismatch' : 'failed to check version compatibility',
    );
    req.resume();
    httpError(res, 412, err);
    return false;
  };

  const addRemoteFromRequest = (req: IncomingMessage) => {
    const from = parseIdHex(header(req.headers, HDR_SERVER_FROM));
    const urls = header(req.headers, HDR_PEER_URLS);
    if (from !== undefined && urls !== '') peers.addRemote(from, urls.split(','));
  };

  const pipeline = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
    if (!admit(req, res)) return;
    addRemoteFromRequest(req);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > READ_BYTES_LIMIT) {
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => {});
    req.on('end', () => {
      let m: Message;
      try {
        m = Message.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      } catch (err) {
        ctx.logger.warn(
          { 'local-member-id': idHex(ctx.local.localId), error: String(err) },
          'failed to unmarshal Raft message',
        );
        return httpError(res, 400, 'error unmarshalling raft message');
      }
      if (ctx.handler.isIdRemoved(m.from)) return httpError(res, 403, ERR_REMOVED_MEMBER_PROCESS);
      const done = (err?: unknown) => {
        if (err === undefined) {
          res.writeHead(204);
          res.end();
          return;
        }
        ctx.logger.warn(
          { 'local-member-id': idHex(ctx.local.localId), error: String(err) },
          'failed to process Raft message',
        );
        httpError(res, 500, 'error processing raft message');
      };
      try {
        const r = ctx.handler.process(m);
        if (r !== undefined && typeof r.then === 'function') r.then(() => done(), done);
        else done();
      } catch (err) {
        done(err);
      }
    });
  };

  const stream = (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
    res.setHeader(OUT_HDR.serverVersion, ctx.local.serverVersion);
    if (!admit(req, res)) return;
    let type: StreamType;
    let fromStr: string;
    if (path.startsWith(msgappPath)) {
      type = 'msgappv2';
      fromStr = path.slice(msgappPath.length);
    } else if (path.startsWith(messagePath)) {
      type = 'message';
      fromStr = path.slice(messagePath.length);
    } else {
      return httpError(res, 404, 'invalid path');
    }
    const from = parseIdHex(fromStr);
    if (from === undefined) return httpError(res, 404, 'invalid from');
    if (ctx.handler.isIdRemoved(from)) {
      ctx.logger.warn(
        { 'local-member-id': idHex(ctx.local.localId), 'remote-peer-id-from': idHex(from) },
        'rejected stream from remote peer because it was removed',
      );
      return httpError(res, 410, ERR_REMOVED_MEMBER_BODY);
    }
    const p = peers.get(from);
    if (p === undefined || p.remoteOnly) {
      const urls = header(req.headers, HDR_PEER_URLS);
      if (urls !== '') peers.addRemote(from, urls.split(','));
      ctx.logger.warn(
        {
          'local-member-id': idHex(ctx.local.localId),
          'remote-peer-id-from': idHex(from),
          'cluster-id': idHex(ctx.local.clusterId),
        },
        'failed to find remote peer in cluster',
      );
      return httpError(res, 404, 'error sender not found');
    }
    const to = header(req.headers, HDR_RAFT_TO);
    if (to !== idHex(ctx.local.localId)) {
      ctx.logger.warn(
        { 'local-member-id': idHex(ctx.local.localId), 'remote-peer-id-header': to },
        'ignored streaming request; ID mismatch',
      );
      return httpError(res, 412, 'to field mismatch');
    }
    req.socket.setNoDelay(true);
    res.writeHead(200);
    res.flushHeaders();
    if (!p.attachOutgoing(type, res)) res.end();
  };

  const probing = (_req: IncomingMessage, res: ServerResponse) => {
    // github.com/xiang90/probing's health answer: {"OK":true,"Now":"<RFC 3339>"}
    res.writeHead(200);
    res.end(`${JSON.stringify({ OK: true, Now: new Date().toISOString() })}\n`);
  };

  return (req, res) => {
    const path = urlPath(req.url);
    if (path !== RAFT_PREFIX && !path.startsWith(`${RAFT_PREFIX}/`)) return false;
    if (ctx.stopped) {
      httpError(res, 503, 'transport stopped');
      return true;
    }
    if (path === RAFT_PREFIX) pipeline(req, res);
    else if (path.startsWith(`${STREAM_PREFIX}/`)) stream(req, res, path);
    else if (path === SNAPSHOT_PATH) {
      if (req.method !== 'POST') methodNotAllowed(res, 'POST');
      else if (admit(req, res)) {
        addRemoteFromRequest(req);
        receiveSnapshot(ctx, req, res);
      }
    } else if (path === PROBING_PATH) probing(req, res);
    else httpError(res, 404, '404 page not found');
    return true;
  };
}
