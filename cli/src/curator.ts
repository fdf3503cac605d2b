// What the curator commands ask and print: the curator master's status (`strata
// curator status`), a scan on demand (`strata curator scan [--full]`) and a scrub pass
// (`strata curator scrub`).
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { CuratorOp, curatorScanReply, describeScanMap, curatorScrubReply, curatorStatusReply, subjects, type CuratorScanSummary, type CuratorScrubSummary, type CuratorRebalance, type CuratorStatusReply, type CuratorTiering } from '@strata/proto';
import { formatSize } from './units';

const STATUS_TIMEOUT_MS = 10_000;
/** A scan reads every extent-group entry: on a large map that takes a while. */
const SCAN_TIMEOUT_MS = 120_000;
/** A scrub pass reads every replica at STRATA_SCRUB_BYTES_PER_S: on a large cluster that is hours; the command waits an hour at most. */
const SCRUB_TIMEOUT_MS = 3_600_000;

/** Any request to the master; no responders becomes a message that says what is missing. */
async function askMaster<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isStrataError(err, ErrorCode.UNAVAILABLE) && err.hint === 'no-responders') {
      throw new StrataError(ErrorCode.UNAVAILABLE, 'no curator master answers: no curator holds curator.master (is "strata up" running its curators?)', { cause: err });
    }
    throw err;
  }
}

export function curatorStatus(bus: Bus): Promise<CuratorStatusReply> {
  return askMaster(() => bus.request(subjects.curator(CuratorOp.status), {}, curatorStatusReply, { timeoutMs: STATUS_TIMEOUT_MS, retry: true }));
}

/** How often a long request to the master checks that the master it asked still is. */
const MASTER_CHECK_MS = 2_000;

/** A scan on demand; a master that dies during it ends the wait at once (whileMasterHolds). */
export async function curatorScan(bus: Bus, full: boolean): Promise<CuratorScanSummary> {
  const asked = await curatorStatus(bus);
  const scan = askMaster(() => bus.request(subjects.curator(CuratorOp.scan), { full }, curatorScanReply, { timeoutMs: SCAN_TIMEOUT_MS }));
  return whileMasterHolds(scan, () => curatorStatus(bus), asked, 'it resumes the scan from its record (strata curator status shows it running)');
}

/** A scrub pass on demand; a master that dies during it ends the wait at once (whileMasterHolds). */
export async function curatorScrub(bus: Bus): Promise<CuratorScrubSummary> {
  const asked = await curatorStatus(bus);
  const scrub = askMaster(() => bus.request(subjects.curator(CuratorOp.scrub), {}, curatorScrubReply, { timeoutMs: SCRUB_TIMEOUT_MS }));
  return whileMasterHolds(scrub, () => curatorStatus(bus), asked, 'the pass ended with its master: strata curator scrub starts a whole one');
}

type MasterTerm = Pick<CuratorStatusReply, 'master' | 'curatorEpoch'>;

/**
 * Waits for `request`, which the master answers when its work ends, and meanwhile asks
 * every `checkMs` who the master is. A master that dies never answers: the wait then
 * ends as soon as another master is elected, with an error that says so (`next` says
 * what becomes of the work), instead of at the request's timeout.
 */
