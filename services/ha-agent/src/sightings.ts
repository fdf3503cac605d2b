// What an agent has seen of the power-on leases and the host records, and since when
// on its own monotonic clock, watched for the agent's whole life, not only while it is
// master: a newly elected master then already knows which leases have stood still for
// how long, and restarts the VMs of a host that died with the old master as soon as
// their leases expire, instead of first watching them for a whole TTL of its own.
// (The rule of lease-view.ts holds either way: a revision counts from when this
// process first saw it.)
import { performance } from 'node:perf_hooks';
import { WatchCache, type TypedBucket } from '@strata/kv';
import type { LeaseRecord, leaseRecord } from '@strata/lease';
import type { Logger } from '@strata/log';
import { keys, type HostRecord, type hostRecord } from '@strata/proto';
import type { HostSeen } from './host-view';
import { LeaseObserver } from './lease-view';

export class Sightings {
  readonly leases: LeaseObserver;
  /** Host records: sequence and since when (monotonic ms), per host. */
  readonly recordSeen = new Map<string, NonNullable<HostSeen['record']>>();
  /** When watching began (monotonic ms): a host not heard from since is `unknown` for a dead timeout, then `dead`. */
  readonly sinceMs: number;
  private readonly removers: Array<() => void> = [];

  private constructor(
    readonly leaseCache: WatchCache<LeaseRecord>,
    readonly records: WatchCache<HostRecord>,
    private readonly now: () => number,
  ) {
    this.leases = new LeaseObserver(now);
    this.sinceMs = now();
  }

  static async start(leases: TypedBucket<typeof leaseRecord>, records: TypedBucket<typeof hostRecord>, log: Logger): Promise<Sightings> {
    const onBadEntry = (key: string, err: unknown): void => log.warn({ err, key }, 'skipped an entry that does not decode');
    const [leaseCache, recordCache] = await Promise.all([WatchCache.start(leases, { key: keys.powerOnLeaseAll, onBadEntry }), WatchCache.start(records, { key: keys.hostRecordAll, onBadEntry })]);
    const s = new Sightings(leaseCache, recordCache, () => performance.now());
    s.follow();
    return s;
  }

  /** Both copies loaded (the master waits for this before it acts). */
  get ready(): Promise<void> {
    return Promise.all([this.leaseCache.ready, this.records.ready]).then(() => undefined);
  }

  private follow(): void {
    // Entries the watch delivers from now on, the initial ones included, are seen when they arrive.
    this.removers.push(this.leaseCache.onChange((key, e) => this.leases.observe(key, e?.revision ?? this.leaseCache.revision, e?.value)));
    this.removers.push(this.records.onChange((_key, e) => e !== undefined && this.seeRecord(e.value)));
    for (const e of this.leaseCache.values()) this.leases.observe(e.key, e.revision, e.value);
    for (const e of this.records.values()) this.seeRecord(e.value);
  }

  private seeRecord(r: HostRecord): void {
    const before = this.recordSeen.get(r.host);
    if (before !== undefined && before.incarnation === r.incarnation && before.seq === r.seq && before.isolated === r.isolated) return;
    this.recordSeen.set(r.host, { incarnation: r.incarnation, seq: r.seq, sinceMs: this.now(), isolated: r.isolated });
  }

  hostRecords(): HostRecord[] {
    return this.records.values().map((e) => e.value);
  }

  stop(): void {
    for (const r of this.removers) r();
    this.leaseCache.stop();
    this.records.stop();
  }
}
