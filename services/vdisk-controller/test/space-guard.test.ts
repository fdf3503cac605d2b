// The controller's space check: a write is refused NO_SPACE when the container cannot
// place the vDisk's undrained backlog plus the write on RF distinct nodes, with a
// message naming the full disks; one look at the disks serves `refreshMs`.
import type { DiskUsage } from '@strata/proto';
import { SpaceGuard } from '../src/space-guard';

const MiB = 2 ** 20;
const disk = (id: bigint, node: bigint, name: string) => ({ id, name, spec: { node, path: `/d/${name}`, tier: 'ssd' as const, capacityBytes: 100 * MiB } });

function setup(used: Record<string, number>) {
  let nowMs = 0;
  const usage = new Map<bigint, DiskUsage>();
  const setUsed = (u: Record<string, number>) => {
    for (const [id, mib] of Object.entries(u)) usage.set(BigInt(id), { node: '?', usedBytes: mib * MiB, capacityBytes: 100 * MiB, atMs: 0 });
  };
  setUsed(used);
  const guard = new SpaceGuard({
    disks: () => [disk(11n, 1n, 'n1-d1'), disk(21n, 2n, 'n2-d1')],
    nodes: () => [
      { id: 1n, name: 'n1' },
      { id: 2n, name: 'n2' },
    ],
    usage: (id) => usage.get(id),
    fullFreeBytes: 4 * MiB,
    nowMs: () => nowMs,
    refreshMs: 250,
  });
  return { guard, setUsed, advance: (ms: number) => (nowMs += ms) };
}

const container = { id: 5n, name: 'default', replicationFactor: 2, tierOrder: ['ssd'] };

it('lets a write through while the backlog plus the write fits, and refuses NO_SPACE naming the full disks once it does not', () => {
  const { guard, setUsed, advance } = setup({ 11: 90, 21: 50 });
  expect(guard.roomFor(container, MiB, 8 * MiB)).toBeUndefined();
  expect(guard.roomFor(container, 2 * MiB, 9 * MiB)).toMatchObject({ code: 'NO_SPACE', message: 'container default can place 10.0 MiB more on 2 distinct nodes; this write needs 2.0 MiB after 9.0 MiB not yet drained' });
  setUsed({ 11: 97 });
  // Within refreshMs the same look serves.
  expect(guard.roomFor(container, MiB, 0)).toBeUndefined();
  advance(250);
  expect(guard.roomFor(container, MiB, 0)).toMatchObject({ code: 'NO_SPACE', message: expect.stringContaining('(full: n1-d1)') });
  // Space freed: back once the reports say so.
  setUsed({ 11: 10 });
  advance(250);
  expect(guard.roomFor(container, MiB, 0)).toBeUndefined();
});
