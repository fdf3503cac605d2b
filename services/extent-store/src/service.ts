// The extent store of one node: finds the node's disks in the config service (and
// again every refresh interval), opens a DiskStore for each, serves
// `strata.estore.<node>.<op>` over the bus, and reports each disk's usage to `hb`.
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import type { Bus, Handler, Service } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import type { Logger } from '@strata/log';
import type { Metrics } from '@strata/metrics';
import { EG_LIST_LIMIT_DEFAULT, EstoreOp, egDeleteReply, egDeleteRequest, egListRequest, egReadRequest, egStatRequest, egWriteRequest, keys, subjects, type diskUsage, type ObjectOf } from '@strata/proto';
import { SpanAttr, recordingSpan, type Attributes } from '@strata/tracing';
import { DiskStore } from './disk-store';
import type { ExtentStoreSettings } from './settings';
import { Ticker } from './ticker';

export interface ExtentStoreDeps {
  bus: Bus;
  config: Pick<ConfigClient, 'get' | 'list'>;
  /** The `hb` bucket, seen through the diskUsage schema (it holds other shapes under other keys). */
  usage: Pick<TypedBucket<typeof diskUsage>, 'put' | 'delete'>;
  log: Logger;
  metrics?: Metrics;
  settings: ExtentStoreSettings;
}

type DiskObject = ObjectOf<'disk'>;

/** The fields of the extent-store requests that say what a request touches. */
interface EstoreRequestFields {
  disk: bigint;
  /** Absent from a list. */
  egroup?: bigint;
  vdisk?: bigint;
  epoch?: number;
  version?: number;
  pieces?: ReadonlyArray<{ data: Uint8Array } | { zeros: number }>;
  offset?: number;
  length?: number;
}

/** Span attributes of a request: its disk and extent group, and what a write or read covers. */
function requestAttributes(r: EstoreRequestFields): Attributes {
  return {
    [SpanAttr.disk]: String(r.disk),
    ...(r.egroup === undefined ? {} : { [SpanAttr.egroup]: String(r.egroup) }),
    ...(r.vdisk === undefined ? {} : { [SpanAttr.vdisk]: String(r.vdisk) }),
    ...(r.epoch === undefined ? {} : { [SpanAttr.epoch]: r.epoch }),
    ...(r.version === undefined ? {} : { [SpanAttr.egroupVersion]: r.version }),
    ...(r.pieces === undefined ? {} : { [SpanAttr.pieces]: r.pieces.length, [SpanAttr.bytes]: r.pieces.reduce((n, p) => n + ('data' in p ? p.data.length : 0), 0) }),
    ...(r.offset === undefined ? {} : { [SpanAttr.offset]: r.offset }),
    ...(r.length === undefined ? {} : { [SpanAttr.length]: r.length }),
  };
}

/** Describes each request on the bus's `handle strata.estore.<node>.<op>` span (nothing is built when tracing is off). */
function describedOnSpan<Req, Rep>(handler: Handler<Req, Rep>): Handler<Req, Rep> {
  return (request, ctx) => {
    recordingSpan()?.setAttributes(requestAttributes(request as EstoreRequestFields));
    return handler(request, ctx);
  };
}

export class ExtentStore {
  private nodeId: bigint | undefined;
  /** Open disks by id (decimal). */
  private readonly disks = new Map<string, DiskStore>();
  /** Disks of this node being opened (recovery may take a while). */
  private readonly opening = new Set<string>();
  /** Disks of this node that could not be opened, with the reason; tried again each refresh. */
  private readonly unusable = new Map<string, string>();
  private services: Service[] = [];
  private tickers: Ticker[] = [];
  private refreshTail: Promise<void> = Promise.resolve();
  private readonly node: string;

  constructor(private readonly deps: ExtentStoreDeps) {
    this.node = deps.settings.node;
  }

