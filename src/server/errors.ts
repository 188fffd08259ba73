// The errors a client can see, with etcd's gRPC status codes and messages (clients match on the text).
// Anything below the server layer throws its own error types; src/api/status.ts maps all of them.

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

export class EtcdError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

const e = (code: Code, message: string) => new EtcdError(code, message);

// Shared instances: they carry no per-request state, and comparing by identity is handy in tests.
export const Errors = {
  emptyKey: e(Code.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: e(Code.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: e(Code.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: e(Code.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: e(Code.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: e(Code.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  compacted: e(Code.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: e(Code.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  noSpace: e(Code.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  leaseNotFound: e(Code.NOT_FOUND, 'etcdserver: requested lease not found'),
  leaseExist: e(Code.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  leaseTTLTooLarge: e(Code.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
  watchCanceled: e(Code.CANCELLED, 'etcdserver: watch canceled'),
  memberExist: e(Code.FAILED_PRECONDITION, 'etcdserver: member ID already exist'),
  peerURLExist: e(Code.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'),
  memberNotEnoughStarted: e(
    Code.FAILED_PRECONDITION,
    'etcdserver: re-configuration failed due to not enough started members',
  ),
  memberBadURLs: e(Code.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'),
  memberNotFound: e(Code.NOT_FOUND, 'etcdserver: member not found'),
  memberNotLearner: e(Code.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
  learnerNotReady: e(
    Code.FAILED_PRECONDITION,
    'etcdserver: can only promote a learner member which is in sync with leader',
  ),
  tooManyLearners: e(Code.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster'),
  requestTooLarge: e(Code.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  tooManyRequests: e(Code.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
  rootUserNotExist: e(Code.FAILED_PRECONDITION, 'etcdserver: root user does not exist'),
  rootRoleNotExist: e(Code.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'),
  userAlreadyExist: e(Code.FAILED_PRECONDITION, 'etcdserver: user name already exists'),
  userEmpty: e(Code.INVALID_ARGUMENT, 'etcdserver: user name is empty'),
  userNotFound: e(Code.FAILED_PRECONDITION, 'etcdserver: user name not found'),
  roleAlreadyExist: e(Code.FAILED_PRECONDITION, 'etcdserver: role name already exists'),
  roleNotFound: e(Code.FAILED_PRECONDITION, 'etcdserver: role name not found'),
  roleEmpty: e(Code.INVALID_ARGUMENT, 'etcdserver: role name is empty'),
  authFailed: e(Code.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'),
  permissionDenied: e(Code.PERMISSION_DENIED, 'etcdserver: permission denied'),
  roleNotGranted: e(Code.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'),
  permissionNotGranted: e(Code.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'),
  authNotEnabled: e(Code.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  invalidAuthToken: e(Code.UNAUTHENTICATED, 'etcdserver: invalid auth token'),
  invalidAuthMgmt: e(Code.INVALID_ARGUMENT, 'etcdserver: invalid auth management'),
  authOldRevision: e(Code.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'),
  noLeader: e(Code.UNAVAILABLE, 'etcdserver: no leader'),
  notLeader: e(Code.FAILED_PRECONDITION, 'etcdserver: not leader'),
  leaderChanged: e(Code.UNAVAILABLE, 'etcdserver: leader changed'),
  notCapable: e(Code.UNAVAILABLE, 'etcdserver: not capable'),
  stopped: e(Code.UNAVAILABLE, 'etcdserver: server stopped'),
  timeout: e(Code.UNAVAILABLE, 'etcdserver: request timed out'),
  timeoutDueToLeaderFail: e(
    Code.UNAVAILABLE,
    'etcdserver: request timed out, possibly due to previous leader failure',
  ),
  timeoutDueToConnectionLost: e(
    Code.UNAVAILABLE,
    'etcdserver: request timed out, possibly due to connection lost',
  ),
  timeoutWaitAppliedIndex: e(
    Code.UNAVAILABLE,
    'etcdserver: request timed out, waiting for the applied index took too long',
  ),
  unhealthy: e(Code.UNAVAILABLE, 'etcdserver: unhealthy cluster'),
  corrupt: e(Code.DATA_LOSS, 'etcdserver: corrupt cluster'),
  notSupportedForLearner: e(Code.UNAVAILABLE, 'etcdserver: rpc not supported for learner'),
  badLeaderTransferee: e(Code.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
} as const;
