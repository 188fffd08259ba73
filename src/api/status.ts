// The one table that turns internal errors into what a client sees on the wire: etcd's gRPC code and text.
import { LeaseExistsError, LeaseNotFoundError, LeaseTTLTooLargeError } from '../lease/errors.js';
import { CompactedError, FutureRevisionError } from '../mvcc/errors.js';
import { Code, Errors, EtcdError } from '../server/errors.js';
import { CompressedFrameError, FrameTooLargeError } from './grpc/framing.js';

export interface WireStatus {
  code: Code;
  message: string;
}

export function toWireStatus(err: unknown): WireStatus {
  if (err instanceof EtcdError) return { code: err.code, message: err.message };
  if (err instanceof CompactedError) return Errors.compacted;
  if (err instanceof FutureRevisionError) return Errors.futureRev;
  if (err instanceof LeaseNotFoundError) return Errors.leaseNotFound;
  if (err instanceof LeaseExistsError) return Errors.leaseExist;
  if (err instanceof LeaseTTLTooLargeError) return Errors.leaseTTLTooLarge;
  if (err instanceof FrameTooLargeError) return { code: Code.RESOURCE_EXHAUSTED, message: err.message };
  if (err instanceof CompressedFrameError) return { code: Code.UNIMPLEMENTED, message: err.message };
  if (err instanceof RangeError || err instanceof TypeError) {
    // protobuf decoding of a malformed message lands here
    return {
      code: Code.INVALID_ARGUMENT,
      message: `grpc: error unmarshalling request: ${(err as Error).message}`,
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: Code.UNKNOWN, message };
}
