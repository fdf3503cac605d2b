// What the HA master knows, kept fresh by watches of the `ha` and `cfg` buckets: the
// configuration, protection state, power-on leases (with since when each revision has
// been seen), host records, and its own copy of the restart records. A new master
// builds this first and acts only once every watch has loaded (PROTOCOL.md section 12:
// "reads all protection state before acting").
import { performance } from 'node:perf_hooks';
import { WatchCache, type TypedBucket } from '@strata/kv';
import type { LeaseRecord, leaseRecord } from '@strata/lease';
import type { Logger } from '@strata/log';
import {
  keys,
  type CfgEntry,
  type HostRecord,
  type ObjectOf,
  type RestartRecord,
  type VmProtection,
  type cfgEntry,
  type hostRecord,
  type restartRecord,
  type vmProtection,
} from '@strata/proto';
import type { HostSeen } from './host-view';
import { LeaseObserver } from './lease-view';

export interface StateBuckets {
  cfg: TypedBucket<typeof cfgEntry>;
  protections: TypedBucket<typeof vmProtection>;
  leases: TypedBucket<typeof leaseRecord>;
  records: TypedBucket<typeof hostRecord>;
  restarts: TypedBucket<typeof restartRecord>;
}

export interface ConfigView {
  vms: ObjectOf<'vm'>[];
  hosts: ObjectOf<'host'>[];
  nodes: ObjectOf<'node'>[];
  vdisks: Map<bigint, ObjectOf<'vdisk'>>;
  hostNames: Map<bigint, string>;
}

const idOf = (key: string): bigint => BigInt(key.slice(key.indexOf('.') + 1));

export class MasterState {
  readonly leases: LeaseObserver;
  /** Host records: sequence and since when (monotonic ms), per host. */
  readonly recordSeen = new Map<string, NonNullable<HostSeen['record']>>();
  private readonly removers: Array<() => void> = [];
  /** Set when node liveness changed in the configuration: the wait list is checked again. */
  accessAnnounced = true;

  private constructor(
    readonly cfg: WatchCache<CfgEntry>,
    readonly protections: WatchCache<VmProtection>,
    readonly leaseCache: WatchCache<LeaseRecord>,
    readonly records: WatchCache<HostRecord>,
    readonly restartCache: WatchCache<RestartRecord>,
    private readonly now: () => number,
  ) {
    this.leases = new LeaseObserver(now);
  }

  /** Starts every watch and waits until each has loaded (bounded by `timeoutMs`). */
  static async load(b: StateBuckets, log: Logger, timeoutMs: number): Promise<MasterState> {
    const onBadEntry = (key: string, err: unknown): void => log.warn({ err, key }, 'skipped an entry that does not decode');
    const [cfg, protections, leaseCache, records, restarts] = await Promise.all([
      WatchCache.start(b.cfg, { onBadEntry }),
      WatchCache.start(b.protections, { key: keys.vmProtectionAll, onBadEntry }),
      WatchCache.start(b.leases, { key: keys.powerOnLeaseAll, onBadEntry }),
      WatchCache.start(b.records, { key: keys.hostRecordAll, onBadEntry }),
      WatchCache.start(b.restarts, { key: keys.restartRecordAll, onBadEntry }),
    ]);
    const state = new MasterState(cfg, protections, leaseCache, records, restarts, () => performance.now());
    const all = [cfg, protections, leaseCache, records, restarts];
    let timer: NodeJS.Timeout | undefined;
    const loaded = await Promise.race([Promise.all(all.map((c) => c.ready)).then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    if (!loaded) {
      for (const c of all) c.stop();
      throw new Error(`the ha and cfg buckets did not load within ${timeoutMs} ms`);
    }
    state.follow();
    return state;
  }

  private follow(): void {
    for (const e of this.leaseCache.values()) this.leases.observe(e.key, e.revision, e.value);
    this.removers.push(this.leaseCache.onChange((key, e) => this.leases.observe(key, e?.revision ?? this.leaseCache.revision, e?.value)));
    for (const e of this.records.values()) this.seeRecord(e.value);
    this.removers.push(this.records.onChange((_key, e) => e !== undefined && this.seeRecord(e.value)));
    this.removers.push(this.cfg.onChange((key) => key.startsWith('node.') && (this.accessAnnounced = true)));
  }

  private seeRecord(r: HostRecord): void {
    const before = this.recordSeen.get(r.host);
    if (before !== undefined && before.incarnation === r.incarnation && before.seq === r.seq && before.isolated === r.isolated) return;
    this.recordSeen.set(r.host, { incarnation: r.incarnation, seq: r.seq, sinceMs: this.now(), isolated: r.isolated });
  }

  /** The configuration as the watch holds it. */
  config(): ConfigView {
    const view: ConfigView = { vms: [], hosts: [], nodes: [], vdisks: new Map(), hostNames: new Map() };
    for (const { value, revision } of this.cfg.values()) {
      if (!('kind' in value)) continue;
      const o = { ...value, revision } as ObjectOf<typeof value.kind>;
      if (o.kind === 'vm') view.vms.push(o as ObjectOf<'vm'>);
      else if (o.kind === 'host') {
        view.hosts.push(o as ObjectOf<'host'>);
        view.hostNames.set(o.id, o.name);
      } else if (o.kind === 'node') view.nodes.push(o as ObjectOf<'node'>);
      else if (o.kind === 'vdisk') view.vdisks.set(o.id, o as ObjectOf<'vdisk'>);
    }
    view.hosts.sort((a, b) => (a.name < b.name ? -1 : 1));
    return view;
  }

  /** The restart records the watch held when this master took over. */
  storedRestarts(): Array<{ vm: bigint; record: RestartRecord; revision: number }> {
    return this.restartCache.values().map((e) => ({ vm: idOf(e.key), record: e.value, revision: e.revision }));
  }

  hostRecords(): HostRecord[] {
    return this.records.values().map((e) => e.value);
  }

  stop(): void {
    for (const r of this.removers) r();
    for (const c of [this.cfg, this.protections, this.leaseCache, this.records, this.restartCache]) c.stop();
  }
}
