// Every outgoing peer connection goes through a PeerDialer: raft streams, pipeline posts, snapshot
// posts, /members and /version probes and lease forwarding. It picks http or https by the peer
// URL's scheme; https dials present the peer cert as the client cert and trust the peer CA (with
// --peer-auto-tls, as etcd, they skip verification of the other end).
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ConnectionOptions } from 'node:tls';

export type DialKind = 'stream' | 'pipeline';

export interface PeerResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export class PeerDialer {
  // Streams hold their connection for life; the pipeline reuses up to 4 per peer.
  private readonly http: Record<DialKind, HttpAgent>;
  private readonly https: Record<DialKind, HttpsAgent>;

  /** `tls`: node:tls options for https peers (undefined: Node's defaults, no client cert). */
  constructor(tls?: ConnectionOptions) {
    this.http = {
      stream: new HttpAgent({ keepAlive: false }),
      pipeline: new HttpAgent({ keepAlive: true, maxSockets: 4, maxFreeSockets: 4 }),
    };
    this.https = {
      stream: new HttpsAgent({ ...tls, keepAlive: false }),
      pipeline: new HttpsAgent({ ...tls, keepAlive: true, maxSockets: 4, maxFreeSockets: 4 }),
    };
  }

  request(url: string, opts: RequestOptions, kind: DialKind = 'pipeline'): ClientRequest {
    if (url.startsWith('https:')) return httpsRequest(url, { ...opts, agent: this.https[kind] });
    return httpRequest(url, { ...opts, agent: this.http[kind] });
  }

  /** One request with its whole answer (for the small peer endpoints). */
  call(
    url: string,
    opts: { method?: string; headers?: Record<string, string>; body?: Uint8Array; signal?: AbortSignal },
  ): Promise<PeerResponse> {
    return new Promise((resolve, reject) => {
      const req = this.request(url, {
        method: opts.method ?? 'GET',
        headers: opts.headers,
        signal: opts.signal,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      });
      req.end(opts.body);
    });
  }

  destroy(): void {
    for (const a of [...Object.values(this.http), ...Object.values(this.https)]) a.destroy();
  }
}

/** For callers that were given no dialer: plain defaults, shared. */
export const defaultDialer = new PeerDialer();
