// One POST to a peer (pipeline message or snapshot) and etcd's reading of the answer.
import type { ClientRequest, IncomingMessage } from 'node:http';
import {
  ERR_CLUSTER_ID_MISMATCH,
  ERR_INCOMPATIBLE_VERSION,
  ERR_MEMBER_REMOVED,
  HDR_CLUSTER_ID,
  idHex,
} from './constants.js';
import { requestHeaders } from './headers.js';
import { netErrorText } from './peer_status.js';
import { readText } from './stream_reader.js';
import type { TransportContext } from './types.js';

export class PostError extends Error {
  constructor(
    message: string,
    readonly removed = false,
  ) {
    super(message);
  }
}

export interface PostOptions {
  url: string; // full URL
  contentType: string;
  /** A whole body, or a writer that streams it and ends the request. */
  body: Buffer | ((req: ClientRequest) => void);
  to: bigint;
  /** Give up on reading the answer after this long once headers arrived (snapshots). */
  responseTimeoutMs?: number;
}

/** Posts; `done(undefined)` on 204, else the error etcd's checkPostResponse would return. */
export function post(
  ctx: TransportContext,
  opts: PostOptions,
  done: (err: PostError | undefined) => void,
): ClientRequest {
  const headers = requestHeaders(ctx.local, opts.contentType);
  if (Buffer.isBuffer(opts.body)) headers['Content-Length'] = opts.body.length;
  let settled = false;
  const finish = (err: PostError | undefined) => {
    if (settled) return;
    settled = true;
    clearTimeout(dialTimer);
    done(err);
  };
  const req = ctx.dialer.request(opts.url, { method: 'POST', headers }, 'pipeline');
  req.setNoDelay(true);
  // The dial timeout covers connecting; once connected, the request may take as long as it needs.
  const dialTimer = setTimeout(() => {
    req.destroy();
    finish(new PostError(`dial tcp ${new URL(opts.url).host}: i/o timeout`));
  }, ctx.dialTimeoutMs);
  req.on('socket', (sock) => {
    if (!sock.connecting) clearTimeout(dialTimer);
    else sock.once('connect', () => clearTimeout(dialTimer));
  });
  req.on('error', (err) => finish(new PostError(netErrorText(err))));
  req.on('response', (res: IncomingMessage) => {
    let t: NodeJS.Timeout | undefined;
    if (opts.responseTimeoutMs) t = setTimeout(() => res.destroy(), opts.responseTimeoutMs);
    readText(res, (body) => {
      if (t) clearTimeout(t);
      finish(checkPostResponse(ctx, res, body, opts));
    });
  });
  if (Buffer.isBuffer(opts.body)) req.end(opts.body);
  else opts.body(req);
  return req;
}

function checkPostResponse(
  ctx: TransportContext,
  res: IncomingMessage,
  body: string,
  opts: PostOptions,
): PostError | undefined {
  switch (res.statusCode) {
    case 204:
      return undefined;
    case 412: {
      const text = body.replace(/\n$/, '');
      if (text === ERR_INCOMPATIBLE_VERSION) {
        ctx.logger.error(
          { 'remote-peer-id': idHex(opts.to) },
          'request sent was ignored by peer (server version incompatible)',
        );
        return new PostError(ERR_INCOMPATIBLE_VERSION);
      }
      if (text === ERR_CLUSTER_ID_MISMATCH) {
        ctx.logger.error(
          {
            'remote-peer-id': idHex(opts.to),
            'remote-peer-cluster-id': String(res.headers[HDR_CLUSTER_ID] ?? ''),
            'local-member-cluster-id': idHex(ctx.local.clusterId),
          },
          'request sent was ignored (cluster ID mismatch)',
        );
        return new PostError(ERR_CLUSTER_ID_MISMATCH);
      }
      return new PostError(`unhandled error ${JSON.stringify(body)} when precondition failed`);
    }
    case 403:
      return new PostError(ERR_MEMBER_REMOVED, true);
    default:
      return new PostError(
        `unexpected http status ${res.statusMessage ?? res.statusCode} while posting to ${JSON.stringify(opts.url)}`,
      );
  }
}
