// The node's vdisk-controller: opens each vDisk this node owns on its first I/O
// (replaying the undrained oplog tail and appending a takeover marker before it
// serves), routes I/O to it, and gives the vDisks what they need from the rest of
// the cluster: extent stores, metadata shards, ids, placement.
import { performance } from 'node:perf_hooks';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { IdAllocator } from '@strata/ids';
import { modify, type TypedBucket, type WatchCache } from '@strata/kv';
import type { Logger } from '@strata/log';
import type { MdClient } from '@strata/md-client';
import {
  EventType,
  keys,
  streams,
  subjects,
  type CfgEntry,
  type ClusterEvent,
  type DiskUsage,
  type EgroupEntry,
  type Priority,
  type VdcRecordCopyRequest,
  type VdcReleaseRequest,
  type VdcCompactRequest,
  type VdiskOwnership,
  type vdiskOwnership,
} from '@strata/proto';
import { SpanAttr, inSpan, recordingSpan, trace } from '@strata/tracing';
import { DrainPacer } from './drain-pacer';
import { OplogLink } from './oplog-link';
import { OplogAppender, lastMessage, purgeBelow, readOpsTail } from '@strata/oplog';
import { handOver, notOwner, serves } from '@strata/ownership';
import { place, type CandidateDisk } from '@strata/placement';
import type { ReplicaHealth } from './replica-health';
import { ExtentGroups } from './extent-groups';
import { LifecycleState, nextLifecycle, startLifecycle, stateOf, type LifecycleEvent, type LifecycleSnapshot } from './lifecycle-machine';
import { SpaceGuard } from './space-guard';
import { Vdisk, type DrainFailure, type FaultStep, type SnapshotResult, type VdiskBacklog, type VdiskSettings } from './vdisk';

export interface ControllerSettings extends VdiskSettings {
  node: string;
  /** Without a heartbeat renewed for this long, the node serves no I/O (design.md, "Ownership, liveness, fencing"). */
  fenceTimeoutMs: number;
  /** Most payload bytes in one oplog message. */
  oplogBatchBytesMax: number;
  /** One oplog append attempt's deadline, and how many attempts an append gets. */
  oplogPublishTimeoutMs: number;
  oplogPublishAttempts: number;
  /** Extent-group size at which a new one is started. */
  egroupSizeBytes: number;
  /** Most data bytes in one extent-store write request. */
  drainWriteBytesMax: number;
  /** Deadline of one extent-store or metadata request. */
  backendTimeoutMs: number;
  /** Bound of reading a vDisk's whole undrained oplog tail when it is opened. */
  replayTimeoutMs: number;
  /** A lower-class vDisk's drain is busy at most this share of the time while high-class I/O is served (100: never paced). */
  drainDutyPercentUnderHigh: number;
  /** High-class I/O counts as being served for this long after its last request. */
  highActiveMs: number;
  /** Deadline of a direct write's extent-store writes. */
  directWriteTimeoutMs: number;
  /** Fault tests only: `<step>:<ms>` (see settings.ts). */
  faultHoldAt?: string | undefined;
}

export interface ControllerDeps {
  bus: Bus;
  config: ConfigClient;
  own: TypedBucket<typeof vdiskOwnership>;
  md: MdClient;
  ids: IdAllocator;
  usage: WatchCache<DiskUsage>;
  /** The config's disks and nodes (bucket cfg, keys disk.> and node.>), for placement without a request per extent group. */
  disks: WatchCache<CfgEntry>;
  nodes: WatchCache<CfgEntry>;
  log: Logger;
  settings: ControllerSettings;
  /** The node's heartbeat: performance.now() of its last acknowledged renewal (absent in tests of the I/O path alone). */
  liveness?: { lastAckedAtMs: number };
  /** Records ownership moves (relinquish) for operators. */
  events?: { append(event: ClusterEvent): Promise<void> };
  /** What the controller believes about the nodes of its replicas (see replica-health.ts). */
  health: ReplicaHealth;
  /** Told of every vDisk opened (a first I/O or a takeover): how long the open took and the entries it replayed (metrics). */
  onOpened?: (opened: { ms: number; replayed: number }) => void;
}

/** A served vDisk and what only its controller keeps. */
interface Served {
  vdisk: Vdisk;
  name: string;
  ownership: { epoch: number; revision: number };
  container: { id: bigint; name: string };
  replicationFactor: number;
  tierOrder: string[];
  /** Where it is in its lifecycle (lifecycle-machine.ts): serving while in `served`, then leaving or closed. */
  lifecycle: LifecycleSnapshot;
  /** Requests being served now, and who waits for them to end (relinquish). */
  active: number;
  idleWaiters: Array<() => void>;
}

