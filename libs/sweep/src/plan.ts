// What the sweep deletes, decided from what the cluster holds: for each vDisk whose
// config object is marked deleting (`deletingSinceMs`, set by `strata vdisk rm`), its
// extent groups (every replica), its vDisk map rows, its ownership and takeover
// records and its oplog subject, and last its config object. Pure: the caller lists
// the keys and entries, the plan says what goes, and the executor (sweep.ts) deletes.
//
// A delete is two steps as clients see it: the mark (tentative; the vDisk is no longer
// attached or served) and the removal of the config object (the commit). Everything
// in between is garbage that only this vDisk named, so the plan can be made again at
// any time, after a crash at any step, and finds what is left. A snapshot or clone
// whose making was interrupted (`creatingSinceMs` older than the creating timeout) is
// swept the same way.
//
// Snapshots and clones share extent groups: a row of one vDisk may name an extent
// group another vDisk writes (egroup-entry `vdisk`). References are not counted in
// the extent-group map; they are derived here from every row of every vDisk, the way
// Nutanix's curator derives them by MapReduce. An extent group is deleted only when
// no row of a live vDisk names it (the rows of vDisks being deleted do not count:
// nobody reads them again). Those still named stay, and are reclaimed by a later
// sweep once nothing names them (planReclaim): an extent group whose writer is gone,
// or one sealed by a snapshot (created at a generation below its writer's current
// one, so never allocated in again). While a snapshot or clone is being made, rows
// are being copied that the scan may not have seen: no extent group is deleted then.
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
  /** Which vDisks' rows name each extent group (referencesOf the rows of md-vdisk). */
  references: ReadonlyMap<bigint, ReadonlySet<bigint>>;
  /** Now (unix-ms) and how old a `creatingSinceMs` must be to count as an interrupted operation. */
  nowMs?: number;
  creatingTimeoutMs?: number;
  /** Every entry of md-egroup. */
  egroups: ReadonlyArray<{ id: bigint; entry: Pick<EgroupEntry, 'vdisk' | 'replicas' | 'sizeBytes'> }>;
  /** Every key of `own`. */
  ownKeys: readonly string[];
  /** At most this many vDisks per sweep (the oldest marks first): a sweep's work is bounded. */
  vdisksMax: number;
}

/** A snapshot or clone left `creatingSinceMs` longer than this ago was interrupted: it is swept. */
export const CREATING_TIMEOUT_MS_DEFAULT = 10 * 60_000;

type VdiskLike = Pick<ObjectOf<'vdisk'>, 'id' | 'name' | 'spec' | 'revision'>;

/** Since when `v` is being removed: marked deleting, or a making interrupted; undefined for a vDisk that stays. */
function removedSinceMs(v: Pick<VdiskLike, 'spec'>, nowMs: number, creatingTimeoutMs: number): number | undefined {
  if (v.spec.deletingSinceMs !== undefined) return v.spec.deletingSinceMs;
  const creating = v.spec.creatingSinceMs;
  return creating !== undefined && nowMs - creating > creatingTimeoutMs ? creating : undefined;
}

/** What judging which vDisks are being removed needs: their ids and specs, and the clock. */
type RemovedInput = Pick<SweepInput, 'nowMs' | 'creatingTimeoutMs'> & { vdisks: ReadonlyArray<Pick<VdiskLike, 'id' | 'spec'>> };

/** Whether a snapshot or clone is being made now (not interrupted): its rows may be half copied. */
export function makingAny(input: RemovedInput): boolean {
  const { nowMs, timeoutMs } = clock(input);
  return input.vdisks.some((v) => v.spec.deletingSinceMs === undefined && v.spec.creatingSinceMs !== undefined && removedSinceMs(v, nowMs, timeoutMs) === undefined);
}

function clock(input: Pick<SweepInput, 'nowMs' | 'creatingTimeoutMs'>): { nowMs: number; timeoutMs: number } {
  return { nowMs: input.nowMs ?? Date.now(), timeoutMs: input.creatingTimeoutMs ?? CREATING_TIMEOUT_MS_DEFAULT };
}

/** The vDisks being removed: marked deleting, or an interrupted making. */
export function removedVdisks(input: RemovedInput): Set<bigint> {
  const { nowMs, timeoutMs } = clock(input);
  return new Set(input.vdisks.filter((v) => removedSinceMs(v, nowMs, timeoutMs) !== undefined).map((v) => v.id));
}

/** Which vDisks' rows name each extent group: the references, derived from the rows (md-vdisk keys `<vdisk>.<row>`). */
export function referencesOf(rows: ReadonlyArray<{ key: string; value: { blocks: Record<string, { egroup: bigint }> } }>): Map<bigint, Set<bigint>> {
  const out = new Map<bigint, Set<bigint>>();
  for (const { key, value } of rows) {
    const vdisk = vdiskOfRowKey(key);
    if (vdisk === undefined) continue;
    for (const location of Object.values(value.blocks)) {
      let set = out.get(location.egroup);
      if (set === undefined) out.set(location.egroup, (set = new Set()));
      set.add(vdisk);
    }
  }
  return out;
}

