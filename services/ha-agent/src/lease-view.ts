// What the master makes of a VM's power-on lease, from what it has watched of it.
// Pure: the observations and the time are passed in.
//
// Clock assumptions (those of libs/lease/src/decide.ts): each process measures time
// with its own monotonic clock, and clock rates differ by less than the drift bound
// over one TTL. A holder stops its VM TTL * (1 - drift) less a margin after the last
// renewal it sent. The master calls a lease expired only once it has seen the record
// stay at one revision for a whole TTL on its own clock: that renewal was sent before
// the master first saw it, so the holder's VM is off by then. A master that has just
// taken over has seen every record only since it started, so it waits a whole TTL
// before it restarts anything.
import type { LeaseRecord } from '@strata/lease';

/** A lease record as last seen, and since when (local monotonic ms). */
export interface LeaseSeen {
  /** The key's revision; 0 when it has no value (never written, or deleted). */
  revision: number;
  record: LeaseRecord | undefined;
  sinceMs: number;
}

export type LeaseState =
  /** No record, or released: nothing runs the VM. `revision` is what a power-on takes it on. */
  | { kind: 'free'; revision: number; epoch: number }
  /** Held, and changed less than a TTL ago (as far as this master knows): the holder may run the VM. */
  | { kind: 'held'; revision: number; holder: string; epoch: number; expiresInMs: number }
  /** Held by a holder that has not renewed it for a whole TTL: its VM is off. */
  | { kind: 'expired'; revision: number; holder: string; epoch: number };

export function leaseState(seen: LeaseSeen | undefined, nowMs: number): LeaseState {
  const record = seen?.record;
  if (seen === undefined || record === undefined) return { kind: 'free', revision: seen?.revision ?? 0, epoch: 0 };
  if (record.holder === '') return { kind: 'free', revision: seen.revision, epoch: record.epoch };
  const silentMs = nowMs - seen.sinceMs;
  if (silentMs >= record.ttlMs) return { kind: 'expired', revision: seen.revision, holder: record.holder, epoch: record.epoch };
  return { kind: 'held', revision: seen.revision, holder: record.holder, epoch: record.epoch, expiresInMs: record.ttlMs - silentMs };
}

/** True when nothing may be running the VM: a power-on may take the lease. */
export function mayPowerOn(state: LeaseState): state is Extract<LeaseState, { kind: 'free' | 'expired' }> {
  return state.kind !== 'held';
}

/** One line for people: `held by n2 at epoch 4`. */
export function describeLease(state: LeaseState): string {
  switch (state.kind) {
    case 'free':
      return state.epoch === 0 ? 'no power-on lease' : `power-on lease released at epoch ${state.epoch}`;
    case 'held':
      return `power-on lease epoch ${state.epoch} held by ${state.holder}`;
    case 'expired':
      return `power-on lease epoch ${state.epoch} of ${state.holder} expired`;
  }
}

/**
 * Keeps, per key, the revision last seen and since when: fed with every change of
 * the watched `poweron.>` keys, and with what the watch held when this master began
 * (seen since then).
 */
export class LeaseObserver {
  private readonly seen = new Map<string, LeaseSeen>();

  constructor(private readonly now: () => number) {}

  /** A change of `key`: a new value at `revision`, or none (deleted). */
  observe(key: string, revision: number, record: LeaseRecord | undefined): void {
    const before = this.seen.get(key);
    if (before !== undefined && before.revision === revision) return;
    this.seen.set(key, { revision: record === undefined ? 0 : revision, record, sinceMs: this.now() });
  }

  get(key: string): LeaseSeen | undefined {
    return this.seen.get(key);
  }
}