const tracer = trace.getTracer('@strata/vdisk-controller');

/** Compare-and-set attempts of a hand-over (relinquish) before it answers UNAVAILABLE. */
const HAND_OVER_ATTEMPTS = 5;
/** Compare-and-set attempts of recording a drained sequence or a generation (a failure fails the drain, which is retried). */
const OWN_RECORD_ATTEMPTS = 3;

export class Controller {
  private readonly served = new Map<bigint, Served>();
  private readonly opening = new Map<bigint, Promise<Served>>();
  /** vDisks being handed over (relinquish), with the node they go to: refused meanwhile. */
  private readonly leaving = new Map<bigint, string>();
  private js!: JetStreamClient;
  private jsm!: JetStreamManager;
  private link!: OplogLink;
  private readonly pacer: DrainPacer;
  private readonly space: SpaceGuard;

  constructor(private readonly deps: ControllerDeps) {
    this.space = new SpaceGuard({
      disks: () => this.cfgObjects(this.deps.disks, 'disk'),
      nodes: () => this.cfgObjects(this.deps.nodes, 'node'),
      usage: (disk) => this.deps.usage.get(keys.diskUsage(disk))?.value,
      fullFreeBytes: deps.settings.egroupSizeBytes,
      nowMs: () => performance.now(),
      refreshMs: 250,
    });
    this.pacer = new DrainPacer({
      dutyPercent: deps.settings.drainDutyPercentUnderHigh,
      highActiveMs: deps.settings.highActiveMs,
      pauseMaxMs: 100,
      now: () => performance.now(),
    });
  }

  /** A request arrived for `vdiskId`, scheduled by admission in class `priority` (drain pacing follows it). */
  noteClass(vdiskId: bigint, priority: Priority | undefined): void {
    this.pacer.note(vdiskId, priority);
  }

  async start(): Promise<void> {
    this.js = jetstream(this.deps.bus.nc);
    this.jsm = await jetstreamManager(this.deps.bus.nc);
    this.link = OplogLink.start({ nc: this.deps.bus.nc, stream: streams.oplog, log: this.deps.log, recheckMs: 30_000, retireAfterMs: 3 * this.deps.settings.backendTimeoutMs });
  }

  /** Runs one I/O request against the served vDisk, counted so a relinquish can wait for it. */
  async serve<T>(vdiskId: bigint, io: (vdisk: Vdisk) => Promise<T>, end?: number): Promise<T> {
    const served = await this.getServed(vdiskId);
    served.active++;
    try {
      if (end !== undefined && end > served.vdisk.shape.sizeBytes) await this.catchUpSize(served.vdisk);
      return await io(served.vdisk);
    } catch (err) {
      throw fencedAsNotOwner(err, vdiskId);
    } finally {
      if (--served.active === 0) for (const wake of served.idleWaiters.splice(0)) wake();
    }
  }

  /**
   * A request past the end of a served vDisk may follow a resize the config service
   * has and this controller has not seen (the director checked the range against
   * its own copy): the vDisk's size is read again, and a larger one taken.
   */
  private async catchUpSize(vdisk: Vdisk): Promise<void> {
    const cfg = await this.deps.config.get({ kind: 'vdisk', id: vdisk.shape.id });
    if (cfg.kind !== 'vdisk' || cfg.spec.sizeBytes <= vdisk.shape.sizeBytes) return;
    this.deps.log.info({ vdisk: String(vdisk.shape.id), from: vdisk.shape.sizeBytes, to: cfg.spec.sizeBytes }, 'vdisk resized: serving up to its new end');
    vdisk.grow(cfg.spec.sizeBytes);
  }

  /** Each served vDisk's oplog backlog (read by the metrics at scrape time). */
  backlogs(): Array<{ vdisk: string } & VdiskBacklog> {
    const now = performance.now();
    return [...this.served.values()].map((s) => ({ vdisk: s.name, ...s.vdisk.backlog(now) }));
  }

  /** The served vDisk, opened on first use. Throws NOT_OWNER when this node does not own it. */
  async get(vdiskId: bigint): Promise<Vdisk> {
    return (await this.getServed(vdiskId)).vdisk;
  }

