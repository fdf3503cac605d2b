// Whether a VM's vDisks can be served, the condition for powering it on. A vDisk is
// accessible when every extent group its vDisk map points to has a replica on a node
// the configuration records alive, and some node is alive to own it (undrained
// writes are in the oplog, in JetStream, and a new owner replays them). The master
// reads the metadata maps straight from their buckets (md-vdisk rows `<vdisk>.<row>`,
// md-egroup entries): reads only; the metadata shards alone write them.
import type { TypedBucket } from '@strata/kv';
import type { EgroupEntry, VdiskRow, egroupEntry, vdiskRow } from '@strata/proto';
import { keys } from '@strata/proto';
import type { Access } from './plan';

export interface VdiskRef {
  id: bigint;
  name: string;
}

/** The verdict for one vDisk, from its extent groups (undefined: no entry) and the live nodes. Pure. */
export function judgeVdisk(vdisk: VdiskRef, egroups: ReadonlyMap<bigint, EgroupEntry | undefined>, alive: ReadonlySet<string>): Access {
  if (alive.size === 0) return { ok: false, reason: `vdisk ${vdisk.name}: no node is alive to serve it` };
  for (const [id, entry] of egroups) {
    if (entry === undefined) return { ok: false, reason: `vdisk ${vdisk.name}: extent group ${id} has no metadata` };
    if (!entry.replicas.some((r) => alive.has(r.node))) {
      const nodes = [...new Set(entry.replicas.map((r) => r.node))].join(', ');
      return { ok: false, reason: `vdisk ${vdisk.name}: extent group ${id} has no replica on a live node (its replicas are on ${nodes})` };
    }
  }
  return { ok: true };
}

/** The extent groups a vDisk's map rows point to. Pure. */
export function egroupsOf(rows: readonly VdiskRow[]): Set<bigint> {
  const out = new Set<bigint>();
  for (const row of rows) for (const loc of Object.values(row.blocks)) out.add(loc.egroup);
  return out;
}

/** Reads of the metadata buckets, bounded in flight. */
export class AccessChecker {
  constructor(
    private readonly rows: TypedBucket<typeof vdiskRow>,
    private readonly egroups: TypedBucket<typeof egroupEntry>,
    private readonly readsInFlightMax = 16,
  ) {}

  /** The verdict for a VM: the first vDisk that is not accessible, else ok. */
  async check(vdisks: readonly VdiskRef[], alive: ReadonlySet<string>): Promise<Access> {
    for (const v of vdisks) {
      const verdict = judgeVdisk(v, await this.egroupEntries(v.id), alive);
      if (!verdict.ok) return verdict;
    }
    return { ok: true };
  }

  private async egroupEntries(vdisk: bigint): Promise<Map<bigint, EgroupEntry | undefined>> {
    // `<vdisk>.*` matches exactly the vDisk's rows: keys.vdiskRow(vdisk, row) is `<vdisk>.<row>`.
    const rowKeys = await this.rows.keys(keys.vdiskRow(vdisk, 0).replace(/\.0$/, '.*'));
    const rows = await this.limited(rowKeys, async (k) => (await this.rows.get(k))?.value);
    const ids = [...egroupsOf(rows.filter((r): r is VdiskRow => r !== undefined))];
    const entries = await this.limited(ids, async (id) => (await this.egroups.get(keys.egroup(id)))?.value);
    return new Map(ids.map((id, i) => [id, entries[i]]));
  }

  private async limited<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
    const out: R[] = new Array<R>(items.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.readsInFlightMax, items.length) }, worker));
    return out;
  }
}
