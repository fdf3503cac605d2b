// The sweep's executor: for each vDisk marked deleting, deletes what planSweep lists,
// bottom-up, and then its config object (the commit):
//  1. fence: its ownership record goes to epoch + 1, so an owner still serving it (a
//     `vdisk rm --force` of an open vDisk) has every later metadata write refused
//     FENCED and stops (it cannot record `drained` either);
//  2. every replica of its extent groups, on the extent stores (`strata.estore.<node>.delete`);
//  3. its extent-group entries, then its vDisk map rows (through the metadata shards);
//  4. its ownership and takeover records;
//  5. its oplog subject (purged whole);
//  6. the config object, only at the revision that was marked (the commit);
//  7. a `vdisk.swept` event with the counts and the bytes freed.
// Every step deletes what is there and accepts what is gone already, so a sweep that
// stopped anywhere (a crash, an extent store down) is finished by the next one: the
// config object, removed last, keeps the vDisk on the list until everything else is
// gone. A vDisk that fails is reported and left for the next sweep; the others go on.
// The work is bounded: at most `vdisksMax` vDisks per sweep, `inFlightMax` requests at
// once, and at most `requestsPerSecondMax` started a second.
import { EventType, keys, type ClusterEvent, type EgroupEntry, type ObjectOf, type VdiskRow } from '@strata/proto';
import { CREATING_TIMEOUT_MS_DEFAULT, byWriter, ownersToCheck, planReclaim, planSweep, referencesOf, type ReclaimedEgroup, type VdiskSweepPlan } from './plan';
import { planUnnamed, releaseBatches, stillUnnamed, type UnnamedEgroup, type UnnamedPorts, type UnnamedSince } from './unnamed';
import { compactionWriters, planCompaction, type CompactAsked } from './compact';

/** The reclaim of extent groups of live vDisks (unnamed.ts) and their compaction (compact.ts): the curator master's memory and settings. */
export interface LiveReclaim {
  since: UnnamedSince;
  graceMs: number;
  /** Absent: no compaction. */
  compact?: {
    /** Below this share of its size live, an extent group is compacted. */
    liveFraction: number;
    /** Live bytes moved per sweep at most. */
    bytesMax: number;
    asked: CompactAsked;
  };
}

/**
 * What the sweep reads and deletes; sweepDepsFor (bus-deps.ts) builds it over NATS, tests
 * pass fakes. `ownership` and `release` (unnamed.ts) serve the reclaim of extent groups
 * of live vDisks; without them it does not run.
 */
export interface SweepPorts extends Partial<UnnamedPorts> {
  /** Asks `node`, the vDisk's owner at `epoch`, to evacuate `egroups` (`strata.vdc.<node>.compact`). */
  compact?(node: string, vdisk: bigint, epoch: number, egroups: readonly bigint[]): Promise<{ evacuating: bigint[]; blocks: number }>;
  listVdisks(): Promise<Array<ObjectOf<'vdisk'>>>;
  /** Every row of md-vdisk, with its key (the references of snapshots and clones are derived from them). */
  rows(): Promise<Array<{ key: string; value: VdiskRow }>>;
  /** A vDisk's generation (its ownership record's; 0 when it has none). */
  generation(vdisk: bigint): Promise<number>;
  /** Every entry of md-egroup, with its revision (the reclaim of unnamed extent groups needs it). */
  egroups(): Promise<Array<{ id: bigint; entry: EgroupEntry; revision?: number }>>;
  /** Every key of `own`. */
  ownKeys(): Promise<string[]>;
  /** Raises the epoch of the ownership record `key` by one (compare-and-set); nothing when it is gone. */
  fenceOwnership(key: string): Promise<void>;
  /** Deletes one replica; resolves to the bytes it held (0 when it was not there). */
  deleteReplica(node: string, disk: bigint, egroup: bigint): Promise<number>;
  /** Deletes a key of a metadata map (no error when it is gone); only at `revision` when given (CONFLICT otherwise). */
  deleteMd(map: 'vdisk' | 'egroup', key: string, revision?: number): Promise<void>;
  /** Deletes a key of `own` (no error when it is gone). */
  deleteOwn(key: string): Promise<void>;
  /** Purges every message of an oplog subject. */
  purgeOplog(subject: string): Promise<void>;
  /** Deletes the vDisk's config object if it is still at `revision`. */
  commit(vdisk: bigint, name: string, revision: number): Promise<void>;
  /** Records the sweep of one vDisk (EVENTS); absent in tests that do not look. */
  event?(event: ClusterEvent): Promise<void>;
  /** Waits `ms` (pacing); injected so tests run without real time. */
  sleep?(ms: number): Promise<void>;
  nowMs?(): number;
}

