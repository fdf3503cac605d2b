// The curator's decisions, pure: from the extent-group rows of the metadata, a view
// of the cluster (nodes and their liveness, disks and their usage, each vDisk's
// container policy) and the time, which replicas are lost, which extent groups are
// under-replicated, and which copy fixes each, in the order they should run. No I/O
// and no clock of its own: the master passes everything in (see master.ts).
import { assert } from '@strata/errors';
import { placeReplacement, type CandidateDisk } from '@strata/placement';
import type { EgroupEntry } from '@strata/proto';
import type { Leaver } from './drain';

export interface NodeView {
  name: string;
  liveness: 'alive' | 'dead' | 'unknown';
  /** Being drained (`strata node drain`): every replica on it moves to another node. */
  draining: boolean;
  /** Wall-clock time of the last liveness change, as the config leader recorded it. */
  changedAtMs: number;
}

/** The container policy of a vDisk's extent groups. */
export interface Policy {
  replicationFactor: number;
  tierOrder: readonly string[];
}

export interface ClusterView {
  nodes: ReadonlyMap<string, NodeView>;
  /** Every disk of the configuration, by id, with its node and usage (`draining` when it or its node is leaving). */
  disks: ReadonlyMap<bigint, CandidateDisk>;
  /** The policy of each vDisk of the configuration. */
  policies: ReadonlyMap<bigint, Policy>;
  /** The nodes and disks marked draining, with the disks each covers (drain.ts). */
  leavers?: readonly Leaver[];
}

/** One extent-group entry of md-egroup with the revision that a compare-and-set needs. */
export interface EgroupRow {
  egroup: bigint;
  revision: number;
  entry: EgroupEntry;
}

export interface PlanSettings {
  /** A replica on a dead node is lost only once the node has been dead this long (it may come back). */
  reprotectDelayMs: number;
}

export interface Replica {
  disk: bigint;
  node: string;
}

/**
 * One copy: `source`'s bytes to a new replica on `target`, which replaces `lost` in the
 * entry (or is added when absent). A move (`drop`) replaces a replica that still
 * counts, on a draining disk or node: its file is deleted once the entry no longer
 * names it, so the extent group never has fewer than RF copies (copy first, then drop).
 */
export interface CopyAction {
  egroup: bigint;
  /** The revision of the entry the plan read: the compare-and-set is on it. */
  revision: number;
  vdisk: bigint;
  source: Replica;
  lost?: Replica;
  target: Replica;
  /** The entry's size: what the copy moves (the source may hold a little more, see copier.ts). */
  bytes: number;
  /** Replicas that are not lost, before the copy. */
  left: number;
  /** The replaced replica is on a live node and is to be deleted after the entry drops it (a move off a draining disk). */
  drop: boolean;
  replicationFactor: number;
  /** Why: the lost replica and what made it lost. */
  reason: string;
  /** A rebalance move (rebalance.ts): a healthy replica moved off a disk fuller than the others. */
  rebalance?: true;
  /** A tiering move (tiering.ts): a cold replica moved down its container's tier order. */
  tiering?: true;
}

export interface Unfixable {
  egroup: bigint;
  why: string;
}

export interface Plan {
  /** In the order to run: fewest replicas left first, then most bytes. At most one per extent group. */
  actions: CopyAction[];
  /** Extent groups with fewer than RF replicas that are not lost. */
  underReplicated: bigint[];
  lostReplicas: number;
  unfixable: Unfixable[];
  /** When a replica on a dead node becomes lost (the earliest), if any waits: the next scan worth making. */
  nextLossAtMs?: number;
  /** Replicas on draining disks or nodes (still counted as copies), and their bytes: what a drain has left to move. */
  leaving: { replicas: number; bytes: number };
}

type Judged = { state: 'healthy' } | { state: 'leaving'; why: string } | { state: 'waiting'; lostAtMs?: number } | { state: 'lost'; why: string; damaged?: true };

/**
 * What one replica is worth now. Lost: its disk is gone from the configuration, a full
 * scan found its file missing, a scrub found it damaged, or its node has been dead past the delay. Healthy: on
 * an alive node (a copy may read it). Leaving: healthy, but on a draining disk or node:
 * it counts as a copy and may be read, and is to move. Waiting: on a node dead for less than the delay,
 * or not judged yet; it still counts as a copy, but is no source.
 */
