// What the sweep deletes, decided from what the cluster holds: for each vDisk whose
// config object is marked deleting (`deletingSinceMs`, set by `strata vdisk rm`), its
// extent groups (every replica), its vDisk map rows, its ownership and takeover
// records and its oplog subject, and last its config object. Pure: the caller lists
// the keys and entries, the plan says what goes, and the executor (sweep.ts) deletes.
//
// A delete is two steps as clients see it: the mark (tentative; the vDisk is no longer
// attached or served) and the removal of the config object (the commit). Everything
// in between is garbage that only this vDisk named, so the plan can be made again at
// any time, after a crash at any step, and finds what is left.
import { keys, subjects, type EgroupEntry, type ObjectOf } from '@strata/proto';

/** A replica of an extent group: the disk and the node whose extent store holds it. */
export interface ReplicaRef {
  disk: bigint;
  node: string;
}

export interface PlannedEgroup {
  id: bigint;
  replicas: ReplicaRef[];
  /** The size the extent-group map records (replicas may be larger: direct writes not yet drained). */
  sizeBytes: number;
}

/** Everything of one deleting vDisk still to delete, in the order the executor deletes it. */
export interface VdiskSweepPlan {
  vdisk: bigint;
  name: string;
  /** The config object's revision when it was read: the commit deletes it only at this revision. */
  revision: number;
  deletingSinceMs: number;
  /** Its extent groups (md-egroup entries naming it), each with its replicas. */
  egroups: PlannedEgroup[];
  /** Its vDisk map rows (md-vdisk keys `<vdisk>.<row>`). */
  rows: string[];
  /** Keys of `own` to delete: `vdisk.<id>` and `takeover.<id>`, those present. */
  own: string[];
  /** Its oplog subject (`oplog.<id>`), purged whole. */
  oplogSubject: string;
}

export interface SweepInput {
  /** The config's vDisks (those not marked deleting are left alone). */
  vdisks: ReadonlyArray<Pick<ObjectOf<'vdisk'>, 'id' | 'name' | 'spec' | 'revision'>>;
  /** Every key of md-vdisk. */
  rowKeys: readonly string[];
  /** Every entry of md-egroup. */
  egroups: ReadonlyArray<{ id: bigint; entry: Pick<EgroupEntry, 'vdisk' | 'replicas' | 'sizeBytes'> }>;
  /** Every key of `own`. */
  ownKeys: readonly string[];
  /** At most this many vDisks per sweep (the oldest marks first): a sweep's work is bounded. */
  vdisksMax: number;
}

/** The vDisk a md-vdisk key (`<vdisk>.<row>`) belongs to, or undefined for a key of another shape. */
export function vdiskOfRowKey(key: string): bigint | undefined {
  const match = /^([0-9]+)\.[0-9]+$/.exec(key);
  return match === null ? undefined : BigInt(match[1]!);
}

export function planSweep(input: SweepInput): VdiskSweepPlan[] {
  if (!Number.isInteger(input.vdisksMax) || input.vdisksMax < 1) throw new RangeError(`vdisksMax must be a positive integer, not ${input.vdisksMax}`);
  const deleting = input.vdisks
    .filter((v) => v.spec.deletingSinceMs !== undefined)
    .sort((a, b) => a.spec.deletingSinceMs! - b.spec.deletingSinceMs! || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, input.vdisksMax);
  if (deleting.length === 0) return [];
  const plans = new Map<bigint, VdiskSweepPlan>();
  for (const v of deleting) {
    plans.set(v.id, {
      vdisk: v.id,
      name: v.name,
      revision: v.revision,
      deletingSinceMs: v.spec.deletingSinceMs!,
      egroups: [],
      rows: [],
      own: [],
      oplogSubject: subjects.oplog(v.id),
    });
  }
  for (const key of input.rowKeys) {
    const vdisk = vdiskOfRowKey(key);
    if (vdisk !== undefined) plans.get(vdisk)?.rows.push(key);
  }
  for (const { id, entry } of input.egroups) {
    plans.get(entry.vdisk)?.egroups.push({ id, replicas: entry.replicas.map((r) => ({ disk: r.disk, node: r.node })), sizeBytes: entry.sizeBytes });
  }
  const ownKeys = new Set(input.ownKeys);
  for (const plan of plans.values()) {
    for (const key of [keys.vdiskOwnership(plan.vdisk), keys.takeover(plan.vdisk)]) if (ownKeys.has(key)) plan.own.push(key);
    plan.rows.sort();
    plan.egroups.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  return [...plans.values()];
}
