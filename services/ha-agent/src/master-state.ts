// What the HA master knows, kept fresh by watches of the `ha` and `cfg` buckets: the
// configuration, protection state and the restart records the master started from,
// with the agent's sightings of the power-on leases and host records (sightings.ts).
// A new master builds this first and acts only once every watch has loaded
// (PROTOCOL.md section 12: "reads all protection state before acting").
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
import type { LeaseObserver } from './lease-view';
import type { Sightings } from './sightings';

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
  private readonly removers: Array<() => void> = [];
  /** Set when node liveness changed in the configuration: the wait list is checked again. */
  accessAnnounced = true;

  private constructor(
    readonly cfg: WatchCache<CfgEntry>,
    readonly protections: WatchCache<VmProtection>,
    readonly restartCache: WatchCache<RestartRecord>,
    private readonly sightings: Sightings,
  ) {}

  get leases(): LeaseObserver {
    return this.sightings.leases;
  }

  get leaseCache(): WatchCache<LeaseRecord> {
    return this.sightings.leaseCache;
  }

  /** Since when the agent has watched heartbeats and host records (monotonic ms). */
  get watchingSinceMs(): number {
    return this.sightings.sinceMs;
  }

  get recordSeen(): ReadonlyMap<string, NonNullable<HostSeen['record']>> {
    return this.sightings.recordSeen;
  }

  /** Starts the watches the master needs beside the agent's sightings, and waits until all have loaded (bounded by `timeoutMs`). */
  static async load(b: StateBuckets, sightings: Sightings, log: Logger, timeoutMs: number): Promise<MasterState> {
    const onBadEntry = (key: string, err: unknown): void => log.warn({ err, key }, 'skipped an entry that does not decode');
    const [cfg, protections, restarts] = await Promise.all([
      WatchCache.start(b.cfg, { onBadEntry }),
      WatchCache.start(b.protections, { key: keys.vmProtectionAll, onBadEntry }),
      WatchCache.start(b.restarts, { key: keys.restartRecordAll, onBadEntry }),
    ]);
    const state = new MasterState(cfg, protections, restarts, sightings);
    const mine = [cfg, protections, restarts];
    let timer: NodeJS.Timeout | undefined;
    const loaded = await Promise.race([Promise.all([...mine.map((c) => c.ready), sightings.ready]).then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    if (!loaded) {
      for (const c of mine) c.stop();
      throw new Error(`the ha and cfg buckets did not load within ${timeoutMs} ms`);
    }
    state.removers.push(cfg.onChange((key) => key.startsWith('node.') && (state.accessAnnounced = true)));
    return state;
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
    return this.sightings.hostRecords();
  }

  /** Stops the master's own watches; the agent's sightings go on. */
  stop(): void {
    for (const r of this.removers) r();
    for (const c of [this.cfg, this.protections, this.restartCache]) c.stop();
  }
}
