// What the nodes and disks being drained still hold (`strata node drain`, `strata disk
// drain`): counted from the extent-group rows at each scan, lowered as the moves finish,
// and announced once when it reaches nothing. Pure; the master does the I/O.
import type { CuratorDrain } from '@strata/proto';
import type { EgroupRow } from './plan';

/** A node or disk marked draining in the configuration, with the disks it covers. */
export interface Leaver {
  kind: 'node' | 'disk';
  name: string;
  id: bigint;
  disks: ReadonlySet<bigint>;
}

export interface DrainCount extends CuratorDrain {
  id: bigint;
  disks: ReadonlySet<bigint>;
}

/** Each leaver with the replicas on its disks among `rows`, and their bytes. */
export function countDrains(rows: readonly EgroupRow[], leavers: readonly Leaver[]): DrainCount[] {
  return leavers.map((l) => {
    let replicas = 0;
    let bytes = 0;
    for (const row of rows) {
      const here = row.entry.replicas.filter((r) => l.disks.has(r.disk)).length;
      replicas += here;
      bytes += here * row.entry.sizeBytes;
    }
    return { kind: l.kind, name: l.name, id: l.id, disks: l.disks, replicas, bytes };
  });
}

/** The counts after a move took a replica of `bytes` off `disk`. */
export function afterMove(counts: readonly DrainCount[], disk: bigint, bytes: number): DrainCount[] {
  return counts.map((c) => (c.disks.has(disk) ? { ...c, replicas: Math.max(0, c.replicas - 1), bytes: Math.max(0, c.bytes - bytes) } : c));
}

/** The key under which a leaver's end is announced once: a drain cancelled and started again is announced again. */
export function drainKey(c: Pick<DrainCount, 'kind' | 'id'>): string {
  return `${c.kind}/${c.id}`;
}
