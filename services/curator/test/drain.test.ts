// What a drain has left: the replicas on the leaving node's or disk's disks, lowered as
// moves finish, and the key under which its end is announced once.
import type { EgroupEntry } from '@strata/proto';
import { afterMove, countDrains, drainKey, type Leaver } from '../src/drain';
import type { EgroupRow } from '../src/plan';

const MiB = 2 ** 20;
const row = (egroup: number, disks: number[], sizeBytes: number): EgroupRow => ({
  egroup: BigInt(egroup),
  revision: 1,
  entry: { vdisk: 7n, replicas: disks.map((d) => ({ disk: BigInt(d), node: `n${d}` })), version: 1, sizeBytes, extents: [] } as EgroupEntry,
});

describe('drain counts', () => {
  const leavers: Leaver[] = [
    { kind: 'node', name: 'n2', id: 2n, disks: new Set([21n, 22n]) },
    { kind: 'disk', name: 'n3-d1', id: 31n, disks: new Set([31n]) },
  ];
  const rows = [row(1, [11, 21], 4 * MiB), row(2, [21, 31], 2 * MiB), row(3, [11, 22], MiB), row(4, [11, 12], 8 * MiB)];

  it('counts the replicas on each leaver’s disks and their bytes, and lowers them as moves finish', () => {
    const counts = countDrains(rows, leavers);
    expect(counts.map(({ name, replicas, bytes }) => ({ name, replicas, bytes }))).toEqual([
      { name: 'n2', replicas: 3, bytes: 7 * MiB },
      { name: 'n3-d1', replicas: 1, bytes: 2 * MiB },
    ]);
    const after = afterMove(afterMove(counts, 21n, 4 * MiB), 31n, 2 * MiB);
    expect(after.map(({ replicas, bytes }) => ({ replicas, bytes }))).toEqual([
      { replicas: 2, bytes: 3 * MiB },
      { replicas: 0, bytes: 0 },
    ]);
    expect(drainKey(after[1]!)).toBe('disk/31');
  });
});