export interface SweepLimits {
  /** vDisks swept in one call; the rest wait for the next. */
  vdisksMax: number;
  /** Delete requests in flight at once. */
  inFlightMax: number;
  /** Delete requests started a second, at most. */
  requestsPerSecondMax: number;
}

export const SWEEP_LIMITS_DEFAULT: SweepLimits = { vdisksMax: 64, inFlightMax: 8, requestsPerSecondMax: 500 };

export interface SweptVdisk {
  vdisk: bigint;
  name: string;
  egroups: number;
  replicas: number;
  rows: number;
  own: number;
  freedBytes: number;
}

export interface SweepResult {
  swept: SweptVdisk[];
  /** Extent groups deleted because no live vDisk names them: kept for snapshots or clones before, or released by their writer (unnamed.ts). */
  reclaimed?: Array<{ egroup: bigint; vdisk: bigint; replicas: number; freedBytes: number; why: string }>;
  /**
   * The extent groups of live vDisks no row names (when the reclaim of those ran):
   * `unnamed` seen now, `due` (unnamed and unchanged for the grace period), `released`
   * by their writers' owners, and `kept` by the owners (still in use in memory).
   */
  unnamed?: { unnamed: number; due: number; released: number; kept: number };
  /** Extent groups that are mostly dead given to their owners to evacuate (compact.ts), and the blocks queued. */
  compacted?: { asked: number; evacuating: number; blocks: number; liveBytes: number };
  /** vDisks whose sweep stopped at an error: they stay marked, and the next sweep goes on with them. */
  failed: Array<{ vdisk: bigint; name: string; error: string }>;
}

/**
 * `creatingTimeoutMs`: how old a snapshot's or clone's `creatingSinceMs` must be for its
 * making to count as interrupted (and be swept); CREATING_TIMEOUT_MS_DEFAULT unless set
 * (STRATA_CREATING_TIMEOUT_MS of the curator and of `strata vdisk sweep`).
 *
 * `live`: the reclaim of extent groups of live vDisks that no row names (unnamed.ts),
 * with the curator master's memory of since when each was seen unnamed, and the grace
 * period; absent (`strata vdisk sweep`), it does not run.
 */
