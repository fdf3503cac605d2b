// One metadata shard: it heartbeats, counts the live shards, and every tick applies
// the balancing rule of balance.ts (contend for partitions up to its fair share, hand
// over the excess). Each partition it holds by lease, it serves on
// `strata.md.<partition>.<op>`; losing the lease stops that at once and drops the
// partition's cache. A watched copy of the vDisk ownership records fences the
// writes of deposed owners (ownership.ts). The I/O loop lives here; the decisions
// are pure, elsewhere.
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import type { Bus, Service } from '@strata/bus';
import { ErrorCode, StrataError, assert, isStrataError } from '@strata/errors';
import { WatchCache, type Entry, type TypedBucket } from '@strata/kv';
import { Lease, type LeaseBucket, type LeaseRecord, type Observation } from '@strata/lease';
import type { Logger } from '@strata/log';
import { MD_NOT_HELD_HINT } from '@strata/md-client';
import type { Metrics } from '@strata/metrics';
import { MD_PARTITIONS, MdMap, MdOp, keys, mdDeleteRequest, mdGetRequest, mdPutRequest, subjects, type MdFence, type vdiskOwnership } from '@strata/proto';
import { decideBalance, type BalanceDecision, type PartitionRecord } from './balance';
import { MdCache } from './cache';
import { OwnershipFence } from './ownership';
import { livePeers, MISSED_BEATS_MAX, observePeer, observeRevision, type PeerObservation, type ShardHeartbeat, type shardHeartbeat } from './peers';
import { PartitionRequests } from './requests';
import type { ShardSettings } from './settings';
import { SpanAttr, recordingSpan } from '@strata/tracing';
import { MdStore, type MdBuckets } from './store';
import { MapWatch } from './watch';

/** The NATS queue group of the shards: if two ever subscribe to one partition, each request reaches only one. */
const QUEUE_GROUP = 'strata-md';

/** How long a release waits for the partition's requests in flight before letting go of the lease anyway. */
const RELEASE_DRAIN_MS = 2_000;

export interface ShardDeps {
  bus: Bus;
  md: MdBuckets;
  own: LeaseBucket;
  /** The same `own` bucket, read as vDisk ownership records (`vdisk.<id>`): the epochs that fence writes. */
  ownership: TypedBucket<typeof vdiskOwnership>;
  hb: TypedBucket<typeof shardHeartbeat>;
  log: Logger;
  metrics?: Metrics;
  settings: ShardSettings;
}

/** This shard's relation to one partition. */
interface Tenure {
  partition: number;
  lease: Lease;
  /** contending: the lease is not ours yet; serving: it is; releasing: being handed over. */
  state: 'contending' | 'serving' | 'releasing';
  epoch: number | undefined;
  services: Service[];
  inFlight: number;
}

export class MetadataShard {
  private readonly store: MdStore;
  private readonly cache: MdCache;
  private readonly watches: Record<MdMap, MapWatch>;
  private readonly requests: PartitionRequests;
  private readonly tenures = new Map<number, Tenure>();
  private readonly leaseObservations = new Map<number, Observation>();
  private readonly peerObservations = new Map<string, PeerObservation>();
  private hbCache: WatchCache<ShardHeartbeat> | undefined;
  /** Started by start(), before any partition is served, so no fenced write goes unchecked. */
  private fence: OwnershipFence | undefined;
  private removeHbListener: (() => void) | undefined;
  /** Our own last heartbeat's revision, and how many ticks the hb watch has lagged behind it. */
  private ownBeatRevision = 0;
  private hbWatchLagTicks = 0;
  private tickTimer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private inFlight = 0;
  /** Partition hand-overs under way, awaited by stop(). */
  private readonly pending = new Set<Promise<void>>();
  private stopped = false;
  private lastShare = 0;
  private countedHits = 0;
  private countedMisses = 0;
  private readonly meter;

