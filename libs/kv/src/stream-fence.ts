// A single-writer fence over a whole bucket. Each write is published with the
// expectation that the bucket's stream is still at the last sequence this writer
// saw, so any other write in between (typically a new leader's takeover marker)
// makes this writer's next write fail with FENCED. It is how a deposed leader that
// wakes from a pause is stopped from committing anything, whatever its clock says.
import { headers } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { z } from 'zod';
import { ErrorCode, StrataError } from '@strata/errors';
import type { TypedBucket } from './bucket';
import { isWrongLastSequence, kvUnavailable } from './errors';
import { whileUndelivered } from './cluster-forming';

export class StreamFence<S extends z.ZodType> {
  private readonly js: JetStreamClient;

  private constructor(
    private readonly bucket: TypedBucket<S>,
    private lastSeq: number,
  ) {
    this.js = jetstream(bucket.nc);
  }

  /** Takes the fence: every write from now on must follow the current last sequence. */
  static async take<S extends z.ZodType>(bucket: TypedBucket<S>): Promise<StreamFence<S>> {
    return new StreamFence(bucket, await bucket.lastSequence());
  }

  /** The last sequence this writer has seen (its own last write). */
  get sequence(): number {
    return this.lastSeq;
  }

  /** Writes `value` under `key`; FENCED if anyone else wrote to the bucket meanwhile. */
  async put(key: string, value: z.input<S>): Promise<number> {
    return this.publish(key, this.bucket.encodeValid(value), false);
  }

  /** Deletes `key` (a delete marker); FENCED if anyone else wrote meanwhile. */
  async delete(key: string): Promise<number> {
    return this.publish(key, new Uint8Array(0), true);
  }

  private async publish(key: string, data: Uint8Array, isDelete: boolean): Promise<number> {
    const h = headers();
    if (isDelete) h.set('KV-Operation', 'DEL');
    try {
      const ack = await whileUndelivered(() => this.js.publish(this.bucket.subjectFor(key), data, { headers: h, expect: { lastSequence: this.lastSeq } }));
      this.lastSeq = ack.seq;
      return ack.seq;
    } catch (err) {
      if (isWrongLastSequence(err)) {
        throw new StrataError(ErrorCode.FENCED, `${this.bucket.name}: another writer wrote after sequence ${this.lastSeq}`, { cause: err });
      }
      throw kvUnavailable(`write ${this.bucket.name}/${key}`, err);
    }
  }
}