export async function sweepDeleted(
  ports: SweepPorts,
  limits: SweepLimits = SWEEP_LIMITS_DEFAULT,
  creatingTimeoutMs = CREATING_TIMEOUT_MS_DEFAULT,
  live?: LiveReclaim,
): Promise<SweepResult> {
  checkLimits(limits);
  if (!Number.isInteger(creatingTimeoutMs) || creatingTimeoutMs < 1) throw new RangeError(`creatingTimeoutMs must be a positive integer, not ${creatingTimeoutMs}`);
  const vdisks = await ports.listVdisks();
  const nowMs = Date.now();
  // No early return when nothing is being removed: a snapshot seals extent groups its
  // source's rows no longer name (never written ones too), and they are reclaimed below
  // whether or not a vDisk is being removed (the crash test found them left otherwise).
  const [rows, egroups, ownKeys] = await Promise.all([ports.rows(), ports.egroups(), ports.ownKeys()]);
  const references = referencesOf(rows);
  const plans = planSweep({ vdisks, rowKeys: rows.map((r) => r.key), references, egroups, ownKeys, vdisksMax: limits.vdisksMax, nowMs, creatingTimeoutMs });
  const pace = pacer(limits.requestsPerSecondMax, ports.sleep ?? sleep, ports.nowMs ?? (() => performance.now()));
  const result: SweepResult = { swept: [], failed: [] };
  for (const plan of plans) {
    try {
      result.swept.push(await sweepOne(ports, plan, limits, pace));
    } catch (err) {
      result.failed.push({ vdisk: plan.vdisk, name: plan.name, error: errorText(err) });
    }
  }
  // Judged on the rows read before the plans ran: what they deleted only removed references.
  const generations = new Map<bigint, number>();
  for (const owner of ownersToCheck({ vdisks, egroups, references, nowMs, creatingTimeoutMs })) generations.set(owner, await ports.generation(owner));
  const reclaim = planReclaim({ vdisks, egroups, references, generations, nowMs, creatingTimeoutMs });
  if (reclaim.length > 0) result.reclaimed = [];
  for (const g of reclaim) {
    try {
      result.reclaimed!.push(await reclaimOne(ports, g, limits, pace));
    } catch (err) {
      result.failed.push({ vdisk: g.vdisk, name: `egroup ${g.id}`, error: errorText(err) });
    }
  }
  if (live !== undefined && asksOwners(ports)) {
    const withRevisions = egroups.flatMap((e) => (e.revision === undefined ? [] : [{ id: e.id, entry: e.entry, revision: e.revision }]));
    const candidates = planUnnamed({ vdisks, egroups: withRevisions, references, generations, nowMs, creatingTimeoutMs });
    await reclaimUnnamed(ports, candidates, live, { limits, pace, creatingTimeoutMs, result });
    if (live.compact !== undefined && compacts(ports)) {
      const input = { vdisks, rows, egroups, nowMs, creatingTimeoutMs, liveFraction: live.compact.liveFraction };
      for (const writer of compactionWriters(input)) if (!generations.has(writer)) generations.set(writer, await ports.generation(writer));
      await compactMostlyDead(ports, planCompaction(input, generations, live.compact.bytesMax), live.compact.asked, live.graceMs, result);
    }
  }
  return result;
}

/** Asks the owners to evacuate the extent groups that are mostly dead (compact.ts), one request per writer; nothing is deleted here. */
async function compactMostlyDead(
  ports: SweepPorts & UnnamedPorts & CompactPort,
  candidates: ReturnType<typeof planCompaction>,
  asked: CompactAsked,
  againAfterMs: number,
  result: SweepResult,
): Promise<void> {
  const nowMs = Date.now();
  const due = asked.due(candidates, nowMs, againAfterMs);
  if (due.length === 0) return;
  const summary = { asked: 0, evacuating: 0, blocks: 0, liveBytes: 0 };
  result.compacted = summary;
  await eachOwner(ports, byWriter(due), 'compaction of extent groups', result, async (vdisk, own, batch) => {
    const ids = batch.map((c) => c.id);
    const reply = await ports.compact(own.owner, vdisk, own.epoch, ids);
    asked.asked(ids, nowMs);
    summary.asked += ids.length;
    summary.evacuating += reply.evacuating.length;
    summary.blocks += reply.blocks;
    const evacuating = new Set(reply.evacuating);
    summary.liveBytes += batch.filter((c) => evacuating.has(c.id)).reduce((n, c) => n + c.liveBytes, 0);
  });
}

/**
 * Asks the writers' owners to release the due unnamed extent groups (unnamed.ts), then
 * reads the rows once more, after every release, and deletes the released ones still
 * unnamed like planReclaim's, by compare-and-set on the entry's revision.
 */
