// The rules of a vDisk's ownership record (`own`, key vdisk.<id>), in one place, as
// pure decisions over the record as it is now (null when absent). The writers run
// them inside @strata/kv's modify (read, decide, compare-and-set, again on a
// conflict); the readers ask `serves`:
//  - the io-director claims a vDisk nobody owns (`claim`) and volunteers its node
//    when a gateway there opens it (`attach`);
//  - the owner's controller hands it to the node its VM moved to (`handOver`), and
//    records its drained sequence and generation only while it still owns it at the
//    epoch it serves (`serves` with the epoch);
//  - the config leader's failover moves it to a volunteer at a new epoch (`takeOver`);
//  - admission and the controller refuse I/O for a vDisk another node owns
//    (`serves`, `notOwner`).
import { ErrorCode, StrataError } from '@strata/errors';
import type { VdiskOwnership } from '@strata/proto';

/** The record of a vDisk `node` claims because nobody owned it: epoch 1, `node` its first volunteer. */
export function claimRecord(node: string): VdiskOwnership {
  return { owner: node, epoch: 1, volunteers: [node], drained: 0, generation: 0 };
}

/** A first I/O's claim: the claim record when nobody owns the vDisk; undefined (leave it) when someone does. */
export function claim(current: VdiskOwnership | null, node: string): VdiskOwnership | undefined {
  return current === null ? claimRecord(node) : undefined;
}

/** A gateway on `node` opened the vDisk: claim it when nobody owns it, else add `node` to the volunteers (undefined: it is one already). */
export function attach(current: VdiskOwnership | null, node: string): VdiskOwnership | undefined {
  if (current === null) return claimRecord(node);
  if (current.volunteers.includes(node)) return undefined;
  return { ...current, volunteers: [...current.volunteers, node] };
}

/**
 * `from` hands the vDisk to `to` (its VM moved there): `to` owns it at the next epoch
 * and becomes a volunteer. Undefined when `from` no longer owns it (a failover or
 * another hand-over got there first: the record says who does). NOT_FOUND when the
 * vDisk has no record.
 */
export function handOver(current: VdiskOwnership | null, vdisk: bigint, from: string, to: string): VdiskOwnership | undefined {
  if (current === null) throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${vdisk} has no owner to relinquish`);
  if (current.owner !== from) return undefined;
  const volunteers = current.volunteers.includes(to) ? current.volunteers : [...current.volunteers, to];
  return { ...current, owner: to, epoch: current.epoch + 1, volunteers };
}

/** What a failover's claim step does with the record: write `next`, nothing (done already), or give up (superseded). */
export type TakeoverClaim = { kind: 'write'; next: VdiskOwnership } | { kind: 'done' } | { kind: 'superseded' };

/**
 * A failover's claim: `to` owns the vDisk at `epoch`, unless the record is gone (the
 * vDisk was deleted) or already at `epoch` or beyond under another owner (a newer
 * move won: superseded). Already so: done.
 */
export function takeOver(current: VdiskOwnership | null, to: string, epoch: number): TakeoverClaim {
  if (current === null) return { kind: 'superseded' };
  if (current.epoch === epoch && current.owner === to) return { kind: 'done' };
  if (current.epoch >= epoch) return { kind: 'superseded' };
  return { kind: 'write', next: { ...current, owner: to, epoch } };
}

/** Whether `node` serves the vDisk by this record: it is the owner (at `epoch`, when given). */
export function serves(current: VdiskOwnership | null | undefined, node: string, epoch?: number): boolean {
  return current !== null && current !== undefined && current.owner === node && (epoch === undefined || current.epoch === epoch);
}

/** The refusal of I/O for a vDisk `node` does not own: NOT_OWNER, with the owner (when known) as hint, where the io-director sends it again. */
export function notOwner(node: string, vdisk: bigint, owner: string | undefined): StrataError {
  return new StrataError(ErrorCode.NOT_OWNER, `node ${node} does not own vdisk ${vdisk}${owner === undefined ? '' : `; ${owner} does`}`, owner === undefined ? {} : { hint: owner });
}
