// One replica of the configuration database. Every replica keeps a watched copy of
// the `cfg` bucket and contends for the `role.config` lease; the holder leads:
//   1. it takes the stream fence on `cfg` and writes its takeover marker, so that a
//      previous leader's next write fails (FENCED) however late it wakes up;
//   2. it waits until its copy has caught up with its own marker;
//   3. it subscribes to `strata.cfg.*` (no queue group: only a leader subscribes,
//      and a replica that is not sure it leads stays silent) and runs the failure
//      detector over the nodes' heartbeats.
// Losing the lease undoes 3 at once; the fence makes sure nothing slips through.
import { performance } from 'node:perf_hooks';
import { NoReply, type Bus, type Service } from '@strata/bus';
import type { z } from 'zod';
import { validate } from '@strata/codec';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { IdAllocator } from '@strata/ids';
import { StreamFence, WatchCache, type Entry, type TypedBucket } from '@strata/kv';
import { Lease, type LeaseBucket } from '@strata/lease';
import { FailureDetector, type Verdict } from '@strata/liveness';
import type { Logger } from '@strata/log';
import {
  CfgOp,
  EventType,
  Kind,
  type cfgEntry,
  cfgObject,
  createRequest,
  deleteRequest,
  getRequest,
  type heartbeat,
  keys,
  listRequest,
  statusRequest,
  subjects,
  updateRequest,
  type CfgEntry,
  type CfgObject,
  type CfgObjectWithRevision,
  type ObjectOf,
  type ClusterEvent,
  type StatusReply,
  type TakeoverRecord,
  type VdiskOwnership,
  type takeoverRecord,
  type vdiskOwnership,
} from '@strata/proto';
import type { EventLog } from '@strata/events';
import { FailoverCoordinator } from './failover';
import { checkDeletable, checkNameFree, checkReferences, resolve, type ConfigView } from './rules';
import type { ConfigSettings } from './settings';

type CfgBucket = TypedBucket<typeof cfgEntry>;
type HbBucket = TypedBucket<typeof heartbeat>;

export interface ReplicaDeps {
  bus: Bus;
  cfg: CfgBucket;
  hb: HbBucket;
  own: LeaseBucket;
  /** The same `own` bucket, read as vDisk ownership records and as takeover records. */
  owners: TypedBucket<typeof vdiskOwnership>;
  takeovers: TypedBucket<typeof takeoverRecord>;
  ids: IdAllocator;
  events: EventLog;
  log: Logger;
  settings: ConfigSettings;
  /** Told of every takeover this replica ran, as leader, to its end: how long it took (metrics). */
  onTakeoverDone?: (ms: number) => void;
}

function isObject(entry: CfgEntry): entry is CfgObject {
  return 'kind' in entry;
}

/** The objects of the watched cfg bucket, as the rules see them. */
class CacheView implements ConfigView {
  constructor(private readonly cache: WatchCache<CfgEntry>) {}

  private withRevision<K extends Kind>(kind: K, e: Entry<CfgEntry> | undefined): ObjectOf<K> | undefined {
    if (e === undefined || !isObject(e.value) || e.value.kind !== kind) return undefined;
    return { ...e.value, revision: e.revision } as ObjectOf<K>;
  }

  get<K extends Kind>(kind: K, id: bigint): ObjectOf<K> | undefined {
    return this.withRevision(kind, this.cache.get(keys.object(kind, id)));
  }

  byName<K extends Kind>(kind: K, name: string): ObjectOf<K> | undefined {
    return this.list(kind).find((o) => o.name === name);
  }

