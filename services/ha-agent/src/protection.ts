// Per-VM protection state through SET and GET (PROTOCOL.md section 12). GET reads
// from a watched copy of `vm.>`, many VMs at once. SET is a compare-and-set on the
// revision of that copy; when the writer cannot reach the bucket (UNAVAILABLE), the
// SET goes to the agents of other hosts, one after another, and the first that can
// write it does, for the master (delegate.ts).
import { ErrorCode, isStrataError } from '@strata/errors';
import { KEPT_CHANGING_HINT, modifyRecord, type CasRecord, type Entry, type TypedBucket, type WatchCache } from '@strata/kv';
import { keys, type VmProtection, type vmProtection } from '@strata/proto';
import { throughAgents } from './delegate';

/** Asks the agent of `host` to SET for us; resolves with the new revision. */
export type SetThroughAgent = (host: string, vm: bigint, value: VmProtection, revision: number) => Promise<number>;

export interface ProtectionStoreOptions {
  bucket: TypedBucket<typeof vmProtection>;
  cache: WatchCache<VmProtection>;
  /** The other hosts whose agents may SET for us, best first. */
  helpers: () => string[];
  setThrough: SetThroughAgent;
  /** Helpers asked at most per SET. */
  helpersMax?: number;
  /** Attempts after a CONFLICT (someone wrote meanwhile), each after the copy caught up. */
  conflictRetries?: number;
  log?: { warn(obj: object, msg: string): void };
}

export class ProtectionStore {
  /** This writer's own SETs, until the watched copy has caught up with them. */
  private readonly written = new Map<string, Entry<VmProtection>>();

  constructor(private readonly o: ProtectionStoreOptions) {}

  /** GET of one VM from the watched copy (or this writer's newer SET, while the copy lags). */
  get(vm: bigint): Entry<VmProtection> | undefined {
    const key = keys.vmProtection(vm);
    const watched = this.o.cache.get(key);
    const mine = this.written.get(key);
    if (mine === undefined) return watched;
    if (watched !== undefined && watched.revision >= mine.revision) {
      this.written.delete(key);
      return watched;
    }
    return mine;
  }

  /** GET of many VMs at once; a VM without protection state is absent from the map. */
  getMany(vms: readonly bigint[]): Map<bigint, VmProtection> {
    const out = new Map<bigint, VmProtection>();
    for (const vm of vms) {
      const e = this.get(vm);
      if (e !== undefined) out.set(vm, e.value);
    }
    return out;
  }

  /** SET: stores `value` for `vm`, by compare-and-set on the copy's revision; returns the new revision. */
  async set(vm: bigint, value: VmProtection): Promise<number> {
    const key = keys.vmProtection(vm);
    let revision = 0;
    const record: CasRecord<VmProtection> = {
      what: `the protection state of vm ${vm}`,
      read: () => {
        const entry = this.get(vm);
        revision = entry?.revision ?? 0;
        return Promise.resolve(entry ?? null);
      },
      write: (next, at) => (at === 0 ? this.o.bucket.create(key, next) : this.o.bucket.update(key, next, at)),
      // Someone wrote meanwhile: wait until the copy has it, then set on top of it.
      afterConflict: async () => {
        this.written.delete(key);
        await this.o.cache.waitForRevision(this.o.cache.revision + 1, 1_000);
      },
    };
    try {
      const { after } = await modifyRecord(record, () => value, (this.o.conflictRetries ?? 3) + 1);
      this.written.set(key, { key, ...after! });
      return after!.revision;
    } catch (err) {
      if (!isStrataError(err, ErrorCode.UNAVAILABLE) || err.hint === KEPT_CHANGING_HINT) throw err;
      // The bucket is out of this agent's reach: agents that reach it write it for us.
      const helpers = this.o.helpers().slice(0, this.o.helpersMax ?? 3);
      const written = await throughAgents({ helpers, what: `the protection state of vm ${vm}`, cause: err, ask: (host) => this.o.setThrough(host, vm, value, revision), log: this.o.log });
      this.written.set(key, { key, value, revision: written });
      return written;
    }
  }

}
