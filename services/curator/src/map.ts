// The map of a scan, on any curator: one page of one map task (mapreduce.ts), read
// from md-egroup (reads only: the shards alone write it). A complete or full task
// reads every entry of its partitions, a page of keys at a time, and a full one asks
// each replica's extent store whether the replica is there; a partial task reads the
// bucket's changes since a revision. A slave serves it on `strata.curator.<node>.map`
// and refuses a task from a master whose lease epoch has passed.
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import type { LeaseRecord } from '@strata/lease';
import { EstoreOp, MAP_PAGE_BYTES, MAP_PAGE_ROWS, egStatReply, keys, partitionOf, subjects, type CuratorMapReply, type CuratorMapRequest, type MapRow, type egroupEntry } from '@strata/proto';
import type { z } from 'zod';
import { pause } from './copier';

/** Reads of entries (and replica stats) in flight at once within one page. */
const READS_IN_FLIGHT = 16;

export interface MapPorts {
  bus: Bus;
  egroups: TypedBucket<typeof egroupEntry>;
  /** Budget of each extent-store stat, and of a partial page's read of the changes. */
  timeoutMs: number;
  /** Fault tests only: each page is answered this much later. */
  holdMs: number;
}

/** One page of a map task. */
export async function mapPage(ports: MapPorts, req: CuratorMapRequest): Promise<CuratorMapReply> {
  const reply = req.kind === 'partial' ? await changedPage(ports, req) : await entriesPage(ports, req);
  if (ports.holdMs > 0) await pause(ports.holdMs);
  return reply;
}

/**
 * The slave's check before it maps: the lease `curator.master` must still be the
 * requester's. A master that lost it (its successor resumes the scan) gets FENCED.
 */
export function refuseStale(req: CuratorMapRequest, lease: LeaseRecord | undefined): void {
  if (lease === undefined) return;
  if (lease.epoch > req.curatorEpoch || (lease.epoch === req.curatorEpoch && lease.holder !== req.master)) {
    throw new StrataError(
      ErrorCode.FENCED,
      `map task ${req.task} of scan ${req.scan} refused: it comes from ${req.master} at curator epoch ${req.curatorEpoch}, but curator.master is ${lease.holder === '' ? 'released' : lease.holder} at epoch ${lease.epoch}`,
    );
  }
}

/** A complete or full task: the next page of its partitions' keys, in key order, after `after`. */
async function entriesPage(ports: MapPorts, req: CuratorMapRequest): Promise<CuratorMapReply> {
  const parts = new Set(req.partitions);
  const after = req.after === undefined ? -1n : BigInt(req.after);
  const all = (await ports.egroups.keys())
    .filter((k) => /^\d+$/.test(k) && parts.has(partitionOf(k)))
    .map((k) => BigInt(k))
    .filter((e) => e > after)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const page = all.slice(0, MAP_PAGE_ROWS);
  const rows: MapRow[] = [];
  await forEachLimited(page, READS_IN_FLIGHT, async (egroup) => {
    const e = await ports.egroups.get(keys.egroup(egroup));
    if (e !== null) rows.push({ egroup, revision: e.revision, entry: e.value });
  });
  rows.sort((a, b) => (a.egroup < b.egroup ? -1 : a.egroup > b.egroup ? 1 : 0));
  // Within the byte budget; the keys after the last row kept are the next page's (read again then).
  const kept = withinBytes(rows);
  const lastKey = kept.length < rows.length ? kept[kept.length - 1]!.egroup : page[page.length - 1];
  const entries = page.filter((e) => lastKey === undefined || e <= lastKey).length;
  const missing = req.kind === 'full' ? await missingReplicas(ports, kept, new Set(req.alive)) : [];
  const more = kept.length < rows.length || all.length > page.length;
  return { rows: kept, deleted: [], missing, entries, ...(more && lastKey !== undefined ? { next: String(lastKey) } : {}) };
}

/**
 * A row's CBOR size, from above: its extents and replicas are what grow (ids, names and
 * numbers of at most 64 bytes each, with their keys).
 */
