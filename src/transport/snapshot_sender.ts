// Sends a MsgSnap with the backend behind it: POST /raft/snapshot, body = the message framed as
// on the message stream (8-byte length + Message) followed by the db bytes, streamed.
import type { ClientRequest } from 'node:http';
import type { Message } from '../gen/raftpb/raft.js';
import { CT_OCTET_STREAM, idHex, SNAP_RESPONSE_READ_TIMEOUT_MS, SNAPSHOT_PATH } from './constants.js';
import { encodeMessageFrame } from './message_codec.js';
import type { PeerStatus } from './peer_status.js';
import { post } from './post.js';
import type { TransportContext } from './types.js';
import type { UrlPicker } from './url_picker.js';

export function sendSnapshot(
  ctx: TransportContext,
  picker: UrlPicker,
  status: PeerStatus,
  msg: Message,
  db: NodeJS.ReadableStream,
  size: number,
  done: () => void,
): ClientRequest {
  const to = msg.to;
  const index = msg.snapshot?.metadata?.index ?? 0;
  const base = picker.pick();
  const fields = {
    'local-member-id': idHex(ctx.local.localId),
    'remote-peer-id': idHex(to),
    'snapshot-index': index,
    'snapshot-size-bytes': size,
  };
  ctx.logger.info(fields, 'sending database snapshot');
  const start = Date.now();
  const header = encodeMessageFrame(msg);
  const writeBody = (req: ClientRequest) => {
    req.write(header);
    db.on('error', (err: Error) => req.destroy(err));
    db.pipe(req);
  };
  return post(
    ctx,
    {
      url: base + SNAPSHOT_PATH,
      contentType: CT_OCTET_STREAM,
      body: writeBody,
      to,
      responseTimeoutMs: SNAP_RESPONSE_READ_TIMEOUT_MS,
    },
    (err) => {
      const h = ctx.handler;
      if (err) {
        const d = db as NodeJS.ReadableStream & { destroy?: () => void };
        d.unpipe?.();
        d.destroy?.();
        ctx.logger.warn({ ...fields, error: err.message }, 'failed to send database snapshot');
        if (err.removed) h.reportCriticalError?.(err);
        picker.unreachable(base);
        status.deactivate('sendMsgSnap', 'post', err.message, base);
        h.reportUnreachable(to);
        h.reportSnapshot(to, false);
      } else {
        status.activate();
        h.reportSnapshot(to, true);
        ctx.logger.info({ ...fields, took: `${Date.now() - start}ms` }, 'sent database snapshot');
      }
      done();
    },
  );
}