/** Whether a row of a vDisk that stays (not in `removed`) names `egroup`. */
export function liveReference(references: ReadonlyMap<bigint, ReadonlySet<bigint>>, removed: ReadonlySet<bigint>, egroup: bigint): boolean {
  for (const vdisk of references.get(egroup) ?? []) if (!removed.has(vdisk)) return true;
  return false;
}

/** The vDisk a md-vdisk key (`<vdisk>.<row>`) belongs to, or undefined for a key of another shape. */
export function vdiskOfRowKey(key: string): bigint | undefined {
  const match = /^([0-9]+)\.[0-9]+$/.exec(key);
  return match === null ? undefined : BigInt(match[1]!);
}

export function planSweep(input: SweepInput): VdiskSweepPlan[] {
  if (!Number.isInteger(input.vdisksMax) || input.vdisksMax < 1) throw new RangeError(`vdisksMax must be a positive integer, not ${input.vdisksMax}`);
  const { nowMs, timeoutMs } = clock(input);
  const since = (v: VdiskLike): number => removedSinceMs(v, nowMs, timeoutMs)!;
  const deleting = input.vdisks
    .filter((v) => removedSinceMs(v, nowMs, timeoutMs) !== undefined)
    .sort((a, b) => since(a) - since(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, input.vdisksMax);
  if (deleting.length === 0) return [];
  const removed = removedVdisks(input);
  const frozen = makingAny(input);
  const plans = new Map<bigint, VdiskSweepPlan>();
  for (const v of deleting) {
    plans.set(v.id, {
      vdisk: v.id,
      name: v.name,
      revision: v.revision,
      deletingSinceMs: since(v),
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
    // Still named by a snapshot or clone that stays (or one is being made): kept, and
    // reclaimed once nothing names it.
    if (frozen || liveReference(input.references, removed, id)) continue;
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

/** An extent group nothing live names any more, kept earlier for a snapshot or clone (see the top). */
export interface ReclaimedEgroup extends PlannedEgroup {
  /** Its writer (egroup-entry `vdisk`). */
  vdisk: bigint;
  why: string;
}

export interface ReclaimInput extends Pick<SweepInput, 'vdisks' | 'egroups' | 'references' | 'nowMs' | 'creatingTimeoutMs'> {
  egroups: ReadonlyArray<{ id: bigint; entry: Pick<EgroupEntry, 'vdisk' | 'replicas' | 'sizeBytes' | 'gen'> }>;
  /** The generation of each writer that stays (vdisk-ownership `generation`), for those ownersToCheck names; absent: 0. */
  generations: ReadonlyMap<bigint, number>;
}

/** The writers that stay whose generation planReclaim needs: those of extent groups no live row names. */
export function ownersToCheck(input: Omit<ReclaimInput, 'generations'>): bigint[] {
  const removed = removedVdisks(input);
  const existing = new Set(input.vdisks.map((v) => v.id));
  const owners = new Set<bigint>();
  for (const { id, entry } of input.egroups) {
    if (existing.has(entry.vdisk) && !removed.has(entry.vdisk) && !liveReference(input.references, removed, id)) owners.add(entry.vdisk);
  }
  return [...owners].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The extent groups to delete that no vDisk's sweep plan holds: no row of a live
 * vDisk names them, and either their writer is gone (its config object removed: it
 * was swept while a snapshot or clone still named them) or they are sealed (created
 * below their writer's current generation: a snapshot's cut closed them, so the
 * writer allocates nothing new in them, and its rows no longer name them). Those of
 * a vDisk being removed are its sweep plan's. Nothing while a snapshot or clone is
 * being made.
 */
export function planReclaim(input: ReclaimInput): ReclaimedEgroup[] {
  if (makingAny(input)) return [];
  const removed = removedVdisks(input);
  const existing = new Set(input.vdisks.map((v) => v.id));
  const out: ReclaimedEgroup[] = [];
  for (const { id, entry } of input.egroups) {
    if (removed.has(entry.vdisk) || liveReference(input.references, removed, id)) continue;
    let why: string | undefined;
    if (!existing.has(entry.vdisk)) why = `its writer, vdisk ${entry.vdisk}, is gone and no live vdisk names it`;
    else if ((entry.gen ?? 0) < (input.generations.get(entry.vdisk) ?? 0)) why = `sealed by a snapshot of vdisk ${entry.vdisk} (generation ${entry.gen ?? 0} < ${input.generations.get(entry.vdisk)}) and no live vdisk names it`;
    if (why === undefined) continue;
    out.push({ id, vdisk: entry.vdisk, replicas: entry.replicas.map((r) => ({ disk: r.disk, node: r.node })), sizeBytes: entry.sizeBytes, why });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** `items` grouped by their writer, in order. */
export function byWriter<T extends { vdisk: bigint }>(items: readonly T[]): Map<bigint, T[]> {
  const out = new Map<bigint, T[]>();
  for (const item of items) out.set(item.vdisk, [...(out.get(item.vdisk) ?? []), item]);
  return out;
}
