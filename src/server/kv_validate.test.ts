import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  type RequestOp,
  TxnRequest,
} from '../gen/etcdserverpb/rpc.js';
import { Errors } from './errors.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './kv_validate.js';

const B = (s: string) => Buffer.from(s, 'latin1');
const put = (key: string): RequestOp => ({ requestPut: PutRequest.fromPartial({ key: B(key) }) });
const del = (key: string, end = ''): RequestOp => ({
  requestDeleteRange: DeleteRangeRequest.fromPartial({ key: B(key), rangeEnd: B(end) }),
});
const get = (key: string): RequestOp => ({ requestRange: RangeRequest.fromPartial({ key: B(key) }) });
const txnOp = (success: RequestOp[], failure: RequestOp[] = []): RequestOp => ({
  requestTxn: TxnRequest.fromPartial({ success, failure }),
});
const check = (success: RequestOp[], failure: RequestOp[] = [], maxOps = 128) =>
  checkTxnRequest(TxnRequest.fromPartial({ success, failure }), maxOps);
const is = (err: unknown) => (e: unknown) => e === err;

describe('kv_validate', () => {
  test('empty keys, ignore_value/ignore_lease with a value/lease', () => {
    assert.throws(() => checkRangeRequest(RangeRequest.fromPartial({})), is(Errors.emptyKey));
    assert.throws(() => checkDeleteRequest(DeleteRangeRequest.fromPartial({})), is(Errors.emptyKey));
    assert.throws(() => checkPutRequest(PutRequest.fromPartial({ value: B('v') })), is(Errors.emptyKey));
    assert.throws(
      () => checkPutRequest(PutRequest.fromPartial({ key: B('k'), value: B('v'), ignoreValue: true })),
      is(Errors.valueProvided),
    );
    assert.throws(
      () => checkPutRequest(PutRequest.fromPartial({ key: B('k'), lease: 5n, ignoreLease: true })),
      is(Errors.leaseProvided),
    );
    checkPutRequest(PutRequest.fromPartial({ key: B('k'), ignoreValue: true, ignoreLease: true }));
    checkRangeRequest(RangeRequest.fromPartial({ key: B('k') }));
  });

  test('op limits, also for nested txns', () => {
    const ops = (n: number) => Array.from({ length: n }, (_, i) => put(`k${i}`));
    check(ops(128));
    assert.throws(() => check(ops(129)), is(Errors.tooManyOps));
    assert.throws(() => check(ops(3), [], 2), is(Errors.tooManyOps));
    assert.throws(
      () =>
        checkTxnRequest(
          TxnRequest.fromPartial({ compare: [{ key: B('a') }, { key: B('b') }, { key: B('c') }] }),
          2,
        ),
      is(Errors.tooManyOps),
    );
    // a nested txn gets what its parent leaves: 4 - 2 = 2
    check([put('a'), txnOp([put('b'), put('c')])], [], 4);
    assert.throws(
      () => check([put('a'), txnOp([put('b'), put('c'), put('d')])], [], 4),
      is(Errors.tooManyOps),
    );
  });

  test('empty compare keys, empty ops, bad nested requests', () => {
    assert.throws(
      () => checkTxnRequest(TxnRequest.fromPartial({ compare: [{ key: B('') }] }), 128),
      is(Errors.emptyKey),
    );
    assert.throws(() => check([{}]), is(Errors.keyNotFound));
    assert.throws(() => check([], [get('')]), is(Errors.emptyKey));
    assert.throws(() => check([txnOp([del('')])]), is(Errors.emptyKey));
  });

  test('duplicate puts and puts into deleted ranges', () => {
    assert.throws(() => check([put('a'), put('a')]), is(Errors.duplicateKey));
    assert.throws(() => check([del('a'), put('a')]), is(Errors.duplicateKey));
    assert.throws(() => check([put('b'), del('a', 'c')]), is(Errors.duplicateKey));
    assert.throws(() => check([txnOp([put('a')]), put('a')]), is(Errors.duplicateKey));
    assert.throws(() => check([txnOp([del('a', 'z')]), put('b')]), is(Errors.duplicateKey));
    assert.throws(() => check([del('a', 'z'), txnOp([], [put('b')])]), is(Errors.duplicateKey));
    assert.throws(() => check([txnOp([put('a')]), txnOp([put('a')])]), is(Errors.duplicateKey));
    // fine: different branches, gets, deletes of the same key, a put just outside a deleted range
    check([put('a')], [put('a')]);
    check([txnOp([put('a')], [put('a')])]);
    check([put('a'), get('a'), get('a')]);
    check([del('a'), del('a')]);
    check([del('a', 'c'), put('c')]);
    // etcd 3.4 quirk kept: a from-key delete ("\0" end) is not seen as overlapping
    check([del('a', '\0'), put('b')]);
  });
});