async function reclaimUnnamed(
  ports: SweepPorts & UnnamedPorts,
  candidates: readonly UnnamedEgroup[],
  live: { since: UnnamedSince; graceMs: number },
  run: { limits: SweepLimits; pace: () => Promise<void>; creatingTimeoutMs: number; result: SweepResult },
): Promise<void> {
  const due = live.since.observe(candidates, Date.now(), live.graceMs);
  const summary = { unnamed: candidates.length, due: due.size, released: 0, kept: 0 };
  run.result.unnamed = summary;
  const released: UnnamedEgroup[] = [];
  const ownerOf = new Map<bigint, string>();
  await eachOwner(ports, releaseBatches(candidates, due), 'unnamed extent groups', run.result, async (vdisk, own, batch) => {
    const ids = new Set(await ports.release(own.owner, vdisk, own.epoch, batch.map((g) => g.id)));
    summary.released += ids.size;
    summary.kept += batch.length - ids.size;
    released.push(...batch.filter((g) => ids.has(g.id)));
    ownerOf.set(vdisk, own.owner);
  });
  if (released.length === 0) return;
  const [vdisks, rows] = await Promise.all([ports.listVdisks(), ports.rows()]);
  const graceS = Math.round(live.graceMs / 1000);
  for (const g of stillUnnamed(released, { vdisks, rows, nowMs: Date.now(), creatingTimeoutMs: run.creatingTimeoutMs })) {
    const why = `no row names it (unnamed and unchanged for ${graceS} s or more); released by its writer, vdisk ${g.vdisk}, owned by ${ownerOf.get(g.vdisk)}`;
    try {
      run.result.reclaimed ??= [];
      run.result.reclaimed.push(await reclaimOne(ports, { ...g, why }, run.limits, run.pace, g.revision));
    } catch (err) {
      run.result.failed.push({ vdisk: g.vdisk, name: `egroup ${g.id}`, error: errorText(err) });
    }
  }
}

/** The owner's side of the sweep (unnamed.ts): present, the reclaim of live vDisks' extent groups runs. */
function asksOwners(ports: SweepPorts): ports is SweepPorts & UnnamedPorts {
  return ports.ownership !== undefined && ports.release !== undefined;
}

type CompactPort = Required<Pick<SweepPorts, 'compact'>>;

function compacts(ports: SweepPorts): ports is SweepPorts & CompactPort {
  return ports.compact !== undefined;
}

/**
 * For each writer's batch, its owner (none: no writer runs, and the batch is left as it
 * is) is given to `ask`; a failure is recorded in `result` and the other writers go on.
 */
