// Read, change, compare-and-set, and again on a conflict: the one loop every writer of
// a shared record runs (an ownership record, a vDisk map row, a VM's protection
// state), with one bound on its attempts and one error when they run out.
//
// `change` is pure: it sees the record as it is now (null when absent) and returns
// the record to store, or undefined to leave it as it is. It may throw to refuse (the
// error passes through). A write that loses to another writer (CONFLICT) is retried on
// the record as that writer left it; any other error passes through at once.
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { z } from 'zod';
import type { TypedBucket } from './bucket';

/** The hint of modify's UNAVAILABLE when its attempts ran out (the store itself answered). */
export const KEPT_CHANGING_HINT = 'kept-changing';

/** A record's value and the revision it was read at. */
export interface Versioned<T> {
  value: T;
  revision: number;
}

/** A record that can be read and written by compare-and-set. */
export interface CasRecord<T> {
  /** What `modify` names in its error when the attempts run out. */
  what: string;
  read(): Promise<Versioned<T> | null>;
  /** Stores `value` only if the record is still at `revision` (0: only if absent); CONFLICT otherwise. Returns the new revision. */
  write(value: T, revision: number): Promise<number>;
  /** Runs after a lost compare-and-set, before the record is read again (e.g. drop a stale cached copy). */
  afterConflict?(): Promise<void> | void;
}

export interface Modified<T> {
  /** The record `change` last saw. */
  before: Versioned<T> | null;
  /** The record as it is now: what was written, or `before` when `change` left it as it was. */
  after: Versioned<T> | null;
  written: boolean;
}

/** Reads `record`, applies `change`, and writes the result by compare-and-set, at most `attemptsMax` times. */
export async function modifyRecord<T>(record: CasRecord<T>, change: (current: Versioned<T> | null) => T | undefined, attemptsMax: number): Promise<Modified<T>> {
  if (!(Number.isInteger(attemptsMax) && attemptsMax >= 1)) throw new RangeError(`modify: attemptsMax must be a positive integer, not ${attemptsMax}`);
  for (let attempt = 1; attempt <= attemptsMax; attempt++) {
    const before = await record.read();
    const next = change(before);
    if (next === undefined) return { before, after: before, written: false };
    try {
      const revision = await record.write(next, before?.revision ?? 0);
      return { before, after: { value: next, revision }, written: true };
    } catch (err) {
      if (!isStrataError(err, ErrorCode.CONFLICT)) throw err;
      await record.afterConflict?.();
    }
  }
  // Retryable: the record is busy, not wrong; the caller's caller may try again later.
  throw new StrataError(ErrorCode.UNAVAILABLE, `${record.what} kept changing: ${attemptsMax} compare-and-set attempts lost to other writers; try again`, { hint: KEPT_CHANGING_HINT });
}

/** modifyRecord on one key of a bucket: created when absent, updated by compare-and-set when present. */
export function modify<S extends z.ZodType>(
  bucket: TypedBucket<S>,
  key: string,
  change: (current: Versioned<z.output<S>> | null) => z.output<S> | undefined,
  attemptsMax: number,
): Promise<Modified<z.output<S>>> {
  return modifyRecord<z.output<S>>(
    {
      what: `${bucket.name}/${key}`,
      read: () => bucket.get(key),
      // The bucket validates what it stores against its schema (whose input and output agree for stored records).
      write: (value, revision) => (revision === 0 ? bucket.create(key, value as z.input<S>) : bucket.update(key, value as z.input<S>, revision)),
    },
    change,
    attemptsMax,
  );
}
