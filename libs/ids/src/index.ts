// Cluster-wide 64-bit ids, never handed out twice. Each allocator reserves a block
// of ids at a time by compare-and-set on one counter in the `ids` bucket, then hands
// them out from memory. Concurrent allocators race on the counter and retry; a crash
// loses the rest of its block (a gap), never a duplicate, because a block is only
// used after the counter has durably moved past it.
import type { NatsConnection } from '@nats-io/transport-node';
import { assert } from '@strata/errors';
import { modifyRecord, openBucket, type CasRecord, type TypedBucket } from '@strata/kv';
import { buckets, idCounter, keys } from '@strata/proto';

export interface IdAllocatorOptions {
  /** Ids reserved per counter update (default 1000). */
  blockSize?: number;
  /** Compare-and-set attempts of one reservation before giving up with UNAVAILABLE (default 200: allocators of a whole cluster race on one counter). */
  maxAttempts?: number;
}

/** The first id handed out; 0 is kept to mean "no id". */
export const FIRST_ID = 1n;

export class IdAllocator {
  private next = 0n;
  private end = 0n;
  private reserving: Promise<void> | undefined;
  private readonly blockSize: bigint;
  private readonly maxAttempts: number;

  constructor(
    private readonly bucket: TypedBucket<typeof idCounter>,
    options: IdAllocatorOptions = {},
  ) {
    const blockSize = options.blockSize ?? 1000;
    assert(Number.isSafeInteger(blockSize) && blockSize >= 1, 'blockSize must be a positive integer');
    this.blockSize = BigInt(blockSize);
    this.maxAttempts = options.maxAttempts ?? 200;
  }

  static async open(nc: NatsConnection, options: IdAllocatorOptions = {}): Promise<IdAllocator> {
    return new IdAllocator(await openBucket(nc, buckets.ids, idCounter, { history: 1 }), options);
  }

  /** The next unique id. */
  async allocate(): Promise<bigint> {
    while (this.next >= this.end) {
      // One reservation at a time per process; concurrent callers share it.
      this.reserving ??= this.reserve().finally(() => (this.reserving = undefined));
      await this.reserving;
    }
    const id = this.next;
    this.next += 1n;
    return id;
  }

  private async reserve(): Promise<void> {
    let conflicts = 0;
    const counter: CasRecord<{ next: bigint }> = {
      what: 'the id counter',
      read: () => this.bucket.get(keys.idCounter),
      write: (value, revision) => (revision === 0 ? this.bucket.create(keys.idCounter, value) : this.bucket.update(keys.idCounter, value, revision)),
      // Another allocator moved the counter first: back off a little before reading it again.
      afterConflict: () => new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** conflicts++))),
    };
    const { before } = await modifyRecord(counter, (current) => ({ next: (current?.value.next ?? FIRST_ID) + this.blockSize }), this.maxAttempts);
    this.next = before?.value.next ?? FIRST_ID;
    this.end = this.next + this.blockSize;
  }
}