async function eachOwner<T>(
  ports: UnnamedPorts,
  batches: ReadonlyMap<bigint, T>,
  what: string,
  result: SweepResult,
  ask: (vdisk: bigint, own: { owner: string; epoch: number }, batch: T) => Promise<void>,
): Promise<void> {
  for (const [vdisk, batch] of batches) {
    try {
      const own = await ports.ownership(vdisk);
      if (own !== null) await ask(vdisk, own, batch);
    } catch (err) {
      result.failed.push({ vdisk, name: `${what} of vdisk ${vdisk}`, error: errorText(err) });
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Deletes one extent group no live vDisk names (kept for a snapshot or clone before, or
 * released by its writer): its replicas, then its entry (by compare-and-set on
 * `revision` when given); then an event with the reason.
 */
async function reclaimOne(ports: SweepPorts, g: ReclaimedEgroup, limits: SweepLimits, pace: () => Promise<void>, revision?: number): Promise<NonNullable<SweepResult['reclaimed']>[number]> {
  let freedBytes = 0;
  await forEachLimited(g.replicas, limits.inFlightMax, async (r) => {
    await pace();
    const bytes = await ports.deleteReplica(r.node, r.disk, g.id);
    freedBytes += bytes;
  });
  await ports.deleteMd('egroup', keys.egroup(g.id), revision);
  await ports.event?.({
    type: EventType.egroupReclaimed,
    atMs: Date.now(),
    epoch: 0,
    kind: 'egroup',
    id: g.id,
    freedBytes,
    reason: g.why,
    cause: 'sweep',
    message: `egroup ${g.id} deleted (${(freedBytes / 2 ** 20).toFixed(1)} MiB freed): ${g.why}`,
  });
  return { egroup: g.id, vdisk: g.vdisk, replicas: g.replicas.length, freedBytes, why: g.why };
}

async function sweepOne(ports: SweepPorts, plan: VdiskSweepPlan, limits: SweepLimits, pace: () => Promise<void>): Promise<SweptVdisk> {
  const ownership = keys.vdiskOwnership(plan.vdisk);
  if (plan.own.includes(ownership)) await ports.fenceOwnership(ownership);

  const replicas = plan.egroups.flatMap((g) => g.replicas.map((r) => ({ ...r, egroup: g.id })));
  let freedBytes = 0;
  await forEachLimited(replicas, limits.inFlightMax, async (r) => {
    await pace();
    // Read the total only after the await: `x += await f()` would add to a stale total.
    const bytes = await ports.deleteReplica(r.node, r.disk, r.egroup);
    freedBytes += bytes;
  });
  // Bottom-up, as everywhere in the metadata: an extent group's entry goes only once
  // no replica is left, a row only once its extent groups are gone.
  await forEachLimited(plan.egroups, limits.inFlightMax, async (g) => {
    await pace();
    await ports.deleteMd('egroup', keys.egroup(g.id));
  });
  await forEachLimited(plan.rows, limits.inFlightMax, async (row) => {
    await pace();
    await ports.deleteMd('vdisk', row);
  });
  for (const key of plan.own) await ports.deleteOwn(key);
  await ports.purgeOplog(plan.oplogSubject);
  await ports.commit(plan.vdisk, plan.name, plan.revision);

  const swept: SweptVdisk = { vdisk: plan.vdisk, name: plan.name, egroups: plan.egroups.length, replicas: replicas.length, rows: plan.rows.length, own: plan.own.length, freedBytes };
  await ports.event?.({
    type: EventType.vdiskSwept,
    atMs: Date.now(),
    epoch: 0,
    kind: 'vdisk',
    id: plan.vdisk,
    name: plan.name,
    freedBytes,
    cause: 'sweep',
    message: describeSwept(swept),
  });
  return swept;
}

/** One line for people: `vdisk old swept: 2 extent groups (4 replicas, 32.0 MiB freed), 1 row, 1 ownership record, oplog purged`. */
export function describeSwept(s: SweptVdisk): string {
  const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;
  return `vdisk ${s.name} swept: ${plural(s.egroups, 'extent group')} (${plural(s.replicas, 'replica')}, ${(s.freedBytes / 2 ** 20).toFixed(1)} MiB freed), ${plural(s.rows, 'row')}, ${plural(s.own, 'ownership record')}, oplog purged`;
}

function checkLimits(l: SweepLimits): void {
  for (const [name, value] of Object.entries(l)) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`sweep limit ${name} must be a positive integer, not ${value}`);
  }
}

/** Runs `fn` over `items`, at most `max` at once; the first failure is thrown once all have settled. */
async function forEachLimited<T>(items: readonly T[], max: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(max, items.length) }, worker));
  if (failure !== undefined) throw failure.err;
}

/** Spaces request starts at least 1/rate s apart (one clock, shared by the workers). */
function pacer(ratePerSecond: number, wait: (ms: number) => Promise<void>, now: () => number): () => Promise<void> {
  const gapMs = 1000 / ratePerSecond;
  let nextAtMs = -Infinity;
  return async () => {
    const t = now();
    const at = Math.max(t, nextAtMs);
    nextAtMs = at + gapMs;
    if (at > t) await wait(at - t);
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
