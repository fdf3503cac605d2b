// Typed JetStream KV buckets: values are CBOR, validated against a schema when read;
// every conditional write is a compare-and-set on the key's revision.
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { z } from 'zod';
import { decode, encode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { isWrongLastSequence, kvUnavailable } from './errors';
import { whileClusterForms, whileElecting, whileUndelivered } from './cluster-forming';

export interface Entry<T> {
  key: string;
  value: T;
  /** The stream sequence of this value: the token for compare-and-set. */
  revision: number;
}

export interface BucketOptions {
  /** Values kept per key (1 to 64). */
  history?: number;
  /** Replicas: default 3 when the server is part of a cluster, else 1. */
  replicas?: number;
  /** Per-request timeout of KV operations. */
  timeoutMs?: number;
}

/**
 * Replication follows the NATS deployment: R3 when the server we reached belongs to
 * a cluster, R1 on a lone server. STRATA_REPLICAS overrides it (1, 3 or 5).
 */
export function defaultReplicas(nc: NatsConnection): number {
  const fromEnv = process.env.STRATA_REPLICAS;
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (![1, 3, 5].includes(n)) throw new Error(`STRATA_REPLICAS must be 1, 3 or 5, not "${fromEnv}"`);
    return n;
  }
  return nc.info?.cluster === undefined ? 1 : 3;
}

/** Opens bucket `name`, creating it when missing. */
export async function openBucket<S extends z.ZodType>(nc: NatsConnection, name: string, schema: S, options: BucketOptions = {}): Promise<TypedBucket<S>> {
  const kvm = new Kvm(nc);
  const opts = {
    history: options.history ?? 1,
    replicas: options.replicas ?? defaultReplicas(nc),
    timeout: options.timeoutMs ?? 5_000,
    // Reads go to the stream leader. A direct get is answered by any replica,
    // including one just back from a partition and not caught up: under a cut host
    // a config leader read its lease from such a replica, saw the lease of the
    // leader before it, and stepped down for nothing. Leases, ownership and
    // metadata rows must never be read older than a write already acknowledged.
    allow_direct: false,
  };
  // create() is idempotent for an identical configuration and binds to the bucket.
  const kv = await whileClusterForms(`creating bucket ${name}`, () => kvm.create(name, opts));
  return new TypedBucket(name, kv, schema, nc);
}

export class TypedBucket<S extends z.ZodType> {
  constructor(
    readonly name: string,
    readonly kv: KV,
    readonly schema: S,
    readonly nc: NatsConnection,
  ) {}

  /** The stream that stores this bucket (`KV_<name>`). */
  get streamName(): string {
    return `KV_${this.name}`;
  }

  /** The subject a key's values are published on. */
  subjectFor(key: string): string {
    return `$KV.${this.name}.${key}`;
  }

  decodeEntry(e: KvEntry): Entry<z.output<S>> {
    return { key: e.key, value: decode(e.value, this.schema), revision: e.revision };
  }

  /**
   * The current value of `key`, or null when absent or deleted. Read from the stream
   * leader (see openBucket); while the stream elects one, the read waits, bounded
   * (whileElecting), rather than fail a client's request for an election's seconds.
   */
  async get(key: string): Promise<Entry<z.output<S>> | null> {
    let e: KvEntry | null;
    try {
      e = await whileElecting(() => this.kv.get(key));
    } catch (err) {
      throw kvUnavailable(`get ${this.name}/${key}`, err);
    }
    if (e === null || e.operation !== 'PUT') return null;
    return this.decodeEntry(e);
  }

  /** Stores `value` only if `key` has no value; CONFLICT otherwise. Returns the revision. */
  async create(key: string, value: z.input<S>): Promise<number> {
    const bytes = this.encodeValid(value);
    try {
      return await whileUndelivered(() => this.kv.create(key, bytes));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new StrataError(ErrorCode.CONFLICT, `${this.name}/${key} already exists`, { cause: err });
      throw kvUnavailable(`create ${this.name}/${key}`, err);
    }
  }

  /** Compare-and-set: stores `value` only if `key` is still at `revision`; CONFLICT otherwise. */
  async update(key: string, value: z.input<S>, revision: number): Promise<number> {
    const bytes = this.encodeValid(value);
    try {
      return await whileUndelivered(() => this.kv.update(key, bytes, revision));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new StrataError(ErrorCode.CONFLICT, `${this.name}/${key} changed since revision ${revision}`, { cause: err });
      throw kvUnavailable(`update ${this.name}/${key}`, err);
    }
  }

  /** Unconditional write. */
  async put(key: string, value: z.input<S>): Promise<number> {
    const bytes = this.encodeValid(value);
    try {
      return await whileUndelivered(() => this.kv.put(key, bytes));
    } catch (err) {
      throw kvUnavailable(`put ${this.name}/${key}`, err);
    }
  }

  /** Deletes `key`; with `revision`, only if it is still at that revision. */
  async delete(key: string, revision?: number): Promise<void> {
    try {
      await whileUndelivered(() => this.kv.delete(key, revision === undefined ? undefined : { previousSeq: revision }));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new StrataError(ErrorCode.CONFLICT, `${this.name}/${key} changed since revision ${revision}`, { cause: err });
      throw kvUnavailable(`delete ${this.name}/${key}`, err);
    }
  }

  /** Every current entry (optionally under a subject-style filter), read one key at a time; deleted keys are skipped. */
  async entries(filter = '>'): Promise<Array<Entry<z.output<S>>>> {
    const out: Array<Entry<z.output<S>>> = [];
    for (const key of await this.keys(filter)) {
      const e = await this.get(key);
      if (e !== null) out.push(e);
    }
    return out;
  }

  /** Every key (optionally under a subject-style filter such as `vdisk.>`). */
  async keys(filter = '>'): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.kv.keys(filter)) out.push(k);
    return out;
  }

  /** The last sequence of the bucket's stream: every write anywhere moves it. */
  async lastSequence(): Promise<number> {
    const status = await this.kv.status();
    return status.streamInfo.state.last_seq;
  }

  /** Encodes after validating, so nothing malformed is ever stored. */
  encodeValid(value: z.input<S>): Uint8Array {
    const parsed = this.schema.safeParse(value);
    if (!parsed.success) throw new StrataError(ErrorCode.INVALID, `${this.name}: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
    return encode(value);
  }
}
