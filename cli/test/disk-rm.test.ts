import { ErrorCode } from '@strata/errors';
import { diskRmRefusal, holdingsOf } from '../src/disk-rm';

const MiB = 2 ** 20;
const entry = (disks: bigint[], sizeBytes: number) => ({ replicas: disks.map((disk, i) => ({ disk, node: `n${i + 1}` })), sizeBytes });

describe('disk rm', () => {
  const entries = [entry([1n, 2n], 4 * MiB), entry([2n, 3n], 2 * MiB), entry([1n, 3n], 1 * MiB)];

  it('counts the extent groups with a replica on the disk, and their bytes', () => {
    expect(holdingsOf(entries, 1n)).toEqual({ egroups: 2, bytes: 5 * MiB });
    expect(holdingsOf(entries, 4n)).toEqual({ egroups: 0, bytes: 0 });
  });

  it('refuses a disk that holds replicas (CONFLICT, naming what it holds and --force), and not an empty one', () => {
    const refusal = diskRmRefusal('n1-d1', holdingsOf(entries, 1n));
    expect(refusal).toMatchObject({ code: ErrorCode.CONFLICT });
    expect(refusal?.message).toBe('disk n1-d1 holds replicas of 2 extent groups (5 MiB): removing it leaves each of them a replica short until the curator copies it again; "strata disk rm n1-d1 --wait" moves them off first, or use --force to remove it anyway');
    expect(diskRmRefusal('n4-d1', holdingsOf(entries, 4n))).toBeUndefined();
  });
});
