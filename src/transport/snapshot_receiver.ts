// POST /raft/snapshot: a MsgSnap framed as on the message stream, then the backend's bytes. The
// server saves the db (receiveSnapshot), then the message goes to raft, then 204.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { type Message, MessageType } from '../gen/raftpb/raft.js';
import { idHex } from './constants.js';
import { httpError } from './http_util.js';
import { MessageDecoder } from './message_codec.js';
import type { TransportContext } from './types.js';

export function receiveSnapshot(ctx: TransportContext, req: IncomingMessage, res: ServerResponse): void {
  const dec = new MessageDecoder(Number.MAX_SAFE_INTEGER);
  let msg: Message | undefined;
  const fail = (status: number, text: string, logMsg: string) => {
    ctx.logger.warn(
      {
        'local-member-id': idHex(ctx.local.localId),
        ...(msg ? { 'remote-snapshot-sender-id': idHex(msg.from) } : {}),
        error: text,
      },
      logMsg,
    );
    httpError(res, status, text);
  };
  const onData = (chunk: Buffer) => {
    try {
      msg = dec.pushOne(chunk);
    } catch (err) {
      req.off('data', onData);
      req.resume();
      fail(400, `failed to decode raft message (${(err as Error).message})`, 'failed to decode Raft message');
      return;
    }
    if (msg === undefined) return;
    req.off('data', onData);
    req.off('end', onEarlyEnd);
    req.pause();
    if (msg.type !== MessageType.MsgSnap) {
      req.resume();
      fail(400, 'wrong raft message type', 'unexpected Raft message type');
      return;
    }
    const db = new PassThrough({ highWaterMark: 1 << 20 });
    const rest = dec.queue.drain();
    if (rest.length > 0) db.write(rest);
    req.pipe(db);
    req.on('error', (err) => db.destroy(err));
    void save(ctx, msg, db, res, fail);
  };
  const onEarlyEnd = () =>
    fail(400, 'failed to decode raft message (unexpected EOF)', 'failed to decode Raft message');
  req.on('data', onData);
  req.on('end', onEarlyEnd);
}

async function save(
  ctx: TransportContext,
  msg: Message,
  db: PassThrough,
  res: ServerResponse,
  fail: (status: number, text: string, logMsg: string) => void,
): Promise<void> {
  const h = ctx.handler;
  const fields = {
    'local-member-id': idHex(ctx.local.localId),
    'remote-snapshot-sender-id': idHex(msg.from),
    'incoming-snapshot-index': msg.snapshot?.metadata?.index ?? 0,
  };
  ctx.logger.info(fields, 'receiving database snapshot');
  try {
    if (h.receiveSnapshot) await h.receiveSnapshot(msg, db);
    else {
      db.resume();
      await new Promise<void>((resolve, reject) => {
        db.on('end', resolve);
        db.on('error', reject);
      });
    }
  } catch (err) {
    fail(
      500,
      `failed to save KV snapshot (${(err as Error).message})`,
      'failed to save incoming database snapshot',
    );
    return;
  }
  ctx.logger.info(fields, 'received and saved database snapshot');
  try {
    await h.process(msg);
  } catch (err) {
    fail(500, `failed to process raft message (${(err as Error).message})`, 'failed to process Raft message');
    return;
  }
  res.writeHead(204);
  res.end();
}