  private async getServed(vdiskId: bigint): Promise<Served> {
    this.checkLive();
    const to = this.leaving.get(vdiskId);
    if (to !== undefined) throw this.notOwner(vdiskId, to);
    const current = this.served.get(vdiskId);
    if (current !== undefined) {
      const failed = current.vdisk.appender.failed;
      if (failed === undefined) return current;
      // Its oplog view cannot be trusted any more: close it and reopen from the oplog.
      await this.close(vdiskId, current, { type: failed.code === ErrorCode.FENCED ? 'fenced' : 'failed', reason: failed.message });
      if (failed.code === ErrorCode.FENCED) throw this.notOwner(vdiskId, undefined);
    }
    let opening = this.opening.get(vdiskId);
    if (opening === undefined) {
      opening = this.openTraced(vdiskId).finally(() => this.opening.delete(vdiskId));
      this.opening.set(vdiskId, opening);
    }
    return opening;
  }

  /**
   * The fence of a node cut off from the cluster: when its heartbeat has not been
   * renewed for the fence timeout (it may have been paused, or lost NATS), it stops
   * serving every vDisk at once, before anything else, because the config leader
   * may be about to move them. Served vDisks are reopened from `own` and the oplog
   * once the heartbeat is renewed, so a vDisk that moved meanwhile gets NOT_OWNER.
   * The clock is this process's monotonic clock: a pause counts as time passed.
   */
  checkLive(): void {
    const liveness = this.deps.liveness;
    if (liveness === undefined) return;
    const silentMs = performance.now() - liveness.lastAckedAtMs;
    if (silentMs <= this.deps.settings.fenceTimeoutMs) return;
    const why = `node ${this.deps.settings.node} has not renewed its heartbeat for ${Math.round(silentMs)} ms (fence timeout ${this.deps.settings.fenceTimeoutMs} ms)`;
    this.dropAll(why);
    throw new StrataError(ErrorCode.UNAVAILABLE, `${why}; not serving I/O until it does`);
  }

  /** Stops serving every vDisk (their state is rebuilt from the oplog on the next request). */
  dropAll(why: string): void {
    if (this.served.size === 0) return;
    this.deps.log.warn({ vdisks: [...this.served.keys()].map(String), why }, 'no longer serving any vdisk');
    for (const [id, served] of this.served) void this.close(id, served, { type: 'drop', reason: why });
  }

  /** Moves a served vDisk's lifecycle on by `event`; once it is closed, stops serving it (waits for a running drain). */
  private async close(vdiskId: bigint, served: Served, event: LifecycleEvent): Promise<void> {
    served.lifecycle = nextLifecycle(served.lifecycle, event);
    if (stateOf(served.lifecycle) !== LifecycleState.closed) return;
    if (this.served.get(vdiskId) === served) this.served.delete(vdiskId);
    await served.vdisk.close();
  }

  /**
   * The replay step of a failover: the coordinator recorded this node as owner at
   * `epoch`; open the vDisk (replay the oplog tail, append the marker) and serve.
   */
  async takeOver(vdiskId: bigint, epoch: number): Promise<{ epoch: number; replayed: number; lastSeq: number }> {
    const current = this.served.get(vdiskId);
    if (current !== undefined && current.ownership.epoch < epoch) {
      // Served at an older epoch: that view is stale (this node lost and regained the vDisk).
      await this.close(vdiskId, current, { type: 'drop', reason: `served at epoch ${current.ownership.epoch}, owned at ${epoch}` });
    }
    const served = await this.getServed(vdiskId);
    if (served.ownership.epoch !== epoch) {
      throw new StrataError(ErrorCode.NOT_OWNER, `vdisk ${vdiskId} is served at epoch ${served.ownership.epoch}, not ${epoch}`);
    }
    return { epoch, replayed: served.lifecycle.context.replayed, lastSeq: served.vdisk.appender.lastSequence };
  }

  /**
   * The curator's copy of a replica of one of the vDisk's extent groups: recorded
   * between two of its writes, by the owner at `epoch` only (NOT_OWNER otherwise).
   * A vDisk this node owns and does not serve yet is opened, as for its first I/O.
   */
  async recordCopy(req: VdcRecordCopyRequest): Promise<{ revision: number }> {
    const { vdisk: vdiskId, epoch, ...copy } = req;
    return this.serveAt(vdiskId, epoch, 'the copy is recorded', async (vdisk) => ({ revision: await vdisk.recordCopy(copy) }));
  }