  constructor(private readonly deps: ShardDeps) {
    const { settings, log } = deps;
    this.store = new MdStore(deps.md);
    this.cache = new MdCache(settings.cacheEntriesMax);
    // A shard's own write not delivered by its watch within a TTL means the watch is stuck.
    const watch = (map: MdMap): MapWatch => new MapWatch(map, this.store, this.cache, log, settings.leaseTtlMs);
    this.watches = { vdisk: watch(MdMap.vdisk), extent: watch(MdMap.extent), egroup: watch(MdMap.egroup) };
    this.requests = new PartitionRequests(this.store, this.cache, this.watches, { admit: (fence) => this.admitFence(fence) });
    const m = deps.metrics;
    this.meter =
      m === undefined
        ? undefined
        : {
            requests: m.counter('strata_md_requests_total', 'Metadata requests by operation and outcome.', ['op', 'code']),
            seconds: m.histogram('strata_md_request_seconds', 'Time to serve a metadata request.', ['op'], [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2]),
            partitions: m.gauge('strata_md_partitions_held', 'Metadata partitions this shard holds.'),
            share: m.gauge('strata_md_fair_share', 'Partitions this shard should hold: ceil(partitions / live shards).'),
            cacheEntries: m.gauge('strata_md_cache_entries', 'Entries in the metadata cache.'),
            cacheHits: m.counter('strata_md_cache_hits_total', 'Reads answered from the cache.'),
            cacheMisses: m.counter('strata_md_cache_misses_total', 'Reads that went to KV.'),
          };
  }