  /** Finds the node, opens its disks, then serves. Fails if the node is not registered. */
  async start(): Promise<void> {
    const { bus, config, settings } = this.deps;
    let node;
    try {
      node = await config.get({ kind: 'node', name: this.node });
    } catch (err) {
      if (isStrataError(err, ErrorCode.NOT_FOUND)) {
        throw new Error(`node ${this.node} is not registered in the config service; register it first ("strata node add ${this.node}")`, { cause: err });
      }
      throw err;
    }
    this.nodeId = node.id;
    await this.refresh();

    const maxInFlight = settings.requestsInFlightMax;
    const serve = <S extends z.ZodType, Rep>(op: EstoreOp, schema: S, handler: Handler<z.output<S>, Rep>): Promise<Service> =>
      bus.serve(subjects.estore(this.node, op), schema, this.instrument(op, describedOnSpan(handler)), { maxInFlight });
    this.services = await Promise.all([
      serve(EstoreOp.write, egWriteRequest, (r) => this.diskFor(r.disk).write(r)),
      serve(EstoreOp.read, egReadRequest, async (r) => ({ data: await this.diskFor(r.disk).read(r) })),
      serve(EstoreOp.stat, egStatRequest, (r) => this.diskFor(r.disk).stat(r.egroup)),
      // The reply is empty (egDeleteReply): deleting a replica that is not there succeeds too.
      serve(EstoreOp.delete, egDeleteRequest, async (r) => {
        await this.diskFor(r.disk).delete(r.egroup);
        return egDeleteReply.parse({});
      }),
      serve(EstoreOp.list, egListRequest, (r) => Promise.resolve(this.diskFor(r.disk).list(r.after, r.limit ?? EG_LIST_LIMIT_DEFAULT))),
    ]);

    const usage = new Ticker(settings.usageReportIntervalMs, () => this.reportUsage());
    const refresh = new Ticker(settings.diskRefreshIntervalMs, () => this.refreshQuietly());
    this.tickers = [usage, refresh];
    // Usage is reported at once, so placement sees the disks without waiting an interval;
    // the disks were listed just now.
    usage.start();
    refresh.start(settings.diskRefreshIntervalMs);
    this.deps.log.info({ nodeId: this.nodeId.toString(), disks: [...this.disks.keys()] }, 'extent store serving');
  }

  /** Stops serving, lets operations in progress finish, and closes the disks. */
  async stop(): Promise<void> {
    await Promise.all(this.tickers.map((t) => t.stop()));
    await this.refreshTail;
    await Promise.all(this.services.map((s) => s.stop()));
    await Promise.all([...this.disks.values()].map((d) => d.close()));
    this.disks.clear();
  }

  /** The open disks, by id: for tests and diagnostics. */
  openDisks(): ReadonlyMap<string, DiskStore> {
    return this.disks;
  }

  private diskFor(disk: bigint): DiskStore {
    const key = disk.toString();
    const store = this.disks.get(key);
    if (store !== undefined) return store;
    if (this.opening.has(key)) throw new StrataError(ErrorCode.UNAVAILABLE, `disk ${disk} of node ${this.node} is being opened`);
    const why = this.unusable.get(key);
    if (why !== undefined) throw new StrataError(ErrorCode.UNAVAILABLE, `disk ${disk} of node ${this.node} cannot be used: ${why}`);
    throw new StrataError(ErrorCode.NOT_FOUND, `disk ${disk} is not a disk of node ${this.node}`);
  }

  /** Counts each request by outcome and times it. */
  private instrument<Req, Rep>(op: EstoreOp, handler: Handler<Req, Rep>): Handler<Req, Rep> {
    const metrics = this.deps.metrics;
    if (metrics === undefined) return handler;
    const requests = metrics.counter('strata_estore_requests_total', 'Extent-store requests by operation and outcome.', ['op', 'code']);
    const seconds = metrics.histogram('strata_estore_request_seconds', 'Time to serve an extent-store request.', ['op'], [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2]);
    return async (request, ctx) => {
      const startedAt = performance.now();
      let code = 'OK';
      try {
        return await handler(request, ctx);
      } catch (err) {
        code = err instanceof StrataError ? err.code : ErrorCode.INTERNAL;
        throw err;
      } finally {
        requests.inc({ op, code });
        seconds.observe({ op }, (performance.now() - startedAt) / 1000);
      }
    };
  }

  private async refreshQuietly(): Promise<void> {
    try {
      await this.refresh();
    } catch (err) {
      // The config service may be electing a leader: keep serving the disks we have.
      this.deps.log.warn({ err }, 'could not refresh the list of disks; trying again next interval');
    }
  }

  /**
   * Brings the open disks in line with the config service: opens new ones, closes
   * removed or moved ones, applies new capacities. The refresh ticker calls it.
   */
  refresh(): Promise<void> {
    // One at a time: two overlapping refreshes could open the same disk twice.
    const run = this.refreshTail.then(() => this.refreshOnce());
    this.refreshTail = run.catch(() => undefined);
    return run;
  }

