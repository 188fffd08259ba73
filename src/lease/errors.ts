// Lessor errors; src/api/status.ts maps them to etcd's wire errors.

export class LeaseNotFoundError extends Error {
  constructor(readonly id: bigint) {
    super('lease not found');
    this.name = 'LeaseNotFoundError';
  }
}

export class LeaseExistsError extends Error {
  constructor(readonly id: bigint) {
    super('lease already exists');
    this.name = 'LeaseExistsError';
  }
}

export class LeaseTTLTooLargeError extends Error {
  constructor() {
    super('too large lease TTL');
    this.name = 'LeaseTTLTooLargeError';
  }
}