export function judgeReplica(r: Replica, egroup: bigint, view: ClusterView, nowMs: number, settings: PlanSettings, missing: ReadonlySet<string>, damaged: ReadonlyMap<string, string> = new Map()): Judged {
  const disk = view.disks.get(r.disk);
  if (disk === undefined) return { state: 'lost', why: `disk ${r.disk} (${r.node}) is no longer in the configuration` };
  if (missing.has(missingKey(egroup, r.disk))) return { state: 'lost', why: `disk ${r.disk} (${disk.node}) has no replica file` };
  const failed = damaged.get(missingKey(egroup, r.disk));
  if (failed !== undefined) return { state: 'lost', damaged: true, why: `disk ${r.disk} (${disk.node}): the replica failed its checksum (scrub: ${failed})` };
  const node = view.nodes.get(disk.node);
  if (node === undefined) return { state: 'lost', why: `node ${disk.node} of disk ${r.disk} is no longer in the configuration` };
  if (node.liveness === 'alive') {
    if (node.draining) return { state: 'leaving', why: `disk ${r.disk}: node ${node.name} is draining` };
    if (disk.draining === true) return { state: 'leaving', why: `disk ${r.disk} (${node.name}) is draining` };
    return { state: 'healthy' };
  }
  if (node.liveness === 'dead') {
    // Clock assumption: `changedAtMs` is the config leader's wall clock, `nowMs` the
    // master's; they are taken to agree to well within the delay (seconds against a
    // minute). A master whose clock runs ahead copies a little early, never wrongly:
    // the node is dead either way.
    const deadForMs = nowMs - node.changedAtMs;
    if (deadForMs >= settings.reprotectDelayMs) return { state: 'lost', why: `disk ${r.disk}: node ${node.name} dead for ${Math.round(deadForMs / 1000)} s (re-protection delay ${settings.reprotectDelayMs} ms)` };
    return { state: 'waiting', lostAtMs: node.changedAtMs + settings.reprotectDelayMs };
  }
  return { state: 'waiting' };
}

/** The key of a replica found missing by a full scan, or damaged by a scrub. */
export function missingKey(egroup: bigint, disk: bigint): string {
  return `${egroup}/${disk}`;
}

interface Need {
  row: EgroupRow;
  policy: Policy;
  source: Replica;
  lost?: { replica: Replica; why: string };
  left: number;
  drop: boolean;
  /** The replaced replica is leaving (a drain): its node may take the copy. */
  leaving: boolean;
}

