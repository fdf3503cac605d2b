// The space rules: disk and container states at their thresholds, the bytes a
// container can place on RF distinct nodes (checked against brute force), and one
// change reported per crossing.
import fc from 'fast-check';
import { SPACE_THRESHOLDS_DEFAULT, checkThresholds, containerSpace, diskSpace, placeableBytes, spaceChanges, type DiskInput } from '@strata/space';

const MiB = 2 ** 20;
const t = { warnPercent: 85, fullFreeBytes: 4 * MiB };

function disk(id: number, node: string, usedMiB: number | undefined, capacityMiB = 100, extra: Partial<DiskInput> = {}): DiskInput {
  return { id: BigInt(id), name: `${node}-d${id}`, node, tier: 'ssd', capacityBytes: capacityMiB * MiB, usedBytes: usedMiB === undefined ? undefined : usedMiB * MiB, live: true, ...extra };
}

describe('diskSpace', () => {
  it('is ok below the warning threshold, warning from it, full without room for an extent group', () => {
    expect(diskSpace(disk(1, 'n1', 84), t)).toMatchObject({ state: 'ok', freeBytes: 16 * MiB, reason: '84.0% used of 100.0 MiB' });
    expect(diskSpace(disk(1, 'n1', 85), t)).toMatchObject({ state: 'warning', reason: '85.0% used of 100.0 MiB, at or above 85%' });
    expect(diskSpace(disk(1, 'n1', 97), t)).toMatchObject({ state: 'full', reason: '3.0 MiB free of 100.0 MiB, below 4.0 MiB (no room for a new extent group)' });
    // Used past capacity (a write in place grew nothing, the capacity was lowered): no free bytes.
    expect(diskSpace(disk(1, 'n1', 120), t)).toMatchObject({ state: 'full', freeBytes: 0 });
    expect(diskSpace(disk(1, 'n1', undefined), t).reason).toMatch(/no usage report yet/);
  });

  it('refuses thresholds out of range', () => {
    expect(checkThresholds(SPACE_THRESHOLDS_DEFAULT)).toBe(SPACE_THRESHOLDS_DEFAULT);
    expect(() => checkThresholds({ warnPercent: 0, fullFreeBytes: 1 })).toThrow(/warnPercent/);
    expect(() => checkThresholds({ warnPercent: 101, fullFreeBytes: 1 })).toThrow(/warnPercent/);
    expect(() => checkThresholds({ warnPercent: 85, fullFreeBytes: -1 })).toThrow(/fullFreeBytes/);
  });
});

describe('placeableBytes', () => {
  const spaces = (disks: DiskInput[]) => disks.map((d) => diskSpace(d, t));

  it('is bounded by the RF-th roomiest node, and counts several disks of a node together', () => {
    expect(placeableBytes(spaces([disk(1, 'n1', 0), disk(2, 'n2', 50)]), 2, ['ssd'])).toBe(50 * MiB);
    // 3 nodes, RF 2: 100 + 50 + 50 = 200 of room gives 100 placed twice.
    expect(placeableBytes(spaces([disk(1, 'n1', 0), disk(2, 'n2', 50), disk(3, 'n3', 50)]), 2, ['ssd'])).toBe(100 * MiB);
    expect(placeableBytes(spaces([disk(1, 'n1', 0), disk(2, 'n2', 0), disk(3, 'n2', 0)]), 2, ['ssd'])).toBe(100 * MiB);
  });

  it('counts no full disk, no dead node and no other tier', () => {
    expect(placeableBytes(spaces([disk(1, 'n1', 0), disk(2, 'n2', 98)]), 2, ['ssd'])).toBe(0);
    expect(placeableBytes(spaces([disk(1, 'n1', 0), disk(2, 'n2', 0, 100, { live: false })]), 2, ['ssd'])).toBe(0);
    expect(placeableBytes(spaces([disk(1, 'n1', 0), disk(2, 'n2', 0, 100, { tier: 'hdd' })]), 2, ['ssd'])).toBe(0);
    expect(placeableBytes(spaces([disk(1, 'n1', 0), disk(2, 'n2', 0, 100, { tier: 'hdd' })]), 2, ['ssd', 'hdd'])).toBe(100 * MiB);
  });

  it('is the largest D with sum of min(room, D) >= RF * D (property, against brute force)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 4 }), (rooms, rf) => {
        // Whole MiB of room per node on disks of 100 MiB with a 4 MiB full threshold.
        const disks = spaces(rooms.map((r, i) => disk(i, `n${i}`, 100 - r)));
        const room = disks.filter((d) => d.state !== 'full').map((d) => d.freeBytes / MiB);
        let best = 0;
        for (let D = 0; D <= 400; D++) if (room.reduce((n, r) => n + Math.min(r, D), 0) >= rf * D) best = D;
        const got = placeableBytes(disks, rf, ['ssd']) / MiB;
        expect(got).toBeGreaterThanOrEqual(best);
        expect(got).toBeLessThan(best + 1);
      }),
    );
  });
});

describe('containerSpace', () => {
  const c = { id: 9n, name: 'default', replicationFactor: 2, tierOrder: ['ssd'] };

  it('is full when fewer than RF nodes have room, naming the full disks', () => {
    const disks = [disk(1, 'n1', 98), disk(2, 'n2', 10)].map((d) => diskSpace(d, t));
    expect(containerSpace(c, disks, t)).toMatchObject({ state: 'full', fullDisks: ['n1-d1'], placeableBytes: 0, reason: 'RF 2 needs 2 nodes with room on a disk of tiers ssd; 1 have it; full: n1-d1' });
  });

  it('warns when its disks together pass the threshold, and is ok below', () => {
    expect(containerSpace(c, [disk(1, 'n1', 90), disk(2, 'n2', 80)].map((d) => diskSpace(d, t)), t)).toMatchObject({ state: 'warning', usedBytes: 170 * MiB, capacityBytes: 200 * MiB, placeableBytes: 10 * MiB });
    expect(containerSpace(c, [disk(1, 'n1', 10), disk(2, 'n2', 80)].map((d) => diskSpace(d, t)), t)).toMatchObject({ state: 'ok', placeableBytes: 20 * MiB });
  });
});

describe('spaceChanges', () => {
  it('reports each crossing once, from ok for an object never seen, and skips disks without a report', () => {
    const at = (usedMiB: number | undefined) => [diskSpace(disk(1, 'n1', usedMiB), t)];
    const first = spaceChanges(new Map(), at(90), []);
    expect(first.changes).toEqual([{ kind: 'disk', id: 1n, name: 'n1-d1', from: 'ok', to: 'warning', usedBytes: 90 * MiB, capacityBytes: 100 * MiB, reason: '90.0% used of 100.0 MiB, at or above 85%' }]);
    expect(spaceChanges(first.states, at(91), []).changes).toEqual([]);
    const full = spaceChanges(first.states, at(99), []);
    expect(full.changes.map((ch) => `${ch.from}->${ch.to}`)).toEqual(['warning->full']);
    expect(spaceChanges(full.states, at(10), []).changes.map((ch) => `${ch.from}->${ch.to}`)).toEqual(['full->ok']);
    expect(spaceChanges(new Map(), at(undefined), []).changes).toEqual([]);
  });
});