export async function whileMasterHolds<T>(request: Promise<T>, current: () => Promise<MasterTerm>, asked: MasterTerm, next: string, checkMs = MASTER_CHECK_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const moved = new Promise<never>((_, reject) => {
    const check = async (): Promise<void> => {
      // No answer (a master being elected) is no news: asked again at the next check.
      const now = await current().catch(() => undefined);
      if (settled) return;
      if (now !== undefined && (now.master !== asked.master || now.curatorEpoch !== asked.curatorEpoch)) {
        reject(new StrataError(ErrorCode.UNAVAILABLE, `curator master ${asked.master} (epoch ${asked.curatorEpoch}) went away before it answered; ${now.master} is the master now (epoch ${now.curatorEpoch}): ${next}`));
        return;
      }
      timer = setTimeout(() => void check(), checkMs);
    };
    timer = setTimeout(() => void check(), checkMs);
  });
  try {
    return await Promise.race([request, moved]);
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}

const when = (ms: number): string => new Date(ms).toISOString();

export function formatScrub(s: CuratorScrubSummary): string {
  return `scrub at ${when(s.startedAtMs)}, ${formatDuration(s.durationMs)}: ${s.replicas} replicas (${formatSize(s.bytes)}) read and verified, ${s.damaged} damaged, ${s.skipped} skipped`;
}

/** `3 s`, `2 min 5 s`, `1 h 4 min`: a duration for people. */
export function formatDuration(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 === 0 ? '' : ` ${s % 60} s`}`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function formatScan(scan: CuratorScanSummary): string {
  return `scan ${scan.scan}${scan.full ? ' (full)' : ''} at ${when(scan.startedAtMs)}, ${scan.durationMs} ms: ${scan.egroups} extent groups, ${scan.underReplicated} under-replicated, ${scan.lostReplicas} replicas lost, ${scan.copiesQueued} copies queued, ${scan.unfixable} unfixable`;
}

/** `map: complete scan 1735689600000: 8 map tasks (n2 4, n3 4), ...`: how a scan was mapped. */
export function formatScanMap(scan: CuratorScanSummary): string {
  return scan.kind === undefined ? 'map: not recorded (a scan from before scans were map tasks)' : `map: ${describeScanMap(scan)}`;
}

/** `started at ..., complete scan 17...: 3 of 8 map tasks done (n2: 2 done, 1 mapping; n3: 1 done, 1 mapping)`. */
export function formatRunning(r: NonNullable<CuratorStatusReply['running']>): string {
  const started = `started at ${when(r.startedAtMs)}${r.full ? ' (full)' : ''}`;
  if (r.kind === undefined) return started;
  const workers = (r.workers ?? []).map((w) => `${w.node}: ${w.done} done, ${w.mapping} mapping`).join('; ');
  return `${started}, ${r.kind} scan ${r.id ?? r.startedAtMs}: ${r.tasksDone ?? 0} of ${r.tasksTotal ?? 0} map tasks done${workers === '' ? '' : ` (${workers})`}`;
}

/** `garbage: 3 replicas, 12 MiB reclaimed (last scan: ...)`. */
export function formatGarbage(p: CuratorStatusReply['progress']): string {
  const g = p.lastGarbage;
  const last =
    g === undefined
      ? 'none yet'
      : `at ${when(g.atMs)}, ${g.listed} replicas listed, ${g.deleted} deleted (${formatSize(g.bytes)}), ${g.young} younger than the grace period, ${g.skippedDisks} disks skipped${g.enabled ? '' : ', STRATA_GC=off: nothing deleted'}`;
  return `garbage: ${p.garbageDeleted ?? 0} replicas, ${formatSize(p.garbageBytes ?? 0)} reclaimed (last scan: ${last})`;
}

/** `extent groups: 5 reclaimed (20 MiB), 2 compacted (their live blocks moved by their owners' drains)`. */
export function formatReclaim(p: CuratorStatusReply['progress']): string {
  return `extent groups: ${p.egroupsReclaimed ?? 0} reclaimed (${formatSize(p.egroupsReclaimedBytes ?? 0)}) as nothing live names them, ${p.egroupsCompacted ?? 0} compacted (their live blocks moved by their owners' drains)`;
}

/** `rebalance: on, threshold 10 points; disks 3.2 points apart (...)`. */
export function formatRebalance(r: CuratorRebalance): string {
  const state = r.enabled ? 'on' : 'off (STRATA_REBALANCE=off or STRATA_REBUILD=off: nothing moves)';
  const pct = (permille: number): number => permille / 10;
  const spread =
    r.spreadPermille === undefined || r.fullest === undefined || r.emptiest === undefined
      ? 'fewer than two disks take part'
      : `disks ${pct(r.spreadPermille)} points apart (fullest disk ${r.fullest.disk} on ${r.fullest.node} ${pct(r.fullest.usedPermille)}%, emptiest disk ${r.emptiest.disk} on ${r.emptiest.node} ${pct(r.emptiest.usedPermille)}%)`;
  return `rebalance: ${state}, threshold ${pct(r.thresholdPermille)} points; ${spread}; ${r.moving} moves queued or running, ${r.movesDone} done`;
}

/** `tiering: on, threshold 80%, cold after 1h; tiers ssd 83.2%, hdd 4.1%; 3 moves queued or running, 12 done`. */
export function formatTiering(t: CuratorTiering): string {
  const state = t.enabled ? 'on' : 'off (STRATA_TIERING=off or STRATA_REBUILD=off: nothing moves)';
  const tiers = t.tiers.length === 0 ? 'no tier use measured yet (none before the first scan, or no disk)' : `tiers ${t.tiers.map((x) => `${x.tier} ${x.usedPermille / 10}%`).join(', ')}`;
  return `tiering: ${state}, threshold ${t.thresholdPermille / 10}%, cold after ${formatDuration(t.coldAfterMs)}; ${tiers}; ${t.moving} moves queued or running, ${t.movesDone} done`;
}

export function formatCuratorStatus(s: CuratorStatusReply): string {
  const p = s.progress;
  const lines = [
    `master: ${s.master} (epoch ${s.curatorEpoch})`,
    `rebuild: ${p.rebuild ? 'on' : 'off (STRATA_REBUILD=off: scans only, nothing is copied)'}`,
    `last scan: ${p.lastScan === undefined ? 'none yet' : formatScan(p.lastScan)}`,
    ...(p.lastScan === undefined ? [] : [`last scan ${formatScanMap(p.lastScan)}`]),
    `running scan: ${s.running === undefined ? 'none' : formatRunning(s.running)}`,
    `under-replicated extent groups: ${p.underReplicated}`,
    `rebuild progress: ${formatSize(p.bytesCopied)} copied (${p.copiesDone} copies, ${p.copiesFailed} failed), ${formatSize(p.bytesToCopy)} to copy, ${s.copiesInFlight} in flight, ${formatSize(p.bytesPerSec)}/s`,
    `estimated time to finish: ${p.bytesToCopy === 0 ? 'nothing to copy' : p.etaMs === undefined ? 'unknown (no copy finished recently)' : formatDuration(p.etaMs)}`,
    formatGarbage(p),
    formatReclaim(p),
    `scrub: ${p.scrubbing === undefined ? 'not running' : `running since ${when(p.scrubbing.startedAtMs)}, ${p.scrubbing.replicasDone} of ${p.scrubbing.replicasTotal} replicas read`}; last pass: ${p.lastScrub === undefined ? 'none yet' : formatScrub(p.lastScrub)}`,
    ...(p.rebalance === undefined ? [] : [formatRebalance(p.rebalance)]),
    ...(p.tiering === undefined ? [] : [formatTiering(p.tiering)]),
    ...(p.draining ?? []).map((d) => `draining ${d.kind} ${d.name}: ${d.replicas === 0 ? 'drained, it holds no replica' : `${d.replicas} replica${d.replicas === 1 ? '' : 's'} (${formatSize(d.bytes)}) left`}`),
  ];
  return lines.join('\n');
}