export function rowBytesAtMost(row: MapRow): number {
  return 256 + row.entry.replicas.length * 96 + row.entry.extents.reduce((n, x) => n + 64 + x.id.length, 0);
}

/** The first rows that fit in MAP_PAGE_BYTES (one row at least). */
function withinBytes(rows: readonly MapRow[]): MapRow[] {
  let bytes = 0;
  let n = 0;
  while (n < rows.length) {
    bytes += rowBytesAtMost(rows[n]!);
    if (n > 0 && bytes > MAP_PAGE_BYTES) break;
    n++;
  }
  return rows.slice(0, n);
}

/**
 * A full task's look at the disks: the replicas on live nodes whose extent store has no
 * file for them. Only entries at version 1 or more: every replica has acknowledged a
 * write, so each must have its file (a new extent group's replicas have none until
 * their first write).
 */
async function missingReplicas(ports: MapPorts, rows: readonly MapRow[], alive: ReadonlySet<string>): Promise<Array<{ egroup: bigint; disk: bigint }>> {
  const replicas = rows.filter((row) => row.entry.version > 0).flatMap((row) => row.entry.replicas.filter((r) => alive.has(r.node)).map((r) => ({ egroup: row.egroup, ...r })));
  const missing: Array<{ egroup: bigint; disk: bigint }> = [];
  await forEachLimited(replicas, READS_IN_FLIGHT, async (r) => {
    try {
      await ports.bus.request(subjects.estore(r.node, EstoreOp.stat), { disk: r.disk, egroup: r.egroup }, egStatReply, { timeoutMs: ports.timeoutMs });
    } catch (err) {
      // Only NOT_FOUND says the file is gone; a node that does not answer is judged by its liveness.
      if (isStrataError(err, ErrorCode.NOT_FOUND)) missing.push({ egroup: r.egroup, disk: r.disk });
    }
  });
  return missing;
}

/**
 * A partial task: the bucket's changes after `sinceRevision` (or the last page's
 * cursor) in its partitions, read from the stream (with history 1 it holds the last
 * value of each key: those after the revision are the changes), up to a page.
 */
async function changedPage(ports: MapPorts, req: CuratorMapRequest): Promise<CuratorMapReply> {
  const from = Math.max(req.sinceRevision, req.after === undefined ? 0 : Number(req.after)) + 1;
  const empty: CuratorMapReply = { rows: [], deleted: [], missing: [], entries: 0 };
  const last = await ports.egroups.lastSequence();
  if (last < from) return empty;
  const parts = new Set(req.partitions);
  const reply: CuratorMapReply = { ...empty, rows: [], deleted: [] };
  let bytes = 0;
  const iterator = await ports.egroups.kv.watch({ key: '>', resumeFromRevision: from });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    iterator.stop();
  }, ports.timeoutMs);
  try {
    for await (const e of iterator) {
      if (/^\d+$/.test(e.key) && parts.has(partitionOf(e.key))) {
        reply.entries++;
        if (e.operation === 'PUT') {
          const { value } = ports.egroups.decodeEntry(e) as { value: z.output<typeof egroupEntry> };
          reply.rows.push({ egroup: BigInt(e.key), revision: e.revision, entry: value });
          bytes += e.value.length + 64;
        } else reply.deleted.push({ egroup: BigInt(e.key), revision: e.revision });
      }
      if ((e.delta ?? 0) === 0 || e.revision >= last) break;
      if (reply.rows.length + reply.deleted.length >= MAP_PAGE_ROWS || bytes > MAP_PAGE_BYTES) {
        reply.next = String(e.revision);
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    iterator.stop();
  }
  if (timedOut) throw new StrataError(ErrorCode.TIMEOUT, `map task ${req.task}: the changes of md-egroup after revision ${from - 1} were not read within ${ports.timeoutMs} ms`);
  return reply;
}

/** Runs `work` over `items`, at most `limit` at a time; the first failure fails it all. */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
