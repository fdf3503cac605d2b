// The curator master: scans on a schedule and on request, sweeps the vDisks being
// deleted first (@strata/sweep: their space freed, then their config objects removed),
// plans (plan.ts), runs the
// copies (copier.ts) a bounded number at a time within a byte budget, collects the
// replica files no entry names (gc.ts, after the copies are queued), and keeps its
// progress in `curator.progress` (own) and in events. The nodes and disks being
// drained are the plan's too (moves, drain.ts): their progress is counted here, and
// each one's end announced once (`curator.drain.done`). Scrub passes (scrub.ts) run on
// their own schedule and on request, at their own byte budget; the replicas they find
// damaged go to the plan, which replaces them like lost ones. When the plan has
// nothing to copy and nothing is queued, a rebalance (rebalance.ts) may move replicas
// from the fullest disks to the emptiest, through the same copies. A scan's entries are
// read by map tasks on the curators (scans.ts, mapreduce.ts): full, complete or
// partial (only what changed since the last scan). It runs only while its process
// holds the lease `curator.master` (actor.ts); every decision is the plan's, this
// file does the I/O around it.
import { performance } from 'node:perf_hooks';
import type { Bus, Service } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import type { EventLog } from '@strata/events';
import type { TypedBucket } from '@strata/kv';
import type { Logger } from '@strata/log';
import type { MdMaps } from '@strata/md-client';
import { CompactAsked, UnnamedSince, describeSwept, referencesOf, sweepDeleted, sweepPortsFor, type SweepPorts, type SweepResult } from '@strata/sweep';
import {
  CuratorOp,
  EventType,
  curatorScanRequest,
  curatorScrubRequest,
  describeScanMap,
  curatorStatusRequest,
  keys,
  subjects,
  type ClusterEvent,
  type CuratorMapReply,
  type CuratorMapRequest,
  type curatorMapOutput,
  type curatorScanRecord,
  type CuratorGarbageSummary,
  type CuratorProgress,
  type CuratorRebalance,
  type CuratorScanSummary,
  type CuratorScrubSummary,
  type CuratorStatusReply,
  type CuratorTiering,
  type curatorProgress,
  type diskUsage,
  type egroupEntry,
  type vdiskOwnership,
  type vdiskRow,
} from '@strata/proto';
import { Copier, pause } from './copier';
import { afterMove, countDrains, drainKey, type DrainCount } from './drain';
import { collectGarbage } from './gc';
import { damagedForPlan, scrubReplicas, scrubTargets } from './scrub';
import { forEachLimited } from './map';
import { missingKey, plan, type ClusterView, type CopyAction, type EgroupRow } from './plan';
import { ByteBudget, RateMeter, etaMs } from './rate';
import { ScanTasks, type ScanInFlight } from './scans';
import { planRebalance, type Spread } from './rebalance';
import { observeWrites, planTiering, type LastWrites, type TierUse } from './tiering';
import type { CuratorSettings } from './settings';
import { clusterView, withKeptWriters, writersGone } from './view';

/** Reads of md-egroup entries (and replica stats of a full scan) in flight at once. */
const SCAN_READS_IN_FLIGHT = 16;
/** Copies waiting at most: a scan that finds more queues the most urgent and finds the rest next time. */
const QUEUE_MAX = 10_000;
/** The progress record is rewritten at most this often while copies run. */
const PROGRESS_WRITE_MS = 1_000;
/** How long a stopping master waits for its copies in flight. */
const STOP_WAIT_MS = 5_000;

export interface MasterDeps {
  bus: Bus;
  log: Logger;
  settings: CuratorSettings;
  me: string;
  epoch: number;
  leading: () => boolean;
  config: ConfigClient;
  md: MdMaps;
  egroups: TypedBucket<typeof egroupEntry>;
  /** md-vdisk, read (only) for the references of extent groups whose writer is gone. */
  vdiskRows: TypedBucket<typeof vdiskRow>;
  usage: TypedBucket<typeof diskUsage>;
  own: TypedBucket<typeof vdiskOwnership>;
  progress: TypedBucket<typeof curatorProgress>;
  /** The scan running (`curator.scan`) and its map outputs (`curator.map.<task>.<page>`), in `own`. */
  scans: TypedBucket<typeof curatorScanRecord>;
  outputs: TypedBucket<typeof curatorMapOutput>;
  /** One page of a map task, mapped by this process (map.ts): for the tasks the master maps itself. */
  mapLocal: (req: CuratorMapRequest) => Promise<CuratorMapReply>;
  events: EventLog;
}

interface RunningScan {
  startedAtMs: number;
  full: boolean;
  done: Promise<CuratorScanSummary>;
  /** Its record and map tasks, once they are made. */
  tasks?: ScanInFlight;
}

/** The scan that starts when the running one ends, shared by every request that arrived meanwhile. */
interface FollowingScan {
  full: boolean;
  done: Promise<CuratorScanSummary>;
}