  /**
   * A curator's request about `vdiskId`, run by the owner at `epoch` only: NOT_OWNER
   * otherwise, saying what (`what`) only that owner does. Opens the vDisk as serve() does.
   */
  private serveAt<T>(vdiskId: bigint, epoch: number, what: string, fn: (vdisk: Vdisk) => Promise<T>): Promise<T> {
    return this.serve(vdiskId, async (vdisk) => {
      const served = this.served.get(vdiskId);
      if (served?.vdisk !== vdisk || served.ownership.epoch !== epoch) {
        throw new StrataError(ErrorCode.NOT_OWNER, `vdisk ${vdiskId} is served at epoch ${served?.ownership.epoch ?? 'none'}, not ${epoch}: ${what} by the owner at that epoch`);
      }
      return fn(vdisk);
    });
  }

  /**
   * The curator's release of extent groups no row names (Vdisk.release): answered by
   * the owner at `epoch` only (NOT_OWNER otherwise). A vDisk this node owns and does
   * not serve yet is opened, as for its first I/O (its oplog replayed: the references
   * it holds count).
   */
  async release(req: VdcReleaseRequest): Promise<{ released: bigint[] }> {
    const { vdisk: vdiskId, epoch, egroups } = req;
    return this.serveAt(vdiskId, epoch, 'extent groups are released', async (vdisk) => {
      const released = await vdisk.release(egroups);
      this.deps.log.info({ vdisk: String(vdiskId), asked: egroups.length, released: released.map(String) }, 'released extent groups no row names to the curator');
      return { released };
    });
  }

  /**
   * The curator's compaction of extent groups that are mostly dead (Vdisk.compact): by
   * the owner at `epoch` only (NOT_OWNER otherwise); a vDisk this node owns and does
   * not serve yet is opened, as for its first I/O.
   */
  async compact(req: VdcCompactRequest): Promise<{ evacuating: bigint[]; blocks: number }> {
    const { vdisk: vdiskId, epoch, egroups } = req;
    return this.serveAt(vdiskId, epoch, 'extent groups are compacted', async (vdisk) => {
      const result = await vdisk.compact(egroups);
      this.deps.log.info({ vdisk: String(vdiskId), asked: egroups.length, evacuating: result.evacuating.map(String), blocks: result.blocks }, 'evacuating extent groups that are mostly dead: drain moves their blocks');
      return result;
    });
  }

  /**
   * Hands an unshared vDisk to `to`, the node its VM moved to: stop admitting it,
   * let the requests being served finish (their appends end one way or the other),
   * stop its drain, then record `to` as owner with epoch + 1 by compare-and-set. The
   * new owner's marker fences anything of ours that is still on its way.
   */
  async relinquish(vdiskId: bigint, to: string): Promise<{ owner: string; epoch: number }> {
    const { settings, log } = this.deps;
    const key = keys.vdiskOwnership(vdiskId);
    if (this.leaving.has(vdiskId)) throw new StrataError(ErrorCode.UNAVAILABLE, `vdisk ${vdiskId} is already being handed over to ${this.leaving.get(vdiskId)}`);
    this.leaving.set(vdiskId, to);
    try {
      await this.opening.get(vdiskId)?.catch(() => undefined);
      const served = this.served.get(vdiskId);
      if (served !== undefined) {
        served.lifecycle = nextLifecycle(served.lifecycle, { type: 'relinquish', to });
        if (served.active > 0) await new Promise<void>((resolve) => served.idleWaiters.push(resolve));
        this.served.delete(vdiskId);
        await served.vdisk.close();
      }
      const { current, next } = await this.handOver(key, vdiskId, to).catch((err: unknown) => {
        if (served !== undefined) served.lifecycle = nextLifecycle(served.lifecycle, { type: 'failed', reason: (err as Error).message });
        throw err;
      });
      if (served !== undefined) served.lifecycle = nextLifecycle(served.lifecycle, { type: 'handedOver' });
      if (next === undefined) return { owner: current.owner, epoch: current.epoch };
      const name = served?.name ?? String(vdiskId);
      log.info({ vdisk: String(vdiskId), to, epoch: next.epoch }, 'relinquished vdisk');
      void this.deps.events
        ?.append({
          type: EventType.ownerChanged,
          atMs: Date.now(),
          epoch: 0,
          kind: 'vdisk',
          id: vdiskId,
          name,
          owner: to,
          previousOwner: settings.node,
          ownerEpoch: next.epoch,
          cause: 'relinquish',
          message: `vdisk ${name}: ${settings.node} -> ${to} at epoch ${next.epoch} (its VM's I/O now arrives at ${to})`,
        })
        .catch((err: unknown) => log.warn({ err }, 'could not record the ownership move'));
      return { owner: to, epoch: next.epoch };
    } finally {
      this.leaving.delete(vdiskId);
    }
  }

