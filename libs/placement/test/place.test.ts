// Replica placement: distinct nodes, local first, tier order, free space, and a
// clear refusal when the cluster cannot hold RF copies.
import { place, placeReplacement, type CandidateDisk } from '../src/place';

const GiB = 2 ** 30;
const disk = (id: number, node: string, tier: string, freeGiB: number): CandidateDisk => ({ id: BigInt(id), node, tier, capacityBytes: 100 * GiB, usedBytes: (100 - freeGiB) * GiB });
const disks = [disk(1, 'n1', 'hdd', 90), disk(2, 'n1', 'ssd', 10), disk(3, 'n2', 'ssd', 50), disk(4, 'n2', 'ssd', 80), disk(5, 'n3', 'hdd', 99), disk(6, 'n3', 'ssd', 1)];
const live = new Set(['n1', 'n2', 'n3']);
const ids = (p: ReturnType<typeof place>): number[] => (p.ok ? p.replicas.map((d) => Number(d.id)) : []);

describe('placement', () => {
  it('puts the first replica on the local node, then the best tier and most free space elsewhere', () => {
    expect(ids(place({ disks, liveNodes: live, localNode: 'n1', replicationFactor: 3, tierOrder: ['ssd', 'hdd'], needBytes: GiB }))).toEqual([2, 4, 6]);
    expect(ids(place({ disks, liveNodes: live, localNode: 'n3', replicationFactor: 2, tierOrder: ['ssd', 'hdd'], needBytes: GiB }))).toEqual([6, 4]);
  });

  it('never places two replicas on one node, and skips dead nodes and full disks', () => {
    const p = place({ disks, liveNodes: new Set(['n1', 'n2']), localNode: 'n2', replicationFactor: 2, tierOrder: ['ssd', 'hdd'], needBytes: 20 * GiB });
    expect(ids(p)).toEqual([4, 1]);
  });

  it('refuses with a reason when RF distinct nodes cannot be found', () => {
    const p = place({ disks, liveNodes: new Set(['n1', 'n2']), localNode: 'n1', replicationFactor: 3, tierOrder: ['ssd', 'hdd'], needBytes: GiB });
    expect(p).toEqual({ ok: false, why: expect.stringContaining('replication factor 3 needs 3 live nodes') });
  });

  it('only uses tiers the container names', () => {
    expect(ids(place({ disks, liveNodes: live, localNode: 'n1', replicationFactor: 2, tierOrder: ['hdd'], needBytes: GiB }))).toEqual([1, 5]);
  });

  it('places a replacement away from every node that holds a replica, on a live node with room', () => {
    const r = placeReplacement({ disks, liveNodes: live, occupiedNodes: new Set(['n1']), tierOrder: ['ssd', 'hdd'], needBytes: GiB });
    expect(r.ok && Number(r.disk.id)).toBe(4);
    const dead = placeReplacement({ disks, liveNodes: new Set(['n1', 'n3']), occupiedNodes: new Set(['n1']), tierOrder: ['ssd', 'hdd'], needBytes: GiB });
    expect(dead.ok && Number(dead.disk.id)).toBe(6);
    const full = placeReplacement({ disks, liveNodes: new Set(['n1', 'n3']), occupiedNodes: new Set(['n1']), tierOrder: ['ssd'], needBytes: 5 * GiB });
    expect(full).toEqual({ ok: false, why: expect.stringContaining('held on: n1') });
  });

  it('never puts a replica on a draining disk, new or replacement, and says so when that leaves too few nodes', () => {
    const leaving = disks.map((d) => (d.node === 'n1' ? { ...d, draining: true } : d));
    expect(ids(place({ disks: leaving, liveNodes: live, localNode: 'n1', replicationFactor: 2, tierOrder: ['ssd', 'hdd'], needBytes: GiB }))).toEqual([4, 6]);
    expect(place({ disks: leaving, liveNodes: live, localNode: 'n1', replicationFactor: 3, tierOrder: ['ssd', 'hdd'], needBytes: GiB }).ok).toBe(false);
    const oneDisk = disks.map((d) => (d.id === 4n ? { ...d, draining: true } : d));
    const r = placeReplacement({ disks: oneDisk, liveNodes: live, occupiedNodes: new Set(['n1']), tierOrder: ['ssd', 'hdd'], needBytes: GiB });
    expect(r.ok && Number(r.disk.id)).toBe(3);
  });
});