export class CuratorMaster {
  private readonly services: Service[] = [];
  private readonly copier: Copier;
  private readonly budget: ByteBudget;
  private readonly meter = new RateMeter();
  /** Copies waiting, most urgent first; `queued` has their extent groups and those in flight. */
  private queue: CopyAction[] = [];
  private readonly queued = new Set<bigint>();
  private readonly inFlight = new Map<bigint, Promise<void>>();
  private inFlightBytes = 0;
  /** Extent groups under-replicated at the last scan, less those fixed since. */
  private under = new Set<bigint>();
  /** The nodes and disks being drained: what each still holds. */
  private drains: DrainCount[] = [];
  /** Drains whose end was announced (drainKey), so each is announced once. */
  private readonly announced = new Set<string>();
  /** Replicas the scrub found failing their checksum (missingKey), with the failure, until the entry no longer names them. */
  private damaged = new Map<string, string>();
  private readonly scrubBudget: ByteBudget;
  private scrubbing: { startedAtMs: number; done: number; total: number; result: Promise<CuratorScrubSummary> } | undefined;
  private lastScrub: CuratorScrubSummary | undefined;
  private scrubTimer: NodeJS.Timeout | undefined;
  /** The rebalance: the spread at the last scan, the moves done, and those since the disks were last balanced. */
  private spread: Spread | undefined;
  private rebalanceMoves = { done: 0, sinceBalanced: 0 };
  private rebalanceInFlight = 0;
  /** Tiering: when each extent group was last written as far as this master saw, the tiers at the last scan, the moves done. */
  private lastWrites: LastWrites = new Map();
  private tiers: TierUse[] = [];
  private tierMovesDone = 0;
  private tierInFlight = 0;
  /** What the last scan would copy with rebuild off. */
  private plannedBytes = 0;
  private view: ClusterView | undefined;
  /** The sweep's view of NATS, made at the first scan. */
  private sweepPorts: Promise<SweepPorts> | undefined;
  /** Since when each extent group of a live vDisk has been seen unnamed (@strata/sweep unnamed.ts); empty after a failover. */
  private readonly unnamed = new UnnamedSince();
  /** When each extent group was last given to its owner to compact. */
  private readonly compactAsked = new CompactAsked();
  private running: RunningScan | undefined;
  private following: FollowingScan | undefined;
  private scans = 0;
  /** The map tasks of the scans, their records, and the last scan's rows (scans.ts). */
  private readonly scanTasks: ScanTasks;
  /** When the last full scan started (for the schedule of full scans). */
  private lastFullAtMs = Date.now();
  private counts = { bytesCopied: 0, copiesDone: 0, copiesFailed: 0 };
  private lastScan: CuratorScanSummary | undefined;
  /** Replicas the garbage collection deleted, and their bytes, since the progress record was created. */
  private garbage = { garbageDeleted: 0, garbageBytes: 0 };
  /** Extent groups the sweep reclaimed (and their bytes), and those given to their owners to compact, since the progress record was created. */
  private reclaim = { egroupsReclaimed: 0, egroupsReclaimedBytes: 0, egroupsCompacted: 0 };
  private lastGarbage: CuratorGarbageSummary | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private nextScanAtMs = Infinity;
  private progressTimer: NodeJS.Timeout | undefined;
  private progressWriting: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly d: MasterDeps) {
    this.budget = new ByteBudget(d.settings.curatorCopyBytesPerSec);
    this.scrubBudget = new ByteBudget(d.settings.scrubBytesPerS);
    this.copier = new Copier({
      bus: d.bus,
      md: d.md,
      own: d.own,
      log: d.log,
      chunkBytes: d.settings.curatorCopyChunkBytes,
      timeoutMs: d.settings.curatorRequestTimeoutMs,
      pace: (bytes) => pause(this.budget.take(bytes, performance.now())),
      leading: d.leading,
      replan: (row) => Promise.resolve(this.replan(row)),
    });
    this.scanTasks = new ScanTasks({
      bus: d.bus,
      log: d.log,
      settings: d.settings,
      me: d.me,
      epoch: d.epoch,
      leading: d.leading,
      stopped: () => this.stopped,
      egroups: d.egroups,
      scans: d.scans,
      outputs: d.outputs,
      mapLocal: d.mapLocal,
      emit: (fields, message) => this.emit(fields, message),
    });
  }

  async start(): Promise<void> {
    const previous = (await this.d.progress.get(keys.curatorProgress))?.value;
    if (previous !== undefined) this.counts = { bytesCopied: previous.bytesCopied, copiesDone: previous.copiesDone, copiesFailed: previous.copiesFailed };
    if (previous !== undefined) this.garbage = { garbageDeleted: previous.garbageDeleted ?? 0, garbageBytes: previous.garbageBytes ?? 0 };
    if (previous !== undefined) {
      this.reclaim = { egroupsReclaimed: previous.egroupsReclaimed ?? 0, egroupsReclaimedBytes: previous.egroupsReclaimedBytes ?? 0, egroupsCompacted: previous.egroupsCompacted ?? 0 };
    }
    if (previous?.lastFullScanAtMs !== undefined) this.lastFullAtMs = previous.lastFullScanAtMs;
    await this.scanTasks.findLeft();
    const { bus } = this.d;
    this.services.push(await bus.serve(subjects.curator(CuratorOp.status), curatorStatusRequest, () => this.status()));
    this.services.push(await bus.serve(subjects.curator(CuratorOp.scan), curatorScanRequest, (r) => this.scan(r.full, 'operator')));
    this.services.push(await bus.serve(subjects.curator(CuratorOp.scrub), curatorScrubRequest, () => this.scrub('operator')));
    const why =
      previous === undefined
        ? 'no curator master before it'
        : previous.master === this.d.me
          ? `its own term at epoch ${previous.curatorEpoch} ended`
          : `the lease of ${previous.master} (epoch ${previous.curatorEpoch}) lapsed or was released`;
    await this.emit({ type: EventType.curatorMasterElected, name: this.d.me, reason: why }, `${this.d.me} is the curator master at epoch ${this.d.epoch}: ${why}`);
    this.scheduleScan(0);
    this.scheduleScrub();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.scanTimer);
    clearTimeout(this.progressTimer);
    clearTimeout(this.scrubTimer);
    await Promise.all(this.services.map((s) => s.stop()));
    const copies = Promise.allSettled([...this.inFlight.values()]);
    await Promise.race([copies, pause(STOP_WAIT_MS)]);
    await this.running?.done.catch(() => undefined);
    await this.scrubbing?.result.catch(() => undefined);
  }

  /**
   * A scrub pass: now, or the one running. Its reply comes once every replica was read;
   * damaged ones found are handed to a scan, which queues their repairs.
   */
  scrub(reason: string): Promise<CuratorScrubSummary> {
    if (this.scrubbing !== undefined) return this.scrubbing.result;
    const startedAtMs = Date.now();
    const scrubbing = { startedAtMs, done: 0, total: 0 } as NonNullable<CuratorMaster['scrubbing']>;
    scrubbing.result = this.scrubNow(scrubbing, reason).finally(() => {
      this.scrubbing = undefined;
      this.scheduleScrub();
    });
    this.scrubbing = scrubbing;
    return scrubbing.result;
  }

  private scheduleScrub(): void {
    if (this.stopped) return;
    clearTimeout(this.scrubTimer);
    this.scrubTimer = setTimeout(() => {
      this.scrub('scheduled').catch((err: unknown) => this.d.log.warn({ err }, 'scrub failed; the next pass tries again'));
    }, this.d.settings.scrubIntervalMs);
  }

  private async scrubNow(scrubbing: NonNullable<CuratorMaster['scrubbing']>, reason: string): Promise<CuratorScrubSummary> {
    const rows = await this.readRows();
    const targets = scrubTargets(rows, await this.keptWriters(await this.readView(), rows));
    scrubbing.total = targets.length;
    const { summary, damaged } = await scrubReplicas(
      {
        bus: this.d.bus,
        log: this.d.log,
        timeoutMs: this.d.settings.curatorRequestTimeoutMs,
        chunkBytes: this.d.settings.curatorCopyChunkBytes,
        pace: (bytes) => pause(this.scrubBudget.take(bytes, performance.now())),
        going: () => this.d.leading() && !this.stopped,
        progress: (done) => {
          scrubbing.done = done;
          this.progressSoon();
        },
      },
      targets,
      scrubbing.startedAtMs,
      () => Date.now(),
    );
    for (const { target: t, why } of damaged) {
      this.damaged.set(missingKey(t.egroup, t.disk), why);
      await this.emit(
        { type: EventType.curatorScrubDamaged, kind: 'egroup', id: t.egroup, fromDisk: t.disk, reason: why },
        `scrub: egroup ${t.egroup} on disk ${t.disk} (${t.node}) fails its checksum; a copy from a good replica replaces it`,
      );
    }
    this.lastScrub = summary;
    await this.emit(
      { type: EventType.curatorScrubDone, durationMs: summary.durationMs, reason },
      `scrub: ${summary.replicas} replicas (${summary.bytes} bytes) read and verified, ${summary.damaged} damaged, ${summary.skipped} skipped, in ${summary.durationMs} ms`,
    );
    await this.writeProgress();
    if (damaged.length > 0) await this.scan(false, 'scrub found damaged replicas');
    return summary;
  }

  /**
   * A scan that starts after this call: now, or right after the one running. Joining
   * a scan already under way could miss what changed since it started (a vDisk
   * removed just now, say); every call that arrives meanwhile shares the next one,
   * which is full if any of them asked for a full scan.
   */
  scan(full: boolean, reason: string): Promise<CuratorScanSummary> {
    if (this.running === undefined) return this.startScan(full, reason);
    if (this.following !== undefined) {
      this.following.full ||= full;
      return this.following.done;
    }
    const following = { full } as FollowingScan;
    // The running scan's `done` clears `running` before this runs (its handler came first).
    following.done = this.running.done
      .catch(() => undefined)
      .then(() => {
        this.following = undefined;
        return this.startScan(following.full, reason);
      });
    this.following = following;
    return following.done;
  }

  private startScan(full: boolean, reason: string): Promise<CuratorScanSummary> {
    const startedAtMs = Date.now();
    const running = { startedAtMs, full: full || this.scanTasks.resumesFull() } as RunningScan;
    const done = this.scanNow(full, reason, running).finally(() => {
      if (this.running?.done === done) this.running = undefined;
    });
    running.done = done;
    this.running = running;
    return done;
  }

  private scheduleScan(delayMs: number): void {
    if (this.stopped) return;
    const atMs = performance.now() + delayMs;
    if (atMs >= this.nextScanAtMs) return;
    clearTimeout(this.scanTimer);
    this.nextScanAtMs = atMs;
    this.scanTimer = setTimeout(() => {
      this.nextScanAtMs = Infinity;
      this.scan(false, 'scheduled')
        .catch((err: unknown) => this.d.log.warn({ err }, 'curator scan failed; the next one tries again'))
        .finally(() => this.scheduleScan(this.d.settings.curatorScanIntervalMs));
    }, delayMs);
  }

  private async scanNow(full: boolean, reason: string, running: RunningScan): Promise<CuratorScanSummary> {
    const t0 = performance.now();
    const { startedAtMs } = running;
    // Deleted vDisks first: their extent groups are freed, not re-replicated.
    const swept = await this.sweep();
    const seen = await this.readView();
    const mapped = await this.scanTasks.map({
      full,
      fullDue: Date.now() - this.lastFullAtMs >= this.d.settings.curatorFullScanIntervalMs,
      reason,
      startedAtMs,
      view: seen,
      started: (tasks) => (running.tasks = tasks),
    });
    const { rows, missing, record } = mapped;
    const view = await this.keptWriters(seen, rows);
    full = record.kind === 'full';
    this.damaged = damagedForPlan(this.damaged, rows);
    const p = plan(rows, view, Date.now(), { reprotectDelayMs: this.d.settings.reprotectDelayMs }, missing, this.damaged);
    this.view = view;
    this.under = new Set(p.underReplicated);
    this.plannedBytes = p.actions.reduce((n, a) => n + a.bytes, 0);
    let copiesQueued = 0;
    if (this.d.settings.rebuild === 'on') {
      for (const a of p.actions) {
        if (this.queued.has(a.egroup) || this.queue.length >= QUEUE_MAX) continue;
        this.queue.push(a);
        this.queued.add(a.egroup);
        copiesQueued++;
      }
      // Most urgent first across what was queued before and now.
      this.queue.sort((a, b) => a.left - b.left || b.bytes - a.bytes);
    }
    this.lastWrites = observeWrites(this.lastWrites, rows, Date.now());
    const quiet = p.actions.length === 0 && p.underReplicated.length === 0;
    const tierMoves = this.tiering(rows, view, quiet);
    copiesQueued += tierMoves + (tierMoves > 0 ? 0 : await this.rebalance(rows, view, quiet));
    for (const u of p.unfixable) this.d.log.warn({ egroup: String(u.egroup) }, u.why);
    const summary: CuratorScanSummary = {
      scan: ++this.scans,
      full,
      startedAtMs,
      durationMs: Math.round(performance.now() - t0),
      egroups: rows.length,
      underReplicated: p.underReplicated.length,
      lostReplicas: p.lostReplicas,
      copiesQueued,
      unfixable: p.unfixable.length,
      kind: record.kind,
      id: record.id,
      entries: mapped.entries,
      ...(record.kind === 'partial' ? { sinceRevision: mapped.sinceRevision } : {}),
      tasks: record.tasks.length,
      reassigned: mapped.board.reassigned,
      resumed: mapped.resumed,
      workers: mapped.board.workers(),
    };
    this.lastScan = summary;
    if (full) this.lastFullAtMs = record.startedAtMs;
    const rebuildNote = this.d.settings.rebuild === 'on' ? '' : ' (rebuild is off: nothing is copied)';
    await this.emit(
      { type: EventType.curatorScanDone, durationMs: summary.durationMs, reason: record.reason },
      `scan ${summary.scan}${full ? ' (full)' : ''}: ${swept}${summary.egroups} extent groups, ${summary.underReplicated} under-replicated, ${summary.lostReplicas} replicas lost, ${copiesQueued} copies queued, ${summary.unfixable} unfixable${rebuildNote}; ${describeScanMap(summary)}`,
    );
    await this.scanTasks.ended(record, rows);
    await this.drainsCounted(rows, view);
    await this.writeProgress();
    // A replica on a node dead for less than the delay becomes lost at a known time: scan then.
    if (p.nextLossAtMs !== undefined) this.scheduleScan(Math.max(0, p.nextLossAtMs - Date.now()) + 50);
    this.pump();
    // Garbage last: protection comes first (the copies above start before the disks are
    // listed), and a replica a copy is making now is skipped (see gc.ts).
    await this.collectGarbage(rows, view);
    return summary;
  }

  /**
   * Rebalance moves, queued only when the plan copies nothing (`quiet`) and no copy is
   * queued or running: protection and drains first, and each round of moves planned on
   * rows that show the last round done. Announces once when the disks are within the
   * threshold again after moves. Returns the moves queued.
   */
  private async rebalance(rows: readonly EgroupRow[], view: ClusterView, quiet: boolean): Promise<number> {
    const { settings } = this.d;
    const r = planRebalance(rows, view, { thresholdPct: settings.rebalanceThresholdPct, movesMax: settings.rebalanceMovesMax }, this.queued);
    this.spread = r.spread;
    this.d.log.debug({ spread: r.spread, quiet, queued: this.queued.size, moves: r.moves.length }, 'rebalance: the disks at the scan');
    const balanced = r.spread === undefined || r.spread.spreadPct <= settings.rebalanceThresholdPct;
    if (balanced && this.rebalanceMoves.sinceBalanced > 0 && this.queued.size === 0) {
      const moves = this.rebalanceMoves.sinceBalanced;
      this.rebalanceMoves.sinceBalanced = 0;
      const spread = r.spread === undefined ? 'one disk' : `disks within ${r.spread.spreadPct} points (threshold ${settings.rebalanceThresholdPct})`;
      await this.emit({ type: EventType.curatorRebalanceDone, reason: spread }, `rebalance done after ${moves} moves: ${spread}`);
    }
    if (!quiet || this.queued.size > 0 || settings.rebuild === 'off' || settings.rebalance === 'off') return 0;
    return this.queueMoves(r.moves, { spread: r.spread });
  }

  /** Queues rebalance or tiering moves (their reasons name which); returns how many. */
  private queueMoves(moves: readonly CopyAction[], context: object): number {
    for (const a of moves) {
      this.queue.push(a);
      this.queued.add(a.egroup);
    }
    if (moves.length > 0) this.d.log.info({ moves: moves.length, ...context }, `${moves.length} moves queued; ${moves[0]!.reason}`);
    return moves.length;
  }

  /**
   * Tiering moves, queued as rebalance moves are: only when the plan copies nothing
   * and no copy is queued or running. A scan that queues some makes no rebalance
   * (each round planned on rows that show the last one done). Returns the moves queued.
   */
  private tiering(rows: readonly EgroupRow[], view: ClusterView, quiet: boolean): number {
    const { settings } = this.d;
    const t = planTiering(rows, view, this.lastWrites, Date.now(), { thresholdPct: settings.tierThresholdPct, coldAfterMs: settings.tierColdAfterMs, movesMax: settings.tierMovesMax }, this.queued);
    this.tiers = t.tiers;
    if (!quiet || this.queued.size > 0 || settings.rebuild === 'off' || settings.tiering === 'off') return 0;
    return this.queueMoves(t.moves, { tiers: t.tiers });
  }

  /** The drains as this scan found them; each that holds nothing any more is announced once. */
  private async drainsCounted(rows: readonly EgroupRow[], view: ClusterView): Promise<void> {
    this.drains = countDrains(rows, view.leavers ?? []);
    const current = new Set(this.drains.map(drainKey));
    // A drain cancelled (or its node removed) is forgotten: started again, it is announced again.
    for (const key of this.announced) if (!current.has(key)) this.announced.delete(key);
    for (const d of this.drains) {
      if (d.replicas > 0 || this.announced.has(drainKey(d))) continue;
      this.announced.add(drainKey(d));
      await this.emit(
        { type: EventType.curatorDrainDone, kind: d.kind, id: d.id, name: d.name, reason: `${d.kind} ${d.name} holds no replica` },
        `${d.kind} ${d.name} is drained: it holds no replica; "strata ${d.kind} rm ${d.name}" removes it`,
      );
    }
  }

  /** One scan's garbage collection; a failure is logged and the next scan tries again. */
  private async collectGarbage(rows: readonly EgroupRow[], view: ClusterView): Promise<void> {
    const { settings } = this.d;
    try {
      const { summary } = await collectGarbage(
        {
          bus: this.d.bus,
          md: this.d.md,
          log: this.d.log,
          timeoutMs: settings.curatorRequestTimeoutMs,
          graceMs: settings.gcGraceMs,
          deletesPerSec: settings.gcDeletesPerSec,
          enabled: settings.gc === 'on',
          leading: () => this.d.leading() && !this.stopped,
          copying: (egroup) => this.queued.has(egroup) || this.inFlight.has(egroup),
        },
        rows,
        view,
      );
      this.lastGarbage = summary;
      this.garbage.garbageDeleted += summary.deleted;
      this.garbage.garbageBytes += summary.bytes;
      if (summary.deleted > 0) {
        await this.emit(
          { type: EventType.curatorGarbageDeleted, freedBytes: summary.bytes },
          `garbage collection: ${summary.deleted} replicas no entry names deleted, ${summary.bytes} bytes reclaimed (${summary.listed} listed, ${summary.young} younger than the grace period, ${summary.skippedDisks} disks skipped)`,
        );
      }
      await this.writeProgress();
    } catch (err) {
      this.d.log.warn({ err }, 'garbage collection failed; the next scan tries again');
    }
  }

  /**
   * Sweeps the vDisks marked deleting (each one's `vdisk.swept` event is the sweep's);
   * a vDisk it could not finish stays marked for the next scan. Says what it did, for
   * the scan's event.
   */
  private async sweep(): Promise<string> {
    this.sweepPorts ??= sweepPortsFor({ bus: this.d.bus, config: this.d.config, timeoutMs: this.d.settings.curatorRequestTimeoutMs }).catch((err: unknown) => {
      this.sweepPorts = undefined; // made again at the next scan
      throw err;
    });
    const result = await sweepDeleted(await this.sweepPorts, undefined, this.d.settings.creatingTimeoutMs, {
      since: this.unnamed,
      graceMs: this.d.settings.reclaimGraceMs,
      compact: { liveFraction: this.d.settings.compactLiveFraction, bytesMax: this.d.settings.compactBytesPerScan, asked: this.compactAsked },
    });
    for (const s of result.swept) this.d.log.info({ vdisk: String(s.vdisk) }, describeSwept(s));
    for (const r of result.reclaimed ?? []) this.d.log.info({ egroup: String(r.egroup), vdisk: String(r.vdisk), freedBytes: r.freedBytes }, `egroup ${r.egroup} reclaimed: ${r.why}`);
    for (const f of result.failed) this.d.log.warn({ vdisk: String(f.vdisk), error: f.error }, `${f.name} not swept yet; the next scan goes on with it`);
    this.reclaim.egroupsReclaimed += result.reclaimed?.length ?? 0;
    this.reclaim.egroupsReclaimedBytes += (result.reclaimed ?? []).reduce((n, r) => n + r.freedBytes, 0);
    this.reclaim.egroupsCompacted += result.compacted?.evacuating ?? 0;
    if ((result.reclaimed?.length ?? 0) > 0 || (result.compacted?.evacuating ?? 0) > 0) this.progressSoon();
    return describeSweep(result);
  }

  private async readView(): Promise<ClusterView> {
    const { config } = this.d;
    const [nodes, disks, containers, vdisks] = await Promise.all([config.list('node'), config.list('disk'), config.list('container'), config.list('vdisk')]);
    const used = new Map<bigint, number>();
    await forEachLimited(disks, SCAN_READS_IN_FLIGHT, async (disk) => {
      const report = await this.d.usage.get(keys.diskUsage(disk.id));
      if (report !== null) used.set(disk.id, report.value.usedBytes);
    });
    return clusterView({ nodes, disks, containers, vdisks }, (disk) => used.get(disk) ?? 0);
  }

  /**
   * The view with a policy for the writers that are gone but whose extent groups a
   * snapshot or clone still names, so those are protected too (view.ts). The rows of
   * md-vdisk are read only when there is such a writer.
   */
  private async keptWriters(view: ClusterView, rows: readonly EgroupRow[]): Promise<ClusterView> {
    if (!writersGone(view, rows)) return view;
    return withKeptWriters(view, rows, referencesOf(await this.d.vdiskRows.entries()));
  }

  /** Every entry of md-egroup, read directly from the bucket (reads only: the shards alone write it). */
  private async readRows(): Promise<EgroupRow[]> {
    const names = (await this.d.egroups.keys()).filter((k) => /^\d+$/.test(k));
    const rows: EgroupRow[] = [];
    await forEachLimited(names, SCAN_READS_IN_FLIGHT, async (key) => {
      const e = await this.d.egroups.get(key);
      if (e !== null) rows.push({ egroup: BigInt(key), revision: e.revision, entry: e.value });
    });
    return rows.sort((a, b) => (a.egroup < b.egroup ? -1 : a.egroup > b.egroup ? 1 : 0));
  }

  /** The copy a fresh entry of one extent group needs now, judged on the last scan's view. */
  private replan(row: EgroupRow): CopyAction | undefined {
    if (this.view === undefined || this.stopped) return undefined;
    return plan([row], this.view, Date.now(), { reprotectDelayMs: this.d.settings.reprotectDelayMs }, new Set(), this.damaged).actions[0];
  }

  /** Starts queued copies while there is room in flight. */
  private pump(): void {
    while (!this.stopped && this.d.leading() && this.inFlight.size < this.d.settings.curatorCopiesInFlightMax && this.queue.length > 0) {
      const action = this.queue.shift()!;
      this.inFlightBytes += action.bytes;
      const rebalance = action.rebalance === true ? 1 : 0;
      const tiering = action.tiering === true ? 1 : 0;
      this.rebalanceInFlight += rebalance;
      this.tierInFlight += tiering;
      const run = this.copy(action).finally(() => {
        this.inFlightBytes -= action.bytes;
        this.rebalanceInFlight -= rebalance;
        this.tierInFlight -= tiering;
        this.inFlight.delete(action.egroup);
        this.progressSoon();
        this.pump();
      });
      this.inFlight.set(action.egroup, run);
    }
  }

  private async copy(action: CopyAction): Promise<void> {
    const startedMs = performance.now();
    try {
      const done = await this.copier.run(action);
      this.queued.delete(action.egroup);
      if (done === undefined) {
        this.under.delete(action.egroup);
        return;
      }
      this.counts.bytesCopied += done.bytes;
      this.counts.copiesDone++;
      this.meter.add(done.bytes, performance.now());
      const { action: a } = done;
      if (a.drop && a.lost !== undefined) this.drains = afterMove(this.drains, a.lost.disk, a.bytes);
      if (a.rebalance === true) {
        this.rebalanceMoves.done++;
        this.rebalanceMoves.sinceBalanced++;
      }
      if (a.tiering === true) this.tierMovesDone++;
      const type = a.rebalance === true ? EventType.curatorRebalanceMove : a.tiering === true ? EventType.curatorTierMove : EventType.curatorReplicaCopied;
      await this.emit(
        { type, kind: 'egroup', id: a.egroup, fromDisk: a.source.disk, toDisk: a.target.disk, bytes: done.bytes, reason: a.reason },
        `egroup ${a.egroup}: copied ${done.bytes} bytes from disk ${a.source.disk} (${a.source.node}) to disk ${a.target.disk} (${a.target.node}) in ${Math.round(performance.now() - startedMs)} ms; ${a.reason}`,
      );
      // RF 3 that lost two replicas needs a second copy: plan the recorded entry again.
      const next = this.replan(done.row);
      if (next === undefined) this.under.delete(a.egroup);
      else if (!this.queued.has(next.egroup)) {
        this.queue.unshift(next);
        this.queued.add(next.egroup);
      }
    } catch (err) {
      this.queued.delete(action.egroup);
      this.counts.copiesFailed++;
      this.d.log.warn({ err, egroup: String(action.egroup), from: String(action.source.disk), to: String(action.target.disk) }, 'copy failed; the next scan plans it again');
    }
  }

  private currentProgress(): CuratorProgress {
    const nowMs = performance.now();
    const rebuild = this.d.settings.rebuild === 'on';
    const bytesToCopy = rebuild ? this.queue.reduce((n, a) => n + a.bytes, 0) + this.inFlightBytes : this.plannedBytes;
    const bytesPerSec = this.meter.bytesPerSec(nowMs);
    const eta = rebuild ? etaMs(bytesToCopy, bytesPerSec) : undefined;
    return {
      master: this.d.me,
      curatorEpoch: this.d.epoch,
      updatedAtMs: Date.now(),
      rebuild,
      underReplicated: this.under.size,
      bytesToCopy,
      ...this.counts,
      bytesPerSec,
      ...(eta === undefined ? {} : { etaMs: eta }),
      ...(this.lastScan === undefined ? {} : { lastScan: this.lastScan }),
      lastFullScanAtMs: this.lastFullAtMs,
      ...this.garbage,
      ...this.reclaim,
      ...(this.lastGarbage === undefined ? {} : { lastGarbage: this.lastGarbage }),
      ...(this.lastScrub === undefined ? {} : { lastScrub: this.lastScrub }),
      ...(this.scrubbing === undefined ? {} : { scrubbing: { startedAtMs: this.scrubbing.startedAtMs, replicasDone: this.scrubbing.done, replicasTotal: this.scrubbing.total } }),
      rebalance: this.rebalanceProgress(),
      tiering: this.tieringProgress(),
      ...(this.drains.length === 0 ? {} : { draining: this.drains.map(({ kind, name, replicas, bytes }) => ({ kind, name, replicas, bytes })) }),
    };
  }

  private rebalanceProgress(): CuratorRebalance {
    const { settings } = this.d;
    const moving = this.queue.filter((a) => a.rebalance === true).length + this.rebalanceInFlight;
    return {
      enabled: settings.rebalance === 'on' && settings.rebuild === 'on',
      thresholdPermille: permille(settings.rebalanceThresholdPct),
      ...(this.spread === undefined ? {} : { fullest: atEnd(this.spread.fullest), emptiest: atEnd(this.spread.emptiest), spreadPermille: permille(this.spread.spreadPct) }),
      moving,
      movesDone: this.rebalanceMoves.done,
    };
  }

  private tieringProgress(): CuratorTiering {
    const { settings } = this.d;
    return {
      enabled: settings.tiering === 'on' && settings.rebuild === 'on',
      thresholdPermille: permille(settings.tierThresholdPct),
      coldAfterMs: settings.tierColdAfterMs,
      tiers: this.tiers.slice(0, 8).map((t) => ({ tier: t.tier, usedPermille: permille(t.usedPct) })),
      moving: this.queue.filter((a) => a.tiering === true).length + this.tierInFlight,
      movesDone: this.tierMovesDone,
    };
  }

  /** What `strata curator status` shows (also read by the metrics). */
  status(): CuratorStatusReply {
    return {
      master: this.d.me,
      curatorEpoch: this.d.epoch,
      ...(this.running === undefined ? {} : { running: runningStatus(this.running) }),
      copiesInFlight: this.inFlight.size,
      progress: this.currentProgress(),
    };
  }

  /** Rewrites the progress record within PROGRESS_WRITE_MS (one write for many copies). */
  private progressSoon(): void {
    if (this.progressTimer !== undefined || this.stopped) return;
    this.progressTimer = setTimeout(() => {
      this.progressTimer = undefined;
      void this.writeProgress();
    }, PROGRESS_WRITE_MS);
  }

  private writeProgress(): Promise<void> {
    this.progressWriting = this.progressWriting.then(async () => {
      if (!this.d.leading()) return;
      try {
        await this.d.progress.put(keys.curatorProgress, this.currentProgress());
      } catch (err) {
        this.d.log.warn({ err }, 'could not write the curator progress');
      }
    });
    return this.progressWriting;
  }

  /** Events are best effort: the work is not undone because its event could not be stored. */
  private async emit(fields: Omit<ClusterEvent, 'atMs' | 'epoch' | 'cause' | 'message' | 'curatorEpoch'>, message: string): Promise<void> {
    this.d.log.info({ event: fields.type }, message);
    try {
      await this.d.events.append({ ...fields, atMs: Date.now(), epoch: 0, curatorEpoch: this.d.epoch, cause: 'curator', message });
    } catch (err) {
      this.d.log.warn({ err, event: fields.type }, 'could not record a curator event');
    }
  }
}

