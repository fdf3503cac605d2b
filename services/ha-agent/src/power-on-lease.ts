// A VM's power-on lease as its host's agent handles it (PROTOCOL.md section 12):
// take it by compare-and-set on the revision the master names, renew it while the VM
// runs, release it once the VM is off. The rules are pure functions; PowerOnLeases
// does the bucket I/O.
//
// Clock assumption (libs/lease/src/decide.ts): clock rates differ by less than the
// drift bound over one TTL. The holder may run the VM until the last renewal it sent
// plus TTL * (1 - drift), less a margin for powering it off; the master restarts it
// elsewhere only after watching the record unchanged for a whole TTL.
import { ErrorCode, StrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import type { LeaseRecord, leaseRecord } from '@strata/lease';
import { keys } from '@strata/proto';

export type TakePlan = { kind: 'create' | 'update'; revision: number; record: LeaseRecord } | { kind: 'conflict'; reason: string };

/**
 * How `me` takes the lease, given its current value (null: none) and the revision the
 * master found free or expired. The epoch grows by one with every take.
 */
export function planTake(current: { revision: number; record: LeaseRecord } | null, expectedRevision: number, me: string, ttlMs: number, wallNowMs: number): TakePlan {
  const record = (epoch: number): LeaseRecord => ({ holder: me, epoch, renewedAtMs: wallNowMs, ttlMs });
  if (current === null) {
    return expectedRevision === 0 ? { kind: 'create', revision: 0, record: record(1) } : { kind: 'conflict', reason: `the power-on lease was deleted after revision ${expectedRevision}` };
  }
  if (current.revision !== expectedRevision) {
    const who = current.record.holder === '' ? 'released' : `held by ${current.record.holder}`;
    return { kind: 'conflict', reason: `the power-on lease changed since the master looked (revision ${current.revision}, not ${expectedRevision}: ${who} at epoch ${current.record.epoch})` };
  }
  return { kind: 'update', revision: current.revision, record: record(current.record.epoch + 1) };
}

/** Until when (local monotonic ms) the VM may run after a write of the lease sent at `sentAtMs`. */
export function runUntil(sentAtMs: number, ttlMs: number, driftFraction: number, marginMs: number): number {
  return sentAtMs + ttlMs * (1 - driftFraction) - marginMs;
}

export class PowerOnLeases {
  constructor(
    private readonly bucket: TypedBucket<typeof leaseRecord>,
    private readonly me: string,
    private readonly ttlMs: number,
  ) {}

  /** Takes the lease of `vm` on `expectedRevision`; CONFLICT when it is not there any more. */
  async take(vm: bigint, expectedRevision: number): Promise<{ revision: number; epoch: number }> {
    const key = keys.powerOnLease(vm);
    const current = await this.bucket.get(key);
    const plan = planTake(current === null ? null : { revision: current.revision, record: current.value }, expectedRevision, this.me, this.ttlMs, Date.now());
    if (plan.kind === 'conflict') throw new StrataError(ErrorCode.CONFLICT, `vm ${vm}: ${plan.reason}`);
    const revision = plan.kind === 'create' ? await this.bucket.create(key, plan.record) : await this.bucket.update(key, plan.record, plan.revision);
    return { revision, epoch: plan.record.epoch };
  }

  /** Renews the lease held at `epoch` and `revision`; CONFLICT when someone else wrote it. */
  renew(vm: bigint, epoch: number, revision: number): Promise<number> {
    return this.bucket.update(keys.powerOnLease(vm), { holder: this.me, epoch, renewedAtMs: Date.now(), ttlMs: this.ttlMs }, revision);
  }

  /** Releases it (holder ""), only if it is still at `revision`. */
  release(vm: bigint, epoch: number, revision: number): Promise<number> {
    return this.bucket.update(keys.powerOnLease(vm), { holder: '', epoch, renewedAtMs: Date.now(), ttlMs: this.ttlMs }, revision);
  }
}