  /**
   * Records `to` as the owner at epoch + 1 by compare-and-set, unless the record no
   * longer names this node (a failover or another hand-over got there first: `next`
   * undefined, `current` says who owns it now). A compare-and-set lost to another
   * writer of the record (a volunteer joining, say) is tried again on the new record.
   */
  private async handOver(key: string, vdiskId: bigint, to: string): Promise<{ current: VdiskOwnership; next?: VdiskOwnership }> {
    const { before, after, written } = await modify(
      this.deps.own,
      key,
      (current) => handOver(current?.value ?? null, vdiskId, this.deps.settings.node, to),
      // Out of attempts: UNAVAILABLE, retryable: the gateway sends the request again, and with it the relinquish.
      HAND_OVER_ATTEMPTS,
    );
    return written ? { current: before!.value, next: after!.value } : { current: before!.value };
  }

  private notOwner(vdiskId: bigint, owner: string | undefined): StrataError {
    return notOwner(this.deps.settings.node, vdiskId, owner);
  }

  /** open() under a `vdisk open` span: the first I/O's trace shows the replay and the takeover marker. */
  private async openTraced(vdiskId: bigint): Promise<Served> {
    const span = tracer.startSpan('vdisk open');
    span.setAttribute(SpanAttr.vdisk, String(vdiskId));
    const startedMs = performance.now();
    return inSpan(span, async () => {
      const served = await this.open(vdiskId);
      span.setAttribute(SpanAttr.epoch, served.ownership.epoch);
      this.deps.onOpened?.({ ms: performance.now() - startedMs, replayed: served.lifecycle.context.replayed });
      return served;
    });
  }

  private async open(vdiskId: bigint): Promise<Served> {
    const { settings, log } = this.deps;
    const ownership = await this.deps.own.get(keys.vdiskOwnership(vdiskId));
    if (ownership === null || !serves(ownership.value, settings.node)) throw this.notOwner(vdiskId, ownership?.value.owner);
    let lifecycle = nextLifecycle(startLifecycle(vdiskId), { type: 'owned', epoch: ownership.value.epoch });
    const cfg = await this.deps.config.get({ kind: 'vdisk', id: vdiskId });
    if (cfg.kind !== 'vdisk') throw new StrataError(ErrorCode.INTERNAL, `config returned a ${cfg.kind} for vdisk ${vdiskId}`);
    if (cfg.spec.deletingSinceMs !== undefined) throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${cfg.name} is being deleted`);
    // Its rows are still being copied: served only once the snapshot or clone is committed.
    if (cfg.spec.creatingSinceMs !== undefined) throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${cfg.name} is being created`);
    const container = await this.deps.config.get({ kind: 'container', id: cfg.spec.container });
    if (container.kind !== 'container') throw new StrataError(ErrorCode.INTERNAL, `config returned a ${container.kind} for container ${cfg.spec.container}`);