/** The sweep's part of the scan's summary: `2 deleted vdisks swept, 5 extent groups reclaimed (40.0 MiB), 3 extent groups of live vdisks unnamed (2 past the grace period, 1 released, 1 kept by their owners), `; '' when it did nothing. */
export function describeSweep(result: SweepResult): string {
  const parts: string[] = [];
  if (result.swept.length > 0) parts.push(`${result.swept.length} deleted vdisks swept`);
  const reclaimed = result.reclaimed ?? [];
  if (reclaimed.length > 0) parts.push(`${reclaimed.length} extent groups reclaimed (${(reclaimed.reduce((n, r) => n + r.freedBytes, 0) / 2 ** 20).toFixed(1)} MiB)`);
  const u = result.unnamed;
  if (u !== undefined && u.unnamed > 0) parts.push(`${u.unnamed} extent groups of live vdisks unnamed (${u.due} past the grace period, ${u.released} released, ${u.kept} kept by their owners)`);
  const c = result.compacted;
  if (c !== undefined && c.asked > 0) parts.push(`${c.evacuating} mostly dead extent groups evacuating (${c.blocks} blocks, ${(c.liveBytes / 2 ** 20).toFixed(1)} MiB live, to move)`);
  if (result.failed.length > 0) parts.push(`${result.failed.length} not swept yet`);
  return parts.map((p) => `${p}, `).join('');
}

const permille = (pct: number): number => Math.max(0, Math.round(pct * 10));
const atEnd = (d: Spread['fullest']): { disk: bigint; node: string; usedPermille: number } => ({ disk: d.disk, node: d.node, usedPermille: permille(d.usedPct) });

/** The scan running, for status: its kind and map tasks once they are made. */
function runningStatus(r: RunningScan): NonNullable<CuratorStatusReply['running']> {
  if (r.tasks === undefined) return { startedAtMs: r.startedAtMs, full: r.full };
  const { record, board } = r.tasks;
  const p = board.progress();
  return { startedAtMs: r.startedAtMs, full: record.kind === 'full', kind: record.kind, id: record.id, tasksDone: p.done, tasksTotal: p.total, workers: p.workers };
}