  /** Starts the watches and the balancing loop; partitions are taken on the first tick. */
  async start(): Promise<void> {
    const { hb, log } = this.deps;
    await Promise.all(Object.values(this.watches).map((w) => w.start()));
    this.fence = await OwnershipFence.start(this.deps.ownership, log);
    this.hbCache = await WatchCache.start(hb, { key: keys.shardHeartbeat('>'), onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable shard heartbeat skipped') });
    await this.hbCache.ready;
    const startMs = performance.now();
    for (const e of this.hbCache.values()) this.observeHeartbeat(e.key, e, startMs);
    this.removeHbListener = this.hbCache.onChange((key, entry) => this.observeHeartbeat(key, entry, performance.now()));
    this.schedule(0);
  }

  /** Stops serving and releases every partition, so survivors need not wait for a TTL. */
  async stop(): Promise<void> {
    const { hb, settings, log } = this.deps;
    this.stopped = true;
    clearTimeout(this.tickTimer);
    await this.ticking;
    // Leave the live count first, so peers take what we release instead of waiting
    // for our heartbeat to age out.
    try {
      await hb.delete(keys.shardHeartbeat(settings.shard));
    } catch (err) {
      log.warn({ err }, 'could not remove our heartbeat; peers will count us gone after it ages');
    }
    for (const t of this.tenures.values()) {
      if (t.state === 'contending') this.background(this.abandon(t));
      else if (t.state === 'serving') this.background(this.release(t));
    }
    // Releases and hand-overs already under way finish too (each is bounded by KV timeouts).
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    for (const w of Object.values(this.watches)) w.stop();
    this.fence?.stop();
    this.removeHbListener?.();
    this.hbCache?.stop();
  }

  /** The fence check of a write. */
  private admitFence(fence: MdFence): void {
    // Partitions are taken on the first tick, which start() schedules after the watch is ready.
    assert(this.fence !== undefined, 'the ownership watch runs before any partition is served');
    this.fence.admit(fence);
  }

  /** Partitions this shard serves now. */
  heldPartitions(): number[] {
    return [...this.tenures.values()]
      .filter((t) => this.isServing(t))
      .map((t) => t.partition)
      .sort((a, b) => a - b);
  }

  // ---- The balancing loop -------------------------------------------------------------

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.tickTimer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((err: unknown) => this.deps.log.error({ err }, 'balancing tick failed'))
        .finally(() => this.schedule(this.deps.settings.heartbeatIntervalMs));
    }, delayMs);
  }

  private async tick(): Promise<void> {
    await this.beat();
    const records = await this.readLeaseRecords();
    if (records === undefined || this.stopped) return;
    const nowMs = performance.now();
    const { settings } = this.deps;
    this.prunePeers(nowMs);
    const peers = livePeers(this.peerObservations, settings.shard, nowMs);
    const held = new Set<number>();
    const contending = new Set<number>();
    for (const t of this.tenures.values()) {
      if (t.state === 'serving') held.add(t.partition);
      else if (t.state === 'contending') contending.add(t.partition);
    }
    const decision = decideBalance({
      me: settings.shard,
      partitionCount: MD_PARTITIONS,
      ttlMs: settings.leaseTtlMs,
      peers,
      held,
      contending,
      records: records.view,
    });
    this.lastShare = decision.share;
    if (decision.acquire.length + decision.release.length + decision.abandon.length > 0) {
      this.deps.log.info(
        { share: decision.share, peers: Object.fromEntries(peers), held: [...held], acquire: decision.acquire, release: decision.release, abandon: decision.abandon },
        'rebalancing metadata partitions',
      );
    }
    await this.apply(decision, records.entries);
    for (const w of Object.values(this.watches)) w.checkStall(performance.now());
    this.updateGauges();
  }

  private async apply(decision: BalanceDecision, entries: ReadonlyMap<number, Entry<LeaseRecord> | null>): Promise<void> {
    for (const p of decision.abandon) {
      const t = this.tenures.get(p);
      if (t?.state === 'contending') this.background(this.abandon(t));
    }
    // Releases run in the background: each waits for its requests in flight.
    for (const p of decision.release) {
      const t = this.tenures.get(p);
      if (t?.state === 'serving') this.background(this.release(t));
    }
    await Promise.all(decision.acquire.map((a) => this.acquire(a.partition, a.reapRevision, entries.get(a.partition) ?? null)));
  }

  /** Writes this shard's heartbeat, and restarts the heartbeat watch if it missed our last one twice. */
  private async beat(): Promise<void> {
    const { hb, settings, log } = this.deps;
    if (this.hbCache !== undefined && this.ownBeatRevision > 0) {
      this.hbWatchLagTicks = this.hbCache.revision < this.ownBeatRevision ? this.hbWatchLagTicks + 1 : 0;
      if (this.hbWatchLagTicks >= 2) {
        log.warn({ have: this.hbCache.revision, want: this.ownBeatRevision }, 'heartbeat watch is behind; resuming it');
        this.hbWatchLagTicks = 0;
        await this.hbCache.resume().catch((err: unknown) => log.warn({ err }, 'could not resume the heartbeat watch'));
      }
    }
    try {
      this.ownBeatRevision = await hb.put(keys.shardHeartbeat(settings.shard), {
        atMs: Date.now(),
        partitions: this.heldPartitions(),
        intervalMs: settings.heartbeatIntervalMs,
      });
    } catch (err) {
      log.warn({ err }, 'heartbeat failed');
    }
  }

  /** Reads every partition's lease record and updates how long each has been silent. */
  private async readLeaseRecords(): Promise<{ view: PartitionRecord[]; entries: Map<number, Entry<LeaseRecord> | null> } | undefined> {
    const { own, log } = this.deps;
    let read: (Entry<LeaseRecord> | null)[];
    try {
      read = await Promise.all(Array.from({ length: MD_PARTITIONS }, (_, p) => own.get(keys.mdPartition(p))));
    } catch (err) {
      log.warn({ err }, 'could not read the partition leases; not rebalancing this tick');
      return undefined;
    }
    // Measured after the reads: every revision seen existed before this instant.
    const nowMs = performance.now();
    const entries = new Map<number, Entry<LeaseRecord> | null>();
    const view = read.map((e, p): PartitionRecord => {
      entries.set(p, e);
      const revision = e?.revision ?? 0;
      const o = observeRevision(this.leaseObservations.get(p), revision, nowMs);
      this.leaseObservations.set(p, o);
      return { partition: p, holder: e?.value.holder ?? '', revision, silentMs: nowMs - o.sinceMs };
    });
    return { view, entries };
  }

  private observeHeartbeat(key: string, entry: Entry<ShardHeartbeat> | undefined, nowMs: number): void {
    const prefix = keys.shardHeartbeat('');
    if (!key.startsWith(prefix)) return;
    const name = key.slice(prefix.length);
    if (entry === undefined) this.peerObservations.delete(name);
    else this.peerObservations.set(name, observePeer(this.peerObservations.get(name), entry.revision, entry.value, nowMs));
  }

  /**
   * Forgets peers silent for ten times their live window, and removes their heartbeat
   * records (compare-and-set, so a shard that came back meanwhile keeps its own): a
   * bound on what we remember, and on what a starting shard loads.
   */
  private prunePeers(nowMs: number): void {
    const { hb, log } = this.deps;
    for (const [name, o] of this.peerObservations) {
      if (nowMs - o.sinceMs <= 10 * MISSED_BEATS_MAX * o.intervalMs) continue;
      this.peerObservations.delete(name);
      hb.delete(keys.shardHeartbeat(name), o.revision).catch((err: unknown) => {
        if (!isStrataError(err, ErrorCode.CONFLICT)) log.warn({ err, shard: name }, 'could not remove a dead shard’s heartbeat');
      });
    }
  }

  // ---- Partitions ---------------------------------------------------------------------

  private async acquire(partition: number, reapRevision: number | undefined, entry: Entry<LeaseRecord> | null): Promise<void> {
    const { own, settings, log } = this.deps;
    if (this.stopped || this.tenures.has(partition)) return;
    if (reapRevision !== undefined && entry !== null) {
      // The record has not moved for a whole TTL on our clock: its holder has stopped
      // acting (the rule of @strata/lease). Free it by compare-and-set at that revision,
      // so our lease takes it now rather than after a TTL of its own watching.
      try {
        await own.update(keys.mdPartition(partition), { ...entry.value, holder: '' }, reapRevision);
        log.info({ partition, holder: entry.value.holder, epoch: entry.value.epoch }, 'freed an expired partition lease');
      } catch (err) {
        if (!isStrataError(err, ErrorCode.CONFLICT)) log.warn({ err, partition }, 'could not free an expired partition lease');
        return;
      }
    }
    if (this.stopped || this.tenures.has(partition)) return;
    // The callbacks run only after start(), when `tenure` exists.
    const lease = new Lease(own, {
      key: keys.mdPartition(partition),
      holder: settings.shard,
      ttlMs: settings.leaseTtlMs,
      log,
      onAcquired: (epoch) => this.background(this.onAcquired(tenure, epoch)),
      onLost: (epoch, why) => this.background(this.onLost(tenure, epoch, why)),
    });
    const tenure: Tenure = { partition, lease, state: 'contending', epoch: undefined, services: [], inFlight: 0 };
    this.tenures.set(partition, tenure);
    tenure.lease.start();
  }

  private async onAcquired(tenure: Tenure, epoch: number): Promise<void> {
    const { partition } = tenure;
    if (this.stopped || this.tenures.get(partition) !== tenure || tenure.state !== 'contending') return;
    tenure.state = 'serving';
    tenure.epoch = epoch;
    // Start from nothing: whatever was cached under an earlier tenure may be stale.
    this.cache.dropPartition(partition);
    const services = await Promise.all([
      this.serveOp(tenure, MdOp.get, mdGetRequest, (req) => this.requests.get(partition, req)),
      this.serveOp(tenure, MdOp.put, mdPutRequest, (req) => this.requests.put(partition, req)),
      this.serveOp(tenure, MdOp.delete, mdDeleteRequest, (req) => this.requests.delete(partition, req)),
    ]);
    tenure.services = services;
    if (this.tenures.get(partition) !== tenure || tenure.state !== 'serving' || tenure.epoch !== epoch) {
      // Lost or released while subscribing.
      await Promise.all(services.map((s) => s.stop()));
      return;
    }
    this.deps.log.info({ partition, epoch }, 'serving metadata partition');
    this.updateGauges();
  }

  private async onLost(tenure: Tenure, epoch: number, why: string): Promise<void> {
    // A release in progress cleans up after itself.
    if (tenure.state === 'releasing' || this.tenures.get(tenure.partition) !== tenure) return;
    this.tenures.delete(tenure.partition);
    tenure.state = 'releasing';
    this.cache.dropPartition(tenure.partition);
    this.deps.log.warn({ partition: tenure.partition, epoch, why }, 'stopped serving metadata partition: lease lost');
    await Promise.all(tenure.services.map((s) => s.stop()));
    // The lease would go on contending; whether to contend again is the balancer's call.
    await tenure.lease.stop({ release: false });
    this.updateGauges();
  }

  /** Hands a held partition over: stop taking requests, let those in flight finish, then release the lease. */
  private async release(tenure: Tenure): Promise<void> {
    const { partition } = tenure;
    tenure.state = 'releasing';
    await Promise.all(tenure.services.map((s) => s.stop()));
    const deadline = performance.now() + RELEASE_DRAIN_MS;
    while (tenure.inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.cache.dropPartition(partition);
    await tenure.lease.stop({ release: true });
    if (this.tenures.get(partition) === tenure) this.tenures.delete(partition);
    this.deps.log.info({ partition, epoch: tenure.epoch }, 'released metadata partition');
    this.updateGauges();
  }

  /** Stops contending for a partition we do not hold. */
  private async abandon(tenure: Tenure): Promise<void> {
    tenure.state = 'releasing';
    // If the lease was won meanwhile, stop() hands it straight back.
    await tenure.lease.stop({ release: true });
    await Promise.all(tenure.services.map((s) => s.stop()));
    if (this.tenures.get(tenure.partition) === tenure) this.tenures.delete(tenure.partition);
  }

  /** Runs `work` without awaiting it here, logging a failure, and lets stop() wait for it. */
  private background(work: Promise<void>): void {
    const tracked = work.catch((err: unknown) => this.deps.log.error({ err }, 'partition hand-over failed'));
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  private isServing(tenure: Tenure): boolean {
    return this.tenures.get(tenure.partition) === tenure && tenure.state === 'serving' && tenure.lease.isHeld();
  }

  private serveOp<S extends z.ZodType, Rep>(tenure: Tenure, op: MdOp, schema: S, handle: (req: z.output<S>) => Promise<Rep>): Promise<Service> {
    const { bus, settings } = this.deps;
    const { partition } = tenure;
    return bus.serve(
      subjects.md(partition, op),
      schema,
      async (req, ctx) => {
        const startMs = performance.now();
        let code = 'OK';
        // On the bus's `handle strata.md.<partition>.<op>` span: which entry of which map.
        recordingSpan()?.setAttributes({
          [SpanAttr.mdPartition]: partition,
          [SpanAttr.mdMap]: (req as { map: string }).map,
          [SpanAttr.mdKey]: (req as { key: string }).key,
          'strata.md.op': op,
          'strata.md.shard': settings.shard,
        });
        try {
          // Refused before anything is done, so the client may send it again anywhere.
          if (!this.isServing(tenure)) {
            throw new StrataError(ErrorCode.UNAVAILABLE, `metadata partition ${partition} is not served here (any more)`, { hint: MD_NOT_HELD_HINT });
          }
          if (this.inFlight >= settings.requestsInFlightMax) {
            throw new StrataError(ErrorCode.QUEUE_FULL, `metadata shard ${settings.shard} has ${this.inFlight} requests in flight`);
          }
          // Nobody waits for the answer any more: doing the work would only risk a write the caller counts as failed.
          if (ctx.remainingMs() <= 0) throw new StrataError(ErrorCode.TIMEOUT, `the deadline of ${ctx.subject} passed before it was served`);
          this.inFlight++;
          tenure.inFlight++;
          try {
            return await handle(req);
          } finally {
            this.inFlight--;
            tenure.inFlight--;
          }
        } catch (err) {
          code = isStrataError(err) ? err.code : 'INTERNAL';
          throw err;
        } finally {
          this.meter?.requests.inc({ op, code });
          this.meter?.seconds.observe({ op }, (performance.now() - startMs) / 1_000);
          this.countCacheLookups();
        }
      },
      { queue: QUEUE_GROUP, maxInFlight: settings.requestsInFlightMax },
    );
  }

  private updateGauges(): void {
    if (this.meter === undefined) return;
    this.meter.partitions.set(this.heldPartitions().length);
    this.meter.share.set(this.lastShare);
    this.meter.cacheEntries.set(this.cache.size);
    this.countCacheLookups();
  }

  /** Moves the cache's own hit and miss counts into the metrics. */
  private countCacheLookups(): void {
    if (this.meter === undefined) return;
    this.meter.cacheHits.inc(this.cache.hits - this.countedHits);
    this.meter.cacheMisses.inc(this.cache.misses - this.countedMisses);
    this.countedHits = this.cache.hits;
    this.countedMisses = this.cache.misses;
  }
}