    const started = performance.now();
    const subject = subjects.oplog(vdiskId);
    const { lastSeq, entries } = await readOpsTail(this.js, this.jsm, vdiskId, ownership.value.drained, settings.replayTimeoutMs);
    recordingSpan()?.setAttributes({ 'strata.oplog.drained_seq': ownership.value.drained, 'strata.oplog.last_seq': lastSeq, 'strata.oplog.replayed': entries.length });
    // The vDisk's callbacks need the Served record, which exists only once the vDisk does.
    const ref: { served?: Served } = {};
    const appender = new OplogAppender({
      js: () => this.link.js,
      subject,
      vdisk: vdiskId,
      epoch: ownership.value.epoch,
      owner: settings.node,
      lastSequence: lastSeq,
      maxBatchBytes: settings.oplogBatchBytesMax,
      lastMessage: () => lastMessage(this.jsm, vdiskId),
      publishTimeoutMs: settings.oplogPublishTimeoutMs,
      publishAttempts: settings.oplogPublishAttempts,
    });
    // Every metadata write of this vDisk is fenced by the epoch it is served at, like
    // its oplog entries and extent-store writes.
    const fence = { vdisk: vdiskId, epoch: ownership.value.epoch };
    const space = new ExtentGroups({
      bus: this.deps.bus,
      md: this.deps.md,
      log,
      node: settings.node,
      health: this.deps.health,
      vdisk: vdiskId,
      epoch: () => ref.served!.ownership.epoch,
      generation: () => ref.served?.vdisk.generation ?? ownership.value.generation,
      createEgroup: (firstExtentBytes) => this.createEgroup(ref.served!, firstExtentBytes),
      egroupSizeBytes: settings.egroupSizeBytes,
      writeBytesMax: settings.drainWriteBytesMax,
      timeoutMs: settings.backendTimeoutMs,
      putTimeoutMs: settings.directWriteTimeoutMs,
      pauseAfterWriteMs: (workMs) => this.pacer.pauseAfterMs(vdiskId, workMs),
    });
    const vdisk = new Vdisk(
      {
        id: vdiskId,
        sizeBytes: cfg.spec.sizeBytes,
        blockSizeBytes: cfg.spec.blockSizeBytes,
        readOnly: cfg.spec.snapshotOf !== undefined,
        generation: ownership.value.generation,
      },
      appender,
      space,
      {
        getRow: (row) => this.deps.md.get('vdisk', keys.vdiskRow(vdiskId, row)),
        putRow: (row, value, revision) => this.deps.md.put('vdisk', keys.vdiskRow(vdiskId, row), value, revision, { fence }),
        recordDrained: (seq) => this.recordDrained(ref.served!, seq),
        recordGeneration: (generation) => this.recordGeneration(ref.served!, generation),
        // Fenced by the source's epoch: a deposed owner copies nothing (its cut would not be the new owner's).
        putSnapshotRow: async (snapshot, row, value) => {
          const key = keys.vdiskRow(snapshot, row);
          const current = await this.deps.md.get('vdisk', key);
          await this.deps.md.put('vdisk', key, value, current?.revision ?? 0, { fence });
        },
        purgeBelow: (seq) => purgeBelow(this.jsm, vdiskId, seq, appender.lastSequence),
        drainPaced: () => this.pacer.paced(vdiskId),
        hold: this.faultHold(vdiskId),
        roomFor: (bytes, backlogBytes) => {
          const served = ref.served;
          if (served === undefined) return undefined;
          return this.space.roomFor({ ...served.container, replicationFactor: served.replicationFactor, tierOrder: served.tierOrder }, bytes, backlogBytes);
        },
      },
      settings,
      ownership.value.drained,
      (err, failure) => this.drainFailed(vdiskId, ref.served, err, failure),
      (failures) => log.info({ vdisk: String(vdiskId), failures }, `drain succeeded again after ${failures} failed attempt${failures === 1 ? '' : 's'}`),
    );
    for (const { seq, ops } of entries) vdisk.apply(seq, ops);
    lifecycle = nextLifecycle(lifecycle, { type: 'replayed', replayed: entries.length });
    // Fence: from here on, any earlier writer of this oplog fails its next append.
    try {
      await appender.appendMarker();
    } catch (err) {
      if (isStrataError(err, ErrorCode.FENCED)) throw this.notOwner(vdiskId, undefined);
      throw err;
    }
    lifecycle = nextLifecycle(lifecycle, { type: 'marked' });
    const served: Served = {
      vdisk,
      name: cfg.name,
      ownership: { epoch: ownership.value.epoch, revision: ownership.revision },
      container: { id: container.id, name: container.name },
      replicationFactor: container.spec.replicationFactor,
      tierOrder: container.spec.tierOrder,
      lifecycle,
      active: 0,
      idleWaiters: [],
    };
    ref.served = served;
    this.served.set(vdiskId, served);
    log.info(
      { vdisk: String(vdiskId), epoch: ownership.value.epoch, drained: ownership.value.drained, replayed: entries.length, lastSeq, ms: Math.round(performance.now() - started) },
      'serving vdisk',
    );
    vdisk.kickDrain();
    return served;
  }

  /**
   * A new extent group for the vDisk, placed on RF disks of distinct live nodes and
   * recorded (empty) in the map before any replica is written. Drain asks for it: an
   * `egroup create` span under the drain's.
   */
  private async createEgroup(served: Served, firstExtentBytes: number): Promise<{ id: bigint; entry: EgroupEntry; revision: number }> {
    const span = tracer.startSpan('egroup create');
    return inSpan(span, async () => {
      const created = await this.placeEgroup(served, firstExtentBytes);
      if (span.isRecording()) {
        span.setAttributes({
          [SpanAttr.vdisk]: String(served.vdisk.shape.id),
          [SpanAttr.egroup]: String(created.id),
          [SpanAttr.disk]: created.entry.replicas.map((r) => String(r.disk)),
          'strata.nodes': created.entry.replicas.map((r) => r.node),
        });
      }
      return created;
    });
  }

  /** The objects of `kind` in a watched copy of `cfg`. */
  private cfgObjects<K extends 'disk' | 'node'>(cache: WatchCache<CfgEntry>, kind: K): Array<Extract<CfgEntry, { kind: K }>> {
    const out: Array<Extract<CfgEntry, { kind: K }>> = [];
    for (const { value } of cache.values()) if ('kind' in value && value.kind === kind) out.push(value as Extract<CfgEntry, { kind: K }>);
    return out;
  }

  private async placeEgroup(served: Served, firstExtentBytes: number): Promise<{ id: bigint; entry: EgroupEntry; revision: number }> {
    const { settings } = this.deps;
    const disks = this.cfgObjects(this.deps.disks, 'disk');
    const nodes = this.cfgObjects(this.deps.nodes, 'node');
    const nodeName = new Map(nodes.map((n) => [n.id, n.name]));
    const drainingNodes = new Set(nodes.filter((n) => n.spec.drainingSinceMs !== undefined).map((n) => n.id));
    // Not on a node declared dead, nor on one this controller finds hung (drain would wait on it).
    const live = new Set(nodes.filter((n) => n.status.liveness !== 'dead' && this.deps.health.usable(n.name)).map((n) => n.name));
    const candidates: CandidateDisk[] = disks.map((d) => ({
      id: d.id,
      node: nodeName.get(d.spec.node) ?? '?',
      tier: d.spec.tier,
      capacityBytes: d.spec.capacityBytes,
      usedBytes: this.deps.usage.get(keys.diskUsage(d.id))?.value.usedBytes ?? 0,
      // Leaving (strata node drain, disk drain): the curator is moving its replicas away.
      draining: d.spec.drainingSinceMs !== undefined || drainingNodes.has(d.spec.node),
    }));
    const input = {
      disks: candidates,
      liveNodes: live,
      localNode: settings.node,
      replicationFactor: served.replicationFactor,
      tierOrder: served.tierOrder,
      needBytes: Math.max(firstExtentBytes, settings.egroupSizeBytes),
    };
    const placement = place(input);
    if (!placement.ok) {
      // Too few nodes up is not a lack of space: writes wait in the oplog for them
      // (UNAVAILABLE, retried) instead of being refused NO_SPACE, which is only for
      // disks that are full whichever nodes are up.
      const withEveryNode = place({ ...input, liveNodes: new Set(nodes.map((n) => n.name)) });
      if (withEveryNode.ok) throw new StrataError(ErrorCode.UNAVAILABLE, `no extent group can be placed while nodes are down or hung: ${placement.why}`);
      throw new StrataError(ErrorCode.NO_SPACE, placement.why);
    }
    const id = await this.deps.ids.allocate();
    const generation = served.vdisk.generation;
    const entry: EgroupEntry = {
      vdisk: served.vdisk.shape.id,
      replicas: placement.replicas.map((d) => ({ disk: d.id, node: d.node })),
      version: 0,
      sizeBytes: 0,
      ...(generation > 0 ? { gen: generation } : {}),
      extents: [],
    };
    const revision = await this.deps.md.put('egroup', keys.egroup(id), entry, 0, { fence: { vdisk: served.vdisk.shape.id, epoch: served.ownership.epoch } });
    return { id, entry, revision };
  }

  /**
   * A failed drain is retried by the vDisk after its idle delay, unless it was
   * refused FENCED: an extent store or a metadata shard has seen a newer epoch of the
   * vDisk, or `own` names one (recordDrained). Then this node has been deposed, as
   * after a FENCED oplog append, and stops serving the vDisk at once rather than on
   * its next request. That request opens it again from `own`: NOT_OWNER with the new
   * owner as hint, or served at the newer epoch if this node owns it again.
   */
  private drainFailed(vdiskId: bigint, served: Served | undefined, err: unknown, failure: DrainFailure): void {
    const { log } = this.deps;
    if (!isStrataError(err, ErrorCode.FENCED)) {
      // One warning per change of state (the first failure, or one of another kind),
      // not one per retry: a full disk fails every retry until space is freed.
      const fields = { err, vdisk: String(vdiskId), failures: failure.failures, retryInMs: failure.retryInMs };
      const why = isStrataError(err, ErrorCode.NO_SPACE) ? 'drain failed: no space; writes are refused NO_SPACE until it drains' : 'drain failed; it will be retried';
      if (failure.changed) log.warn(fields, why);
      else log.debug(fields, why);
      return;
    }
    log.warn({ err, vdisk: String(vdiskId), epoch: served?.ownership.epoch }, 'drain fenced: the vdisk has a newer owner; no longer serving it');
    if (served === undefined || this.served.get(vdiskId) !== served) return;
    void this.close(vdiskId, served, { type: 'fenced', reason: (err as Error).message });
  }

  private async recordDrained(served: Served, seq: number): Promise<void> {
    await this.updateOwnRecord(served, `drained ${seq}`, (current) => ({ ...current, drained: Math.max(current.drained, seq) }));
  }

  /** A snapshot's generation bump, recorded where the next owner reads it when it opens the vDisk. */
  private async recordGeneration(served: Served, generation: number): Promise<void> {
    await this.updateOwnRecord(served, `generation ${generation}`, (current) => ({ ...current, generation: Math.max(current.generation, generation) }));
  }

  /**
   * Rewrites this owner's ownership record by compare-and-set: FENCED when it names
   * another owner or epoch. A compare-and-set lost to another writer (a volunteer
   * joining) is tried again on the new record.
   */
  private async updateOwnRecord(served: Served, what: string, change: (current: VdiskOwnership) => VdiskOwnership): Promise<void> {
    const { after } = await modify(
      this.deps.own,
      keys.vdiskOwnership(served.vdisk.shape.id),
      (current) => {
        if (current === null || !serves(current.value, this.deps.settings.node, served.ownership.epoch)) {
          throw new StrataError(ErrorCode.FENCED, `vdisk ${served.vdisk.shape.id} changed owner; not recording ${what}`);
        }
        return change(current.value);
      },
      OWN_RECORD_ATTEMPTS,
    );
    served.ownership.revision = after!.revision;
  }

  /**
   * A snapshot of a served vDisk into `snapshotId`, a tentative snapshot object the
   * CLI created (snapshotOf names the vDisk, creatingSinceMs is set, same size): see
   * Vdisk.snapshot. Anything else is INVALID and changes nothing.
   */
  async snapshot(vdiskId: bigint, snapshotId: bigint, deadline: number): Promise<SnapshotResult> {
    const snap = await this.deps.config.get({ kind: 'vdisk', id: snapshotId });
    if (snap.kind !== 'vdisk' || snap.spec.snapshotOf !== vdiskId || snap.spec.creatingSinceMs === undefined) {
      throw new StrataError(ErrorCode.INVALID, `vdisk ${snapshotId} is not a snapshot of vdisk ${vdiskId} being created`);
    }
    const result = await this.serve(vdiskId, async (vdisk) => {
      // The vDisk may have grown since it was opened: the snapshot has the size at the cut.
      if (snap.spec.sizeBytes > vdisk.shape.sizeBytes) await this.catchUpSize(vdisk);
      if (snap.spec.sizeBytes !== vdisk.shape.sizeBytes || snap.spec.blockSizeBytes !== vdisk.shape.blockSizeBytes) {
        throw new StrataError(ErrorCode.INVALID, `snapshot ${snap.name} has another size or block size than vdisk ${vdiskId}`);
      }
      return vdisk.snapshot(snapshotId, deadline);
    });
    this.deps.log.info({ vdisk: String(vdiskId), snapshot: String(snapshotId), ...result }, 'snapshot cut');
    return result;
  }

  /** The fault tests' hold (settings.faultHoldAt), or undefined when unset. */
  private faultHold(vdiskId: bigint): ((step: FaultStep) => Promise<void>) | undefined {
    const at = this.deps.settings.faultHoldAt;
    if (at === undefined) return undefined;
    const [steps, ms] = at.split(':') as [string, string];
    const held = new Set(steps.split(','));
    return async (step) => {
      if (!held.has(step)) return;
      this.deps.log.warn({ vdisk: String(vdiskId), step, ms: Number(ms) }, `fault hold at ${step}`);
      await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    };
  }

  /** Drains every served vDisk and stops. */
  async stop(): Promise<void> {
    await Promise.all(
      [...this.served.values()].map(async (s) => {
        await s.vdisk.close();
      }),
    );
    this.served.clear();
    await this.link.stop();
  }
}

/**
 * A request fenced here (its oplog append found another's message after the one it
 * expected, or an extent store knows a newer epoch) goes to the vDisk's owner again:
 * NOT_OWNER, which the io-director retries after learning who owns it. Its write was
 * not stored by this append (or, if an earlier attempt was, the new owner replayed it,
 * and writing it again changes nothing). Seen in the soak: a controller that reopened a
 * vDisk at the same epoch fenced the appends still in flight from its previous view,
 * and FENCED reached the client as EIO.
 */
export function fencedAsNotOwner(err: unknown, vdiskId: bigint): unknown {
  if (!isStrataError(err, ErrorCode.FENCED)) return err;
  return new StrataError(ErrorCode.NOT_OWNER, `vdisk ${vdiskId}: this request was fenced (${err.message}); send it to the owner again`, { cause: err });
}
