// The garbage collection's I/O, run by the master at each scan: list every disk of
// every live node (`strata.estore.<node>.list`, paged, a few disks at a time), plan
// (garbage.ts), then delete at a bounded rate, each replica only after its entry was
// read again just before (it may have changed since the scan read it) and while no
// copy of its extent group is queued or running.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bus } from '@strata/bus';
import type { Logger } from '@strata/log';
import type { MdMaps } from '@strata/md-client';
import { EG_LIST_LIMIT_DEFAULT, EstoreOp, egDeleteReply, egListReply, keys, subjects, type CuratorGarbageSummary, type EgListedReplica } from '@strata/proto';
import { planGarbage, stillGarbage, type DiskListing, type GarbageDelete } from './garbage';
import type { ClusterView, EgroupRow } from './plan';

/** Disks listed at once. */
const LISTS_IN_FLIGHT = 4;
/** Pages of one disk at most per scan (10 million replicas at 1000 a page): a bound, never reached in practice. */
const PAGES_MAX = 10_000;
/**
 * A scan deletes at most this many seconds' worth of garbage at the configured rate;
 * the rest waits for the next scan. A scan request is answered once its garbage
 * collection ends, so this stays well inside the CLI's wait for a scan (120 s).
 */
const DELETE_SECONDS_MAX = 30;

export interface GcDeps {
  bus: Bus;
  md: Pick<MdMaps, 'get'>;
  log: Logger;
  timeoutMs: number;
  graceMs: number;
  deletesPerSec: number;
  /** False with `STRATA_GC=off`: plan and report, delete nothing. */
  enabled: boolean;
  /** Whether this process still leads: a deposed master deletes nothing. */
  leading: () => boolean;
  /** Whether a copy of the extent group is queued or running (its target replica is not recorded yet). */
  copying: (egroup: bigint) => boolean;
}

export interface GcResult {
  summary: CuratorGarbageSummary;
  /** The deletes done, for the log and the event. */
  deleted: GarbageDelete[];
}

/** One scan's garbage collection. `rows` and `view` are the scan's. */
export async function collectGarbage(d: GcDeps, rows: readonly EgroupRow[], view: ClusterView): Promise<GcResult> {
  const listings = await listDisks(d, view);
  const planned = planGarbage(rows, listings, view, Date.now(), d.graceMs);
  for (const s of planned.skippedDisks) d.log.info({ disk: String(s.disk), node: s.node }, `garbage collection skips disk ${s.disk}: ${s.why}`);
  const deleted: GarbageDelete[] = [];
  if (d.enabled) {
    const budget = d.deletesPerSec * DELETE_SECONDS_MAX;
    for (const g of planned.deletes.slice(0, budget)) {
      if (!d.leading()) break;
      if (await deleteIfStillGarbage(d, g)) deleted.push(g);
      await sleep(1000 / d.deletesPerSec);
    }
  } else if (planned.deletes.length > 0) {
    d.log.info({ replicas: planned.deletes.length }, `garbage collection is off: ${planned.deletes.length} replicas no entry names are left on the disks`);
  }
  return {
    deleted,
    summary: {
      atMs: Date.now(),
      listed: planned.listed,
      deleted: deleted.length,
      bytes: deleted.reduce((n, g) => n + g.bytes, 0),
      young: planned.young,
      skippedDisks: planned.skippedDisks.length,
      enabled: d.enabled,
    },
  };
}

/** Every disk of every live node, listed; a disk that fails is reported as such (the plan skips it). */
async function listDisks(d: GcDeps, view: ClusterView): Promise<DiskListing[]> {
  const disks = [...view.disks.values()].filter((disk) => view.nodes.get(disk.node)?.liveness === 'alive');
  const listings: DiskListing[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < disks.length) {
      const disk = disks[next++]!;
      try {
        listings.push({ node: disk.node, disk: disk.id, replicas: await listDisk(d, disk.node, disk.id) });
      } catch (err) {
        listings.push({ node: disk.node, disk: disk.id, error: (err as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LISTS_IN_FLIGHT, disks.length) }, worker));
  return listings;
}

/** All the replicas of one disk, a page at a time. */
async function listDisk(d: GcDeps, node: string, disk: bigint): Promise<EgListedReplica[]> {
  const replicas: EgListedReplica[] = [];
  let after: bigint | undefined;
  for (let page = 0; page < PAGES_MAX; page++) {
    const reply = await d.bus.request(subjects.estore(node, EstoreOp.list), { disk, ...(after === undefined ? {} : { after }), limit: EG_LIST_LIMIT_DEFAULT }, egListReply, { timeoutMs: d.timeoutMs });
    replicas.push(...reply.replicas);
    if (!reply.more || reply.replicas.length === 0) return replicas;
    after = reply.replicas.at(-1)!.egroup;
  }
  throw new Error(`disk ${disk} of ${node} has more than ${PAGES_MAX} pages of replicas`);
}

/**
 * Deletes one planned replica after reading its entry again: the scan's read may be
 * old by now (a copy recorded since, a new extent group placed on this disk).
 * Resolves whether it was deleted; a failure is logged and left for the next scan.
 */
async function deleteIfStillGarbage(d: GcDeps, g: GarbageDelete): Promise<boolean> {
  const fields = { egroup: String(g.egroup), disk: String(g.disk), node: g.node };
  try {
    if (d.copying(g.egroup)) return false;
    const entry = await d.md.get('egroup', keys.egroup(g.egroup));
    if (!stillGarbage(entry?.value, g.disk)) {
      d.log.info(fields, `egroup ${g.egroup}: its entry names disk ${g.disk} now; its replica there is kept`);
      return false;
    }
    // Asked again after the await, right before the delete leaves: a master paused
    // (SIGSTOP) during the read wakes past its lease, and a new master may have copied
    // this extent group to this very disk meanwhile. The lease answers from the local
    // clock, so a woken master sees it lost here, before it sends anything.
    if (!d.leading()) return false;
    await d.bus.request(subjects.estore(g.node, EstoreOp.delete), { disk: g.disk, egroup: g.egroup }, egDeleteReply, { timeoutMs: d.timeoutMs });
    d.log.info({ ...fields, bytes: g.bytes }, `garbage replica deleted: ${g.why}`);
    return true;
  } catch (err) {
    d.log.warn({ ...fields, err }, 'could not delete a garbage replica; the next scan tries again');
    return false;
  }
}