  list<K extends Kind>(kind: K): ObjectOf<K>[] {
    const out: ObjectOf<K>[] = [];
    for (const e of this.cache.values()) {
      const o = this.withRevision(kind, e);
      if (o !== undefined) out.push(o);
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

/** State held only while this replica leads. */
interface Leadership {
  epoch: number;
  fence: StreamFence<typeof cfgEntry>;
  services: Service[];
  detector: FailureDetector;
  detectorTimer: NodeJS.Timeout | undefined;
  stopHeartbeatWatch: () => void;
  failover: FailoverCoordinator;
  sweepTimer: NodeJS.Timeout | undefined;
}

export class ConfigReplica {
  private cache!: WatchCache<CfgEntry>;
  private hbCache!: WatchCache<z_Heartbeat>;
  /** The heartbeat watch's revision and when it last moved (resumeStalledHeartbeatWatch). */
  private hbWatchProgress = { revision: 0, sinceMs: 0 };
  private ownership!: WatchCache<VdiskOwnership>;
  private recordedTakeovers!: WatchCache<TakeoverRecord>;
  private view!: CacheView;
  private lease!: Lease;
  private leadership: Leadership | undefined;
  /** Writes are applied one at a time (the fence needs it); this is the queue. */
  private writeChain: Promise<unknown> = Promise.resolve();
  private pendingWrites = 0;
  private stopped = false;

  constructor(private readonly deps: ReplicaDeps) {}

  /** Loads the caches and starts contending for leadership. */
  async start(): Promise<void> {
    const { cfg, hb, own, settings, log } = this.deps;
    this.cache = await WatchCache.start(cfg, { onBadEntry: (key, err) => log.error({ key, err }, 'unreadable cfg entry skipped') });
    this.hbCache = await WatchCache.start(hb, { key: 'node.>', onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable heartbeat skipped') });
    this.ownership = await WatchCache.start(this.deps.owners, { key: keys.vdiskOwnershipAll, onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable ownership record skipped') });
    this.recordedTakeovers = await WatchCache.start(this.deps.takeovers, { key: 'takeover.>', onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable takeover record skipped') });
    await Promise.all([this.cache.ready, this.hbCache.ready, this.ownership.ready, this.recordedTakeovers.ready]);
    this.view = new CacheView(this.cache);
    this.lease = new Lease(own, {
      key: keys.configLeaderLease,
      holder: settings.replica,
      ttlMs: settings.leaseTtlMs,
      log,
      onAcquired: (epoch) => void this.lead(epoch),
      onLost: (epoch, why) => void this.stepDown(epoch, why),
    });
    this.lease.start();
  }

  /** True while this replica leads, by its own clock. */
  isLeader(): boolean {
    return this.leadership !== undefined && this.lease.isHeld();
  }

  /** Takeovers this replica runs now (none unless it leads). */
  get takeoversInProgress(): number {
    return this.leadership?.failover.inProgress ?? 0;
  }

  /** The nodes by their recorded liveness, as this replica's copy of the config has them. */
  nodeLiveness(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const n of this.view.list('node')) counts.set(n.status.liveness, (counts.get(n.status.liveness) ?? 0) + 1);
    return counts;
  }

  get epoch(): number | undefined {
    return this.leadership?.epoch;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.leadership !== undefined) await this.stepDown(this.leadership.epoch, 'shutting down');
    await this.lease?.stop({ release: true });
    this.cache?.stop();
    this.hbCache?.stop();
    this.ownership?.stop();
    this.recordedTakeovers?.stop();
  }

  // ---- Leadership ---------------------------------------------------------------

  /** Releases the leader lease without leading, and contends for it again (unless stopping). */
  private async abdicate(): Promise<void> {
    await this.lease.stop({ release: true });
    if (!this.stopped) this.lease.start();
  }

  private async lead(epoch: number): Promise<void> {
    const { log, cfg, bus, settings } = this.deps;
    let fence: StreamFence<typeof cfgEntry> | undefined;
    // Another leader may write between our reading the last sequence and our marker;
    // then our lease is gone too and the loop ends.
    for (let attempt = 0; attempt < 5 && this.lease.epoch === epoch; attempt++) {
      try {
        fence = await StreamFence.take(cfg);
        await fence.put(keys.cfgLeader, { holder: settings.replica, epoch, atMs: Date.now() });
        break;
      } catch (err) {
        fence = undefined;
        log.warn({ err, epoch }, 'could not write the takeover marker');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (fence === undefined || this.lease.epoch !== epoch || this.stopped) {
      log.warn({ epoch }, 'leadership abandoned before it began');
      // Still holding the lease (the marker could not be written: JetStream electing
      // leaders as a partition heals), it must let it go, or no replica would lead
      // while it kept renewing a lease it does not use.
      if (fence === undefined && this.lease.epoch === epoch) await this.abdicate();
      return;
    }
    if (!(await this.catchUp(fence.sequence, settings.leaseTtlMs))) {
      log.error({ epoch, sequence: fence.sequence }, 'cache did not catch up with the takeover marker; abdicating');
      await this.abdicate();
      return;
    }
    const startedAtMs = performance.now();
    const leadership: Leadership = {
      epoch,
      fence,
      services: [],
      detector: new FailureDetector(settings.deadTimeoutMs, startedAtMs),
      detectorTimer: undefined,
      stopHeartbeatWatch: () => undefined,
      failover: new FailoverCoordinator({
        bus,
        nc: bus.nc,
        owners: this.deps.owners,
        takeovers: this.deps.takeovers,
        ownership: this.ownership,
        recorded: this.recordedTakeovers,
        nodes: () => this.view.list('node').map((n) => ({ name: n.name, liveness: n.status.liveness })),
        vdiskName: (id) => this.view.get('vdisk', id)?.name,
        emit: (event) => this.emit(event),
        leading: () => this.leadership === leadership && this.lease.isHeld(),
        log,
        stepTimeoutMs: settings.takeoverStepTimeoutMs,
        ...(this.deps.onTakeoverDone === undefined ? {} : { onTakeoverDone: this.deps.onTakeoverDone }),
      }),
      sweepTimer: undefined,
    };
    this.leadership = leadership;
    leadership.stopHeartbeatWatch = this.watchHeartbeats(leadership);
    const serve = <S extends z.ZodType>(op: CfgOp, schema: S, handler: (req: z.output<S>) => unknown, kind: 'read' | 'write'): Promise<Service> =>
      bus.serve(
        subjects.cfg(op),
        schema,
        async (req, ctx) => {
          this.assertLeader();
          // Writes check freshness in their queue; reads here.
          if (kind === 'read') await this.ensureFresh(leadership, ctx.remainingMs());
          return handler(req);
        },
        { maxInFlight: settings.requestsInFlightMax },
      );
    leadership.services = await Promise.all([
      serve(CfgOp.create, createRequest, (req) => this.create(req), 'write'),
      serve(CfgOp.get, getRequest, (req) => resolve(this.view, req.kind, req), 'read'),
      serve(CfgOp.list, listRequest, (req) => ({ objects: this.view.list(req.kind) }), 'read'),
      serve(CfgOp.update, updateRequest, (req) => this.update(req), 'write'),
      serve(CfgOp.delete, deleteRequest, (req) => this.remove(req), 'write'),
      serve(CfgOp.status, statusRequest, () => this.status(), 'read'),
    ]);
    if (this.leadership !== leadership) {
      // Lost the lease while subscribing.
      await Promise.all(leadership.services.map((svc) => svc.stop()));
      return;
    }
    this.scheduleDetector(leadership);
    this.scheduleSweep(leadership, 0);
    log.info({ epoch }, 'leading the configuration database');
    await this.emit({ type: EventType.leaderElected, cause: 'election', message: `${settings.replica} leads the configuration database at epoch ${epoch}` });
  }

  private async stepDown(epoch: number, why: string): Promise<void> {
    const leadership = this.leadership;
    if (leadership === undefined || leadership.epoch !== epoch) return;
    this.leadership = undefined;
    clearTimeout(leadership.detectorTimer);
    clearTimeout(leadership.sweepTimer);
    leadership.stopHeartbeatWatch();
    await Promise.all(leadership.services.map((svc) => svc.stop()));
    this.deps.log.warn({ epoch, why }, 'stepped down as config leader');
  }

  /** Runs `write` after the writes queued before it, if this replica still leads. */
  private enqueueWrite<T>(write: (leadership: Leadership) => Promise<T>): Promise<T> {
    if (this.pendingWrites >= this.deps.settings.writeQueueMax) {
      return Promise.reject(new StrataError(ErrorCode.QUEUE_FULL, `config leader has ${this.pendingWrites} writes queued`));
    }
    this.pendingWrites++;
    const run = this.writeChain.then(async () => {
      const leadership = this.leadership;
      if (leadership === undefined || !this.lease.isHeld()) throw new StrataError(ErrorCode.UNAVAILABLE, 'this replica no longer leads');
      try {
        await this.ensureFresh(leadership, 5_000);
        return await write(leadership);
      } catch (err) {
        if (isStrataError(err, ErrorCode.FENCED)) await this.onFenced(leadership);
        throw err;
      }
    });
    this.writeChain = run.catch(() => undefined).finally(() => this.pendingWrites--);
    return run;
  }

  /**
   * A write failed its fence. Either another leader took over (then our lease is gone
   * too, and we stay down), or a write of ours was stored although its acknowledgement
   * was lost (a JetStream leader change), so our fence expects a stale sequence. In
   * that case we still hold the lease and simply lead again: a new fence, a new marker.
   */
  private async onFenced(leadership: Leadership): Promise<void> {
    this.deps.log.warn({ epoch: leadership.epoch }, 'a write was fenced; re-establishing leadership if the lease is still ours');
    await this.stepDown(leadership.epoch, 'fenced');
    if (this.lease.epoch === leadership.epoch && !this.stopped) void this.lead(leadership.epoch);
  }

  /** Stores `object` through the fence. */
  private async store(leadership: Leadership, object: CfgObject): Promise<CfgObjectWithRevision> {
    const revision = await leadership.fence.put(keys.object(object.kind, object.id), object);
    return { ...object, revision };
  }

  /**
   * Waits until the cache holds everything this leader wrote (its fence sequence):
   * the leader is the only writer, so that is the newest state. Reads answer from the
   * cache and writes are checked against it, so neither may run on a stale one. A
   * watch that does not catch up within a moment (its server died) is resumed from
   * the last revision it applied; if even that fails in time, UNAVAILABLE.
   */
  /**
   * Waits until the cache has applied `sequence`. A watch whose consumer lived on a
   * nats-server that died never catches up by itself: after a short wait it is
   * resumed from the last revision it applied, then waited for again. Without the
   * resume a new leader would abdicate, win the lease again and abdicate forever.
   */
  private async catchUp(sequence: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    if (await this.cache.waitForRevision(sequence, Math.min(500, timeoutMs))) return true;
    this.deps.log.warn({ have: this.cache.revision, want: sequence }, 'config cache is behind the takeover marker; resuming its watch');
    try {
      await this.cache.resume();
    } catch (err) {
      this.deps.log.warn({ err }, 'could not resume the config watch');
      return false;
    }
    return this.cache.waitForRevision(sequence, Math.max(0, deadline - performance.now()));
  }

  private async ensureFresh(leadership: Leadership, timeoutMs: number): Promise<void> {
    const target = leadership.fence.sequence;
    if (this.cache.revision >= target) return;
    const deadline = performance.now() + timeoutMs;
    if (await this.cache.waitForRevision(target, Math.min(500, timeoutMs))) return;
    this.deps.log.warn({ have: this.cache.revision, want: target }, 'config cache is behind; resuming its watch');
    try {
      await this.cache.resume();
    } catch (err) {
      throw new StrataError(ErrorCode.UNAVAILABLE, `cannot resume the config watch: ${(err as Error).message}`, { cause: err });
    }
    if (await this.cache.waitForRevision(target, Math.max(0, deadline - performance.now()))) return;
    throw new StrataError(ErrorCode.UNAVAILABLE, `the config leader's view is behind (at ${this.cache.revision}, needs ${target}); try again`);
  }

  /**
   * Records an event after the change it describes has been committed. A failure
   * here must not turn a committed change into an error reply, so the append is
   * retried a few times and then given up with a log line (the event is lost; the
   * change itself is in the cfg bucket's history).
   */
  private async emit(event: Omit<ClusterEvent, 'atMs' | 'epoch'>): Promise<void> {
    const full = { ...event, atMs: Date.now(), epoch: this.leadership?.epoch ?? 0 };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deps.events.append(full);
        return;
      } catch (err) {
        if (attempt >= 3) {
          this.deps.log.error({ err, event: { ...full, id: full.id === undefined ? undefined : String(full.id) } }, 'could not record an event; it is lost');
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  // ---- Requests -----------------------------------------------------------------

  /**
   * A replica that wakes from a pause may keep its subscriptions for a moment; it
   * must not answer as leader, so it sends no reply at all and the real leader's
   * reply is the one the client gets.
   */
  private assertLeader(): void {
    if (!this.isLeader()) throw new NoReply('not the config leader');
  }

  private create(req: z.output<typeof createRequest>): Promise<CfgObjectWithRevision> {
    return this.enqueueWrite(async (leadership) => {
      checkNameFree(this.view, req.kind, req.name);
      checkReferences(this.view, req);
      const id = await this.deps.ids.allocate();
      const now = Date.now();
      const object = validate(
        {
          ...req,
          id,
          ...(req.kind === Kind.node ? { status: { liveness: 'unknown', incarnation: 0, changedAtMs: now } } : {}),
          createdAtMs: now,
          updatedAtMs: now,
          epoch: leadership.epoch,
        },
        cfgObject,
      );
      const stored = await this.store(leadership, object);
      await this.emit({ type: EventType.created, kind: req.kind, id, name: req.name, cause: 'operator', message: `${req.kind} ${req.name} created` });
      return stored;
    });
  }

  private update(req: z.output<typeof updateRequest>): Promise<CfgObjectWithRevision> {
    return this.enqueueWrite(async (leadership) => {
      const existing = resolve(this.view, req.kind, req);
      if (req.revision !== undefined && req.revision !== existing.revision) {
        throw new StrataError(ErrorCode.CONFLICT, `${req.kind} ${existing.name} is at revision ${existing.revision}, not ${req.revision}`);
      }
      checkReferences(this.view, req, existing);
      const { revision: _revision, ...unchanged } = existing;
      const object = validate({ ...unchanged, spec: req.spec, updatedAtMs: Date.now(), epoch: leadership.epoch }, cfgObject);
      const stored = await this.store(leadership, object);
      await this.emit({ type: EventType.updated, kind: req.kind, id: existing.id, name: existing.name, cause: 'operator', message: `${req.kind} ${existing.name} updated` });
      return stored;
    });
  }

  private remove(req: z.output<typeof deleteRequest>): Promise<{ deleted: CfgObjectWithRevision }> {
    return this.enqueueWrite(async (leadership) => {
      const existing = resolve(this.view, req.kind, req);
      if (req.revision !== undefined && req.revision !== existing.revision) {
        throw new StrataError(ErrorCode.CONFLICT, `${req.kind} ${existing.name} is at revision ${existing.revision}, not ${req.revision}`);
      }
      checkDeletable(this.view, existing);
      await leadership.fence.delete(keys.object(existing.kind, existing.id));
      await this.emit({ type: EventType.deleted, kind: existing.kind, id: existing.id, name: existing.name, cause: 'operator', message: `${existing.kind} ${existing.name} deleted` });
      return { deleted: existing };
    });
  }

  private status(): StatusReply {
    const counts: Record<string, number> = {};
    for (const kind of Object.values(Kind)) counts[kind] = this.view.list(kind).length;
    const nodes = { alive: 0, dead: 0, unknown: 0 };
    for (const n of this.view.list('node')) nodes[n.status.liveness]++;
    return { leader: this.deps.settings.replica, epoch: this.leadership?.epoch ?? 0, counts, nodes };
  }

  // ---- Failure detector ------------------------------------------------------------

  private watchHeartbeats(leadership: Leadership): () => void {
    const feed = (key: string, entry: Entry<z_Heartbeat> | undefined): void => {
      if (entry === undefined || !key.startsWith('node.')) return;
      const id = BigInt(key.slice('node.'.length));
      leadership.detector.observe(id, { incarnation: entry.value.incarnation, seq: entry.value.seq }, performance.now());
    };
    // What the cache holds now counts as seen at the start of this leadership.
    for (const e of this.hbCache.values()) feed(e.key, e);
    return this.hbCache.onChange(feed);
  }

  private scheduleDetector(leadership: Leadership): void {
    leadership.detectorTimer = setTimeout(() => {
      void this.runDetector(leadership).finally(() => {
        if (this.leadership === leadership) this.scheduleDetector(leadership);
      });
    }, this.deps.settings.detectorTickMs);
  }

  /**
   * Looks for vDisks of dead nodes and for recorded takeovers, now after `delayMs`
   * and then every `failoverSweepMs` (a dead verdict also sweeps at once).
   */
  private scheduleSweep(leadership: Leadership, delayMs = this.deps.settings.failoverSweepMs): void {
    clearTimeout(leadership.sweepTimer);
    leadership.sweepTimer = setTimeout(() => {
      try {
        leadership.failover.sweep();
      } catch (err) {
        this.deps.log.warn({ err }, 'failover sweep failed');
      }
      if (this.leadership === leadership) this.scheduleSweep(leadership);
    }, delayMs);
  }

  /**
   * Every live node writes its heartbeat every heartbeatIntervalMs, so a heartbeat
   * watch that has delivered nothing for three intervals has most likely stalled (its
   * consumer died with a nats-server): it is restarted from its last revision, at
   * most once per three intervals. When every node really is silent, that costs one
   * new consumer now and then. Without it, nodes declared dead while JetStream was
   * electing leaders were never seen alive again.
   */
  private async resumeStalledHeartbeatWatch(nowMs: number): Promise<void> {
    const revision = this.hbCache.revision;
    if (revision !== this.hbWatchProgress.revision) {
      this.hbWatchProgress = { revision, sinceMs: nowMs };
      return;
    }
    if (nowMs - this.hbWatchProgress.sinceMs < 3 * this.deps.settings.heartbeatIntervalMs) return;
    this.hbWatchProgress.sinceMs = nowMs;
    this.deps.log.warn({ revision }, 'heartbeat watch has delivered nothing for three heartbeat intervals; resuming it');
    await this.hbCache.resume().catch((err: unknown) => this.deps.log.warn({ err }, 'could not resume the heartbeat watch'));
  }

  private async runDetector(leadership: Leadership): Promise<void> {
    await this.resumeStalledHeartbeatWatch(performance.now());
    const nodes = this.view.list('node').map((n) => ({ id: n.id, liveness: n.status.liveness, incarnation: n.status.incarnation }));
    const verdicts = leadership.detector.evaluate(nodes, performance.now());
    for (const verdict of verdicts) {
      if (verdict.kind === 'dead' && (await this.heartbeatWatchIsBehind(leadership, verdict.id))) continue;
      try {
        await this.enqueueWrite((l) => this.apply(l, verdict));
      } catch (err) {
        this.deps.log.warn({ err, verdict: { ...verdict, id: String(verdict.id) } }, 'could not record a liveness change');
        return;
      }
    }
  }

  /**
   * Whether a dead verdict comes from the heartbeat watch rather than the node. The
   * detector sees heartbeats only through the watched copy of `hb`, and a watch whose
   * consumer died with a nats-server delivers nothing more while the nodes beat on:
   * under kill -9 of a nats-server this leader once declared all three live nodes dead
   * at once. So before a node is declared dead its heartbeat is read from the bucket
   * itself. A newer one than the copy holds counts as seen now, and the watch is
   * restarted. When the bucket cannot be read, the verdict waits for the next tick:
   * a leader that cannot read KV could not record it either.
   */
  private async heartbeatWatchIsBehind(leadership: Leadership, node: bigint): Promise<boolean> {
    const key = keys.nodeHeartbeat(node);
    const watched = this.hbCache.get(key)?.revision ?? 0;
    let latest: Entry<z_Heartbeat> | undefined;
    try {
      // The bucket's entry when newer than the copy's, the watch then resumed (WatchCache.latest).
      latest = await this.hbCache.latest(key);
    } catch (err) {
      this.deps.log.warn({ err, node: String(node) }, 'could not read a heartbeat before declaring its node dead; trying again at the next tick');
      return true;
    }
    if (latest === undefined || latest.revision <= watched) return false;
    this.deps.log.warn({ node: String(node), watched, stored: latest.revision }, 'heartbeat watch was behind the bucket; resumed it instead of declaring the node dead');
    leadership.detector.observe(node, { incarnation: latest.value.incarnation, seq: latest.value.seq }, performance.now());
    return true;
  }

  private async apply(leadership: Leadership, verdict: Verdict): Promise<void> {
    const node = this.view.get('node', verdict.id);
    if (node === undefined) return;
    const liveness = verdict.kind === 'dead' ? 'dead' : 'alive';
    const { revision: _revision, ...object } = node;
    await this.store(leadership, { ...object, status: { liveness, incarnation: verdict.incarnation, changedAtMs: Date.now() }, updatedAtMs: Date.now(), epoch: leadership.epoch });
    const message =
      verdict.kind === 'dead'
        ? `node ${node.name} declared dead after ${Math.round(verdict.silentMs)} ms without a heartbeat (incarnation ${verdict.incarnation})`
        : verdict.kind === 'alive'
          ? `node ${node.name} is alive (incarnation ${verdict.incarnation}, was ${verdict.previous})`
          : `node ${node.name} restarted (incarnation ${verdict.previousIncarnation} -> ${verdict.incarnation})`;
    const type = verdict.kind === 'dead' ? EventType.nodeDead : verdict.kind === 'alive' ? EventType.nodeAlive : EventType.nodeRestarted;
    await this.emit({ type, kind: 'node', id: node.id, name: node.name, incarnation: verdict.incarnation, cause: 'failure-detector', message });
    this.deps.log.info({ node: node.name, verdict: verdict.kind, incarnation: verdict.incarnation }, message);
    // Its vDisks move now, once the cache shows the verdict the coordinator reads.
    if (verdict.kind === 'dead') {
      await this.cache.waitForRevision(leadership.fence.sequence, 1_000);
      this.scheduleSweep(leadership, 0);
    }
  }
}

type z_Heartbeat = z.output<typeof heartbeat>;