/** `damaged`: the replicas a scrub found failing their checksum (missingKey), with the failure. */
export function plan(rows: readonly EgroupRow[], view: ClusterView, nowMs: number, settings: PlanSettings, missing: ReadonlySet<string> = new Set(), damaged: ReadonlyMap<string, string> = new Map()): Plan {
  const needs: Need[] = [];
  const underReplicated: bigint[] = [];
  const unfixable: Unfixable[] = [];
  let lostReplicas = 0;
  let nextLossAtMs: number | undefined;
  const leaving = { replicas: 0, bytes: 0 };
  for (const row of rows) {
    const policy = view.policies.get(row.entry.vdisk);
    // A vDisk gone from the configuration: its extent groups are garbage, not something to protect.
    if (policy === undefined) continue;
    const judged = row.entry.replicas.map((r) => ({ replica: r, judged: judgeReplica(r, row.egroup, view, nowMs, settings, missing, damaged) }));
    const lost = judged.filter((j) => j.judged.state === 'lost');
    lostReplicas += lost.length;
    for (const j of judged) if (j.judged.state === 'waiting' && j.judged.lostAtMs !== undefined) nextLossAtMs = Math.min(nextLossAtMs ?? Infinity, j.judged.lostAtMs);
    const moving = judged.filter((j) => j.judged.state === 'leaving');
    leaving.replicas += moving.length;
    leaving.bytes += moving.length * row.entry.sizeBytes;
    const left = judged.length - lost.length;
    // Short of RF: replace a lost replica. At RF: move a leaving one (it still counts, so the extent group never drops below RF).
    const replaced = left < policy.replicationFactor ? lost[0] : left === judged.length ? moving[0] : undefined;
    if (left < policy.replicationFactor) underReplicated.push(row.egroup);
    else if (replaced === undefined) continue;
    // A replica that stays is the better source; a leaving one serves when it is the only copy.
    const source = (judged.find((j) => j.judged.state === 'healthy') ?? moving[0])?.replica;
    if (source === undefined) {
      unfixable.push({ egroup: row.egroup, why: `egroup ${row.egroup}: no replica on a live node to copy from (replicas on ${row.entry.replicas.map((r) => r.node).join(', ')})` });
      continue;
    }
    // A leaving replica, or a damaged one (its node is up): deleted once the entry no longer names it.
    const drop = replaced !== undefined && (replaced.judged.state === 'leaving' || (replaced.judged.state === 'lost' && replaced.judged.damaged === true));
    needs.push({ row, policy, source, left, drop, leaving: replaced?.judged.state === 'leaving', ...(replaced === undefined ? {} : { lost: { replica: replaced.replica, why: (replaced.judged as { why: string }).why } }) });
  }
  needs.sort((a, b) => a.left - b.left || b.row.entry.sizeBytes - a.row.entry.sizeBytes || (a.row.egroup < b.row.egroup ? -1 : a.row.egroup > b.row.egroup ? 1 : 0));

  // Targets are chosen in that order, each copy's bytes counted on its disk for the next.
  const used = new Map<bigint, number>();
  const disks = (): CandidateDisk[] => [...view.disks.values()].map((d) => ({ ...d, usedBytes: d.usedBytes + (used.get(d.id) ?? 0) }));
  const liveNodes = new Set([...view.nodes.values()].filter((n) => n.liveness === 'alive').map((n) => n.name));
  const actions: CopyAction[] = [];
  for (const need of needs) {
    const { row } = need;
    // A replica whose disk was removed from the configuration no longer occupies its
    // node: another disk of that node may replace it (on two nodes with RF 2, no other
    // node could). Any other lost replica keeps its node occupied: its disk may still be
    // written by the vDisk's owner, so the copy goes elsewhere. A leaving replica frees
    // its node too: a disk drain may move a replica to another disk of the same node.
    const removed = need.lost !== undefined && (need.leaving || !view.disks.has(need.lost.replica.disk)) ? need.lost.replica.disk : undefined;
    const kept = row.entry.replicas.filter((r) => r.disk !== removed);
    const occupiedNodes = new Set(kept.map((r) => view.disks.get(r.disk)?.node ?? r.node));
    const placed = placeReplacement({ disks: disks(), liveNodes, occupiedNodes, tierOrder: need.policy.tierOrder, needBytes: Math.max(row.entry.sizeBytes, 1) });
    if (!placed.ok) {
      unfixable.push({ egroup: row.egroup, why: `egroup ${row.egroup}: ${placed.why}` });
      continue;
    }
    used.set(placed.disk.id, (used.get(placed.disk.id) ?? 0) + row.entry.sizeBytes);
    actions.push({
      egroup: row.egroup,
      revision: row.revision,
      vdisk: row.entry.vdisk,
      source: need.source,
      ...(need.lost === undefined ? {} : { lost: need.lost.replica }),
      target: { disk: placed.disk.id, node: placed.disk.node },
      bytes: row.entry.sizeBytes,
      left: need.left,
      drop: need.drop,
      replicationFactor: need.policy.replicationFactor,
      reason: need.lost?.why ?? `${need.left} of ${need.policy.replicationFactor} replicas`,
    });
  }
  return { actions, underReplicated, lostReplicas, unfixable, leaving, ...(nextLossAtMs === undefined ? {} : { nextLossAtMs }) };
}

/**
 * The entry after `action`: the new replica in the lost one's place (or added), or why
 * the copy no longer fits the entry (read again after a CONFLICT): the lost replica is
 * gone, or the target's node holds a replica already. Never a replica twice on a node.
 */
export function withCopy(entry: EgroupEntry, action: CopyAction): { ok: true; entry: EgroupEntry } | { ok: false; why: string } {
  const others = entry.replicas.filter((r) => r.disk !== action.lost?.disk);
  if (action.target.disk === action.lost?.disk || others.some((r) => r.node === action.target.node || r.disk === action.target.disk)) return { ok: false, why: `node ${action.target.node} holds a replica of egroup ${action.egroup} already` };
  if (action.lost === undefined) return { ok: true, entry: { ...entry, replicas: [...entry.replicas, action.target] } };
  const at = entry.replicas.findIndex((r) => r.disk === action.lost!.disk);
  if (at < 0) return { ok: false, why: `the replica on disk ${action.lost.disk} is no longer in egroup ${action.egroup}` };
  const replicas = entry.replicas.map((r, i) => (i === at ? action.target : r));
  assert(new Set(replicas.map((r) => r.node)).size === replicas.length || new Set(entry.replicas.map((r) => r.node)).size !== entry.replicas.length, 'a copy never puts two replicas on one node');
  return { ok: true, entry: { ...entry, replicas } };
}

/**
 * The entry with `action`'s copy taken out again (a roll-back, see copier.ts): the
 * replaced replica back in the target's place, or the target removed when the copy
 * added it or the replaced one is in the entry already.
 */
export function withoutCopy(entry: EgroupEntry, action: CopyAction): EgroupEntry {
  const { lost } = action;
  const back = lost !== undefined && !entry.replicas.some((r) => r.disk === lost.disk);
  const replicas = entry.replicas.flatMap((r) => (r.disk !== action.target.disk ? [r] : back ? [lost] : []));
  return { ...entry, replicas };
}
