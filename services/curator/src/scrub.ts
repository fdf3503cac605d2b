// Scrub: every replica of every written extent group on a live node read whole, at a
// bounded rate, through its extent store, which checks each slice against its CRC32C
// on every read and answers CHECKSUM for one that no longer matches (a flipped bit on
// the disk, a torn write). A replica that fails is reported damaged: the plan then
// counts it lost (plan.ts, `damaged`) and a copy from a good replica replaces it, the
// damaged file deleted once the entry no longer names it. Which replicas to read is
// pure (scrubTargets); reading them is the I/O around it (scrubReplicas).
import type { z } from 'zod';
import type { Bus } from '@strata/bus';
import { ErrorCode, isStrataError } from '@strata/errors';
import type { Logger } from '@strata/log';
import { EstoreOp, egReadReply, subjects, type CuratorScrubSummary } from '@strata/proto';
import { missingKey, type ClusterView, type EgroupRow } from './plan';

/** One replica to read: its extent group, disk and node, and the bytes the entry records. */
export interface ScrubTarget {
  egroup: bigint;
  disk: bigint;
  node: string;
  sizeBytes: number;
}

/** What a pass found damaged: the replica and the store's answer. */
export interface Damage {
  target: ScrubTarget;
  why: string;
}

/**
 * The replicas a pass reads, in extent-group order: those of entries with written bytes
 * (version above 0, size above 0), on disks of the configuration whose node is alive.
 * A replica on a dead or unknown node is the re-replication's business, not the scrub's.
 */
export function scrubTargets(rows: readonly EgroupRow[], view: ClusterView): ScrubTarget[] {
  const out: ScrubTarget[] = [];
  for (const row of rows) {
    if (row.entry.version === 0 || row.entry.sizeBytes === 0 || !view.policies.has(row.entry.vdisk)) continue;
    for (const r of row.entry.replicas) {
      const disk = view.disks.get(r.disk);
      if (disk === undefined || view.nodes.get(disk.node)?.liveness !== 'alive') continue;
      out.push({ egroup: row.egroup, disk: r.disk, node: disk.node, sizeBytes: row.entry.sizeBytes });
    }
  }
  return out;
}

export interface ScrubDeps {
  bus: Bus;
  log: Logger;
  timeoutMs: number;
  /** Bytes per read (the protocol's limit is 4 MiB). */
  chunkBytes: number;
  /** Waits until `bytes` may be read within the scrub's budget (rate.ts). */
  pace: (bytes: number) => Promise<void>;
  /** False stops the pass (the master was deposed or stopped). */
  going: () => boolean;
  /** Called after each replica: how many are done. */
  progress: (done: number) => void;
}

/** Reads every target whole; the damaged ones, and the summary. */
export async function scrubReplicas(d: ScrubDeps, targets: readonly ScrubTarget[], startedAtMs: number, nowMs: () => number): Promise<{ summary: CuratorScrubSummary; damaged: Damage[] }> {
  const damaged: Damage[] = [];
  let replicas = 0;
  let bytes = 0;
  let skipped = 0;
  for (const [i, t] of targets.entries()) {
    if (!d.going()) {
      skipped += targets.length - i;
      break;
    }
    const outcome = await readWhole(d, t);
    if (outcome.state === 'damaged') damaged.push({ target: t, why: outcome.why });
    if (outcome.state === 'skipped') skipped++;
    else {
      replicas++;
      bytes += t.sizeBytes;
    }
    d.progress(i + 1);
  }
  return { summary: { startedAtMs, durationMs: Math.max(0, nowMs() - startedAtMs), replicas, bytes, damaged: damaged.length, skipped }, damaged };
}

type Outcome = { state: 'good' } | { state: 'damaged'; why: string } | { state: 'skipped' };

/** One replica read in pieces of `chunkBytes`: CHECKSUM is damage; any other failure skips it (the next pass reads it). */
async function readWhole(d: ScrubDeps, t: ScrubTarget): Promise<Outcome> {
  for (let offset = 0; offset < t.sizeBytes; offset += d.chunkBytes) {
    const length = Math.min(d.chunkBytes, t.sizeBytes - offset);
    await d.pace(length);
    try {
      await request(d, t.node, EstoreOp.read, { disk: t.disk, egroup: t.egroup, offset, length }, egReadReply);
    } catch (err) {
      if (isStrataError(err, ErrorCode.CHECKSUM)) return { state: 'damaged', why: err.message };
      // NOT_FOUND: the extent group was deleted or moved since the map was read; a missing file is the full scan's.
      d.log.info({ err, egroup: String(t.egroup), disk: String(t.disk) }, 'scrub could not read a replica; the next pass reads it');
      return { state: 'skipped' };
    }
  }
  return { state: 'good' };
}

function request<S extends z.ZodType>(d: ScrubDeps, node: string, op: EstoreOp, body: unknown, schema: S): Promise<z.output<S>> {
  return d.bus.request(subjects.estore(node, op), body, schema, { timeoutMs: d.timeoutMs });
}

/** The damaged replicas as the plan takes them (missingKey to the failure), less those the entries no longer name. */
export function damagedForPlan(damaged: ReadonlyMap<string, string>, rows: readonly EgroupRow[]): Map<string, string> {
  const named = new Set(rows.flatMap((row) => row.entry.replicas.map((r) => missingKey(row.egroup, r.disk))));
  return new Map([...damaged].filter(([key]) => named.has(key)));
}
