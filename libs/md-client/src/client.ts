// The client of the metadata maps (vDisk map, extent id map, extent group map): each
// key goes to the shard serving its partition, on `strata.md.<partition>.<op>`, with
// a deadline on every call and every value checked against its map's schema.
//
// Retries, and what a failure means:
//  - get is safe to repeat, so it is retried on every retryable error (UNAVAILABLE,
//    TIMEOUT, QUEUE_FULL) with backoff until the budget is spent, each attempt bounded
//    by attemptTimeoutMs so a request lost with a killed shard is sent again.
//  - put and delete are resent only when they certainly did nothing: "no responders"
//    (no shard serves the partition at this instant, e.g. during a hand-over: the bus
//    resends those by itself) and UNAVAILABLE with hint MD_NOT_HELD_HINT (the shard
//    refused before acting because its lease is gone). Any other failure is final;
//    TIMEOUT then means the outcome is unknown: get the key and compare revisions.
//    A resent put can never apply twice: it is a compare-and-set on the revision.
//  - FENCED (a write fenced at an epoch older than the vDisk's, see fence.ts) is final
//    like any other refusal: the writer is no longer the vDisk's owner.
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import type { Bus } from '@strata/bus';
import { validate } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { MdOp, mdDeleteReply, mdGetReply, mdPutReply, mdValue, partitionOf, subjects, type MdFence, type MdMap } from '@strata/proto';

/** The hint of an UNAVAILABLE reply from a shard that no longer holds the partition and did nothing. */
export const MD_NOT_HELD_HINT = 'partition-not-held';

/**
 * Why `key` cannot be a metadata key, or undefined if it can. Keys are JetStream KV
 * keys: letters, digits and - / = . _ only, not starting or ending with a dot
 * (`12345.0`, `67890`, `4096-9f86d081...`). The shards refuse others with INVALID.
 */
export function mdKeyProblem(key: string): string | undefined {
  if (key.length < 1 || key.length > 200) return 'must be 1 to 200 characters';
  if (!/^[-/=.\w]+$/.test(key)) return 'may hold only letters, digits and - / = . _';
  if (key.startsWith('.') || key.endsWith('.')) return 'must not start or end with a dot';
  return undefined;
}

/** The default budget of one call, retries included. */
export const MD_DEFAULT_TIMEOUT_MS = 10_000;

export type MdValue<M extends MdMap> = z.output<(typeof mdValue)[M]>;
export type MdValueInput<M extends MdMap> = z.input<(typeof mdValue)[M]>;

/** A value and its revision: the token for the next compare-and-set. */
export interface MdEntry<M extends MdMap> {
  value: MdValue<M>;
  revision: number;
}

/** How a put or delete is made. */
export interface MdWriteOptions {
  /**
   * Sent by a vDisk's owner for the metadata of that vDisk: the write is refused with
   * FENCED, changing nothing, if the vDisk's ownership epoch is above `fence.epoch`.
   */
  fence?: MdFence;
}

/** The metadata maps as their users see them: MdClient over the bus, MemoryMd (./testing) in unit tests. */
export interface MdMaps {
  /** The key's value and revision, or null when it has none. */
  get<M extends MdMap>(map: M, key: string): Promise<MdEntry<M> | null>;
  /** Compare-and-set: revision 0 creates (CONFLICT if the key has a value), else CONFLICT unless the key is at `revision`. Returns the new revision. */
  put<M extends MdMap>(map: M, key: string, value: MdValueInput<M>, revision: number, options?: MdWriteOptions): Promise<number>;
  /** Deletes the key; with `revision`, only if it is still at that revision (CONFLICT otherwise). */
  delete(map: MdMap, key: string, revision?: number, options?: MdWriteOptions): Promise<void>;
}

export interface MdClientOptions {
  /** Budget of one call, retries included (default 10 s). */
  timeoutMs?: number;
  /** The most one attempt of a get may take before it is sent again (default 2 s, at most timeoutMs). */
  attemptTimeoutMs?: number;
}

/** The request's `fence` member, absent (not undefined: maps are closed on the wire) without one. */
function fenceField(options: MdWriteOptions): { fence?: MdFence } {
  return options.fence === undefined ? {} : { fence: { vdisk: options.fence.vdisk, epoch: options.fence.epoch } };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class MdClient implements MdMaps {
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;

  constructor(
    private readonly bus: Bus,
    options: MdClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? MD_DEFAULT_TIMEOUT_MS;
    this.attemptTimeoutMs = Math.min(options.attemptTimeoutMs ?? 2_000, this.timeoutMs);
    if (!(this.timeoutMs > 0 && this.attemptTimeoutMs > 0)) throw new Error(`MdClient: timeoutMs (${this.timeoutMs}) and attemptTimeoutMs must be positive`);
  }

  async get<M extends MdMap>(map: M, key: string): Promise<MdEntry<M> | null> {
    const reply = await this.bus.request(subjects.md(partitionOf(key), MdOp.get), { map, key }, mdGetReply, {
      timeoutMs: this.timeoutMs,
      retry: true,
      attemptTimeoutMs: this.attemptTimeoutMs,
    });
    if (reply.value === undefined) return null;
    let value: MdValue<M>;
    try {
      value = validate(reply.value, mdValue[map]) as MdValue<M>;
    } catch (err) {
      // The shard broke the protocol: its bug, not the caller's.
      throw new StrataError(ErrorCode.INTERNAL, `malformed ${map} value from the metadata shard for "${key}": ${(err as Error).message}`, { cause: err });
    }
    return { value, revision: reply.revision };
  }

  async put<M extends MdMap>(map: M, key: string, value: MdValueInput<M>, revision: number, options: MdWriteOptions = {}): Promise<number> {
    const reply = await this.write(MdOp.put, key, { map, key, value, revision, ...fenceField(options) }, mdPutReply);
    return reply.revision;
  }

  async delete(map: MdMap, key: string, revision?: number, options: MdWriteOptions = {}): Promise<void> {
    await this.write(MdOp.delete, key, { map, key, ...(revision === undefined ? {} : { revision }), ...fenceField(options) }, mdDeleteReply);
  }

  /** Sends a write, again only after a refusal that proves it did nothing (see the top of this file). */
  private async write<S extends z.ZodType>(op: MdOp, key: string, request: object, replySchema: S): Promise<z.output<S>> {
    const subject = subjects.md(partitionOf(key), op);
    const deadline = performance.now() + this.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const remainingMs = Math.floor(deadline - performance.now());
      if (remainingMs <= 0) throw new StrataError(ErrorCode.TIMEOUT, `no shard served ${subject} within ${this.timeoutMs} ms`);
      try {
        return await this.bus.request(subject, request, replySchema, { timeoutMs: remainingMs });
      } catch (err) {
        const refused = err instanceof StrataError && err.code === ErrorCode.UNAVAILABLE && err.hint === MD_NOT_HELD_HINT;
        if (!refused) throw err;
        const backoffMs = Math.min(1_000, 25 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
        if (performance.now() + backoffMs >= deadline) throw err;
        await sleep(backoffMs);
      }
    }
  }
}
