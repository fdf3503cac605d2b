// The pure decisions of `strata node drain`, `disk drain` and `node rm`: a drain that
// would leave a container fewer nodes than its RF is refused, a node whose disks hold
// replicas is not removed (nor one whose host has VMs), and the progress lines.
import { ErrorCode } from '@strata/errors';
import type { ObjectOf } from '@strata/proto';
import { holdingsOf } from '../src/disk-rm';
import { disksOfNode, drainRefusal, nodeHostRefusal, nodeRmRefusal, progressLine } from '../src/drain';

const MiB = 2 ** 20;
const node = (id: number, draining = false) => ({ kind: 'node', id: BigInt(id), name: `n${id}`, spec: draining ? { drainingSinceMs: 1 } : {} }) as unknown as ObjectOf<'node'>;
const disk = (id: number, nodeId: number, draining = false) => ({ kind: 'disk', id: BigInt(id), name: `d${id}`, spec: { node: BigInt(nodeId), path: '/d', tier: 'ssd', capacityBytes: 1, ...(draining ? { drainingSinceMs: 1 } : {}) } }) as unknown as ObjectOf<'disk'>;
const container = (rf: number) => ({ kind: 'container', id: 50n, name: `rf${rf}`, spec: { replicationFactor: rf, tierOrder: ['ssd'] } }) as unknown as ObjectOf<'container'>;

describe('drain', () => {
  const nodes = [node(1), node(2), node(3)];
  const disks = [disk(11, 1), disk(12, 2), disk(13, 3), disk(14, 3)];

  it('refuses a drain that leaves fewer nodes with a disk that stays than the largest RF, and says why', () => {
    expect(drainRefusal('node n3', disksOfNode(disks, 3n), disks, nodes, [container(2)])).toBeUndefined();
    const refused = drainRefusal('node n3', disksOfNode(disks, 3n), disks, nodes, [container(2), container(3)]);
    expect(refused).toMatchObject({ code: ErrorCode.CONFLICT, message: expect.stringContaining('would leave 2 nodes with a disk that is not draining, fewer than the 3 copies container rf3 keeps') });
    // One disk of a node with two: the node still has a disk that stays.
    expect(drainRefusal('disk d14', new Set([14n]), disks, nodes, [container(3)])).toBeUndefined();
    // Another drain already under way counts too.
    expect(drainRefusal('node n3', disksOfNode(disks, 3n), disks, [node(1), node(2, true), node(3)], [container(2)])).toMatchObject({ code: ErrorCode.CONFLICT });
    expect(drainRefusal('disk d11', new Set([11n]), [disk(11, 1), disk(12, 2, true), disk(13, 3)], nodes, [container(2)])).toMatchObject({ code: ErrorCode.CONFLICT });
  });

  it('refuses to remove a node whose disks hold replicas, naming the drain; and one whose host has VMs', () => {
    const entries = [{ replicas: [{ disk: 13n, node: 'n3' }, { disk: 11n, node: 'n1' }], sizeBytes: 4 * MiB }, { replicas: [{ disk: 14n, node: 'n3' }], sizeBytes: MiB }];
    const held = holdingsOf(entries, disksOfNode(disks, 3n));
    expect(held).toEqual({ egroups: 2, bytes: 5 * MiB });
    expect(nodeRmRefusal('n3', held)?.message).toBe('node n3 holds replicas of 2 extent groups (5 MiB): "strata node drain n3 --wait" moves them to other nodes first; use --force to remove it anyway (each of them is then a replica short until the curator copies it again)');
    expect(nodeRmRefusal('n2', holdingsOf(entries, disksOfNode(disks, 2n)))).toBeUndefined();
    const host = { kind: 'host', id: 70n, name: 'h3', spec: { node: 3n, cpuCount: 1, memoryBytes: 1 } } as unknown as ObjectOf<'host'>;
    const vm = { kind: 'vm', id: 80n, name: 'db', spec: { host: 70n } } as unknown as ObjectOf<'vm'>;
    expect(nodeHostRefusal('n3', [host], [vm])?.message).toBe('node n3 serves host h3, where VMs db are defined; move or remove them first');
    expect(nodeHostRefusal('n3', [host], [])).toBeUndefined();
  });

  it('prints what is left, the rate and the time to go when the curator knows them', () => {
    expect(progressLine('node n2', { egroups: 3, bytes: 6 * MiB }, { bytesPerSec: 2 * MiB, etaMs: 3_000 })).toBe('node n2: 3 extent groups (6 MiB) left, 2 MiB/s, about 3 s to go');
    expect(progressLine('disk d1', { egroups: 1, bytes: MiB })).toBe('disk d1: 1 extent group (1 MiB) left');
    expect(progressLine('node n2', { egroups: 0, bytes: 0 }, { bytesPerSec: 0 })).toBe('node n2: drained, it holds no replica');
  });
});
