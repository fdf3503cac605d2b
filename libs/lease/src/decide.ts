// The pure core of a lease: given what the contender last saw, the current record
// and the time, say what to do next. No I/O and no clock reads here, so every rule
// is unit-tested with a simulated clock (test/decide.test.ts).
//
// Clock assumptions (the only ones Strata's leases make):
//  - Each process measures time with its own monotonic clock; clocks are never
//    compared across processes, so wall-clock skew does not matter.
//  - Clock rates differ by less than `driftFraction` (10% by default) between any
//    two processes over one TTL.
// A contender takes an expired lease only after it has watched the record stay at
// one revision for a whole TTL on its own clock. The holder's last renewal was sent
// before that revision existed, and the holder stops acting at send time plus
// TTL * (1 - driftFraction). So the holder has stopped before anyone else starts.
import { z } from 'zod';
import { uint } from '@strata/codec';

export const leaseRecord = z.strictObject({
  /** Who holds the lease; '' once released. */
  holder: z.string(),
  /** Fencing token: grows by one with every change of holder, never goes back. */
  epoch: uint,
  /** Holder's wall clock at the last renewal: for people reading status only. */
  renewedAtMs: uint,
  /** The TTL the holder promised to honour. */
  ttlMs: uint,
});
export type LeaseRecord = z.infer<typeof leaseRecord>;

/** What a contender remembers of the record between ticks. */
export interface Observation {
  revision: number;
  /** Local monotonic time when this revision was first seen. */
  sinceMs: number;
}

export type LeaseDecision =
  /** No record yet: create it with epoch 1. */
  | { kind: 'create'; record: LeaseRecord }
  /** We hold it: compare-and-set a renewal onto `revision`. */
  | { kind: 'renew'; revision: number; record: LeaseRecord }
  /** It is free or expired: compare-and-set ourselves in with the next epoch. */
  | { kind: 'take'; revision: number; record: LeaseRecord }
  /** We believed we held it, but the record names another holder or epoch. */
  | { kind: 'lost'; record: LeaseRecord }
  /** Someone else holds it: keep watching. */
  | { kind: 'wait'; observation: Observation; expiresInMs: number };

export interface DecideInput {
  me: string;
  /** The epoch this process believes it holds, if any. */
  heldEpoch: number | undefined;
  current: { revision: number; record: LeaseRecord } | null;
  observation: Observation | undefined;
  nowMs: number;
  wallNowMs: number;
  ttlMs: number;
}

export function decide(input: DecideInput): LeaseDecision {
  const { me, current, nowMs, ttlMs } = input;
  const fresh = (epoch: number): LeaseRecord => ({ holder: me, epoch, renewedAtMs: input.wallNowMs, ttlMs });
  if (current === null) return { kind: 'create', record: fresh(1) };

  const { record, revision } = current;
  if (input.heldEpoch !== undefined) {
    if (record.holder === me && record.epoch === input.heldEpoch) return { kind: 'renew', revision, record: fresh(record.epoch) };
    return { kind: 'lost', record };
  }
  if (record.holder === '') return { kind: 'take', revision, record: fresh(record.epoch + 1) };

  // Held by someone else (or by a previous incarnation of us, which we cannot tell
  // apart from a twin with the same name): it is ours only after a silent TTL.
  const observation = input.observation?.revision === revision ? input.observation : { revision, sinceMs: nowMs };
  const silentMs = nowMs - observation.sinceMs;
  if (silentMs >= ttlMs) return { kind: 'take', revision, record: fresh(record.epoch + 1) };
  return { kind: 'wait', observation, expiresInMs: ttlMs - silentMs };
}

/** Until when (local monotonic ms) a holder may act after a write sent at `sentAtMs`. */
export function validUntil(sentAtMs: number, ttlMs: number, driftFraction: number): number {
  return sentAtMs + ttlMs * (1 - driftFraction);
}