  private async refreshOnce(): Promise<void> {
    const { config, log, settings } = this.deps;
    const all = await config.list('disk');
    const mine = all.filter((d) => d.spec.node === this.nodeId).sort((a, b) => (a.id < b.id ? -1 : 1));
    if (mine.length > settings.disksMax) {
      log.error({ disks: mine.length, disksMax: settings.disksMax }, 'more disks than --disks-max; serving the first by id');
      mine.length = settings.disksMax;
    }
    const wanted = new Map<string, DiskObject>(mine.map((d) => [d.id.toString(), d]));
    const existing = new Set(all.map((d) => d.id.toString()));

    for (const [key, store] of [...this.disks]) {
      const want = wanted.get(key);
      if (want !== undefined && want.spec.path === store.path) continue;
      // Unlisted first, so new requests hear NOT_FOUND while those in progress finish.
      this.disks.delete(key);
      await store.close();
      log.info({ disk: key, path: store.path }, 'disk no longer served by this node');
      if (!existing.has(key)) await this.deps.usage.delete(keys.diskUsage(store.diskId)).catch((err: unknown) => log.warn({ err, disk: key }, 'could not remove the usage report of a deleted disk'));
    }
    for (const key of [...this.unusable.keys()]) if (!wanted.has(key)) this.unusable.delete(key);

    for (const [key, disk] of wanted) {
      const store = this.disks.get(key);
      if (store !== undefined) {
        if (store.capacityBytes !== disk.spec.capacityBytes) {
          log.info({ disk: key, from: store.capacityBytes, to: disk.spec.capacityBytes }, 'disk capacity changed');
          store.setCapacityBytes(disk.spec.capacityBytes);
        }
        continue;
      }
      await this.openDisk(key, disk);
    }
  }

  private async openDisk(key: string, disk: DiskObject): Promise<void> {
    const { log, settings } = this.deps;
    this.opening.add(key);
    try {
      const store = await DiskStore.open({
        diskId: disk.id,
        path: disk.spec.path,
        capacityBytes: disk.spec.capacityBytes,
        egroupSizeMaxBytes: settings.egroupSizeMaxBytes,
        sliceBytes: settings.sliceBytes,
        openFilesMax: settings.openFilesMax,
        opsInFlightMax: settings.diskOpsInFlightMax,
        opsPendingMax: settings.diskOpsPendingMax,
        sidecarCacheMax: settings.sidecarCacheMax,
        syncReadMaxBytes: settings.syncReadMaxBytes,
        log,
      });
      this.disks.set(key, store);
      this.unusable.delete(key);
      log.info({ disk: key, name: disk.name, path: disk.spec.path, tier: disk.spec.tier, capacityBytes: disk.spec.capacityBytes, recovery: store.recovery }, 'disk opened');
    } catch (err) {
      const why = (err as Error).message;
      // Logged once per new reason, not once per refresh.
      if (this.unusable.get(key) !== why) log.error({ err, disk: key, path: disk.spec.path }, 'cannot open disk; trying again next refresh');
      this.unusable.set(key, why);
    } finally {
      this.opening.delete(key);
    }
  }

  private async reportUsage(): Promise<void> {
    const metrics = this.deps.metrics;
    const used = metrics?.gauge('strata_estore_disk_used_bytes', 'Bytes of extent-group data on the disk.', ['disk']);
    const capacity = metrics?.gauge('strata_estore_disk_capacity_bytes', 'Bytes the disk may hold.', ['disk']);
    for (const store of [...this.disks.values()]) {
      const key = store.diskId.toString();
      // A refresh may have dropped the disk while an earlier put was awaited; a report
      // now could outlive the removal of its key.
      if (this.disks.get(key) !== store) continue;
      used?.set({ disk: key }, store.usedBytes);
      capacity?.set({ disk: key }, store.capacityBytes);
      try {
        await this.deps.usage.put(keys.diskUsage(store.diskId), {
          node: this.node,
          usedBytes: store.usedBytes,
          capacityBytes: store.capacityBytes,
          atMs: Date.now(),
        });
      } catch (err) {
        this.deps.log.warn({ err, disk: key }, 'could not report disk usage');
      }
    }
  }
}
