// Scrub against fake extent stores: which replicas a pass reads (written entries, live
// nodes), a CHECKSUM answer is damage and anything else a skip, the byte budget is
// asked for every piece, and the plan replaces a damaged replica on another node and
// drops it; a damaged replica the entry no longer names is forgotten.
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { createLogger } from '@strata/log';
import type { EgroupEntry, ObjectOf } from '@strata/proto';
import { plan, type EgroupRow } from '../src/plan';
import { damagedForPlan, scrubReplicas, scrubTargets } from '../src/scrub';
import { clusterView } from '../src/view';

const MiB = 2 ** 20;
const nodes = ['alive', 'alive', 'dead'].map((l, i) => ({ kind: 'node', id: BigInt(i + 1), name: `n${i + 1}`, spec: {}, status: { liveness: l, incarnation: 1, changedAtMs: 0 } })) as unknown as ObjectOf<'node'>[];
const disks = [1, 2, 3].map((i) => ({ kind: 'disk', id: BigInt(100 + i), name: `n${i}-d1`, spec: { node: BigInt(i), path: '/d', tier: 'ssd', capacityBytes: 1024 * MiB } })) as unknown as ObjectOf<'disk'>[];
const containers = [{ kind: 'container', id: 50n, name: 'c', spec: { replicationFactor: 2, tierOrder: ['ssd'] } }] as unknown as ObjectOf<'container'>[];
const vdisks = [{ kind: 'vdisk', id: 7n, name: 'v', spec: { container: 50n } }] as unknown as ObjectOf<'vdisk'>[];
const view = clusterView({ nodes, disks, containers, vdisks }, () => 0);

function row(egroup: number, on: number[], version = 3, sizeBytes = 3 * MiB): EgroupRow {
  const entry: EgroupEntry = { vdisk: 7n, replicas: on.map((k) => ({ disk: BigInt(100 + k), node: `n${k}` })), version, sizeBytes, extents: [] };
  return { egroup: BigInt(egroup), revision: 5, entry };
}

describe('scrub', () => {
  it('reads the replicas of written extent groups on live nodes only', () => {
    const targets = scrubTargets([row(1, [1, 2]), row(2, [1, 3]), row(3, [1, 2], 0, 0)], view);
    expect(targets.map((t) => `${t.egroup}/${t.disk}`)).toEqual(['1/101', '1/102', '2/101']);
  });

  it('reads each replica whole in paced pieces; CHECKSUM is damage, another failure a skip', async () => {
    const reads: string[] = [];
    let paced = 0;
    const bus = {
      request: (_subject: string, req: { disk: bigint; egroup: bigint; offset: number; length: number }) => {
        reads.push(`${req.egroup}/${req.disk}@${req.offset}+${req.length}`);
        if (req.disk === 102n && req.offset === 2 * MiB) return Promise.reject(new StrataError(ErrorCode.CHECKSUM, 'egroup 1: slice 32 failed its check'));
        if (req.egroup === 2n) return Promise.reject(new StrataError(ErrorCode.TIMEOUT, 'no answer'));
        return Promise.resolve({ data: new Uint8Array(req.length) });
      },
    } as unknown as Bus;
    const done: number[] = [];
    const { summary, damaged } = await scrubReplicas(
      { bus, log: createLogger({ service: 'test', level: 'silent' }), timeoutMs: 1000, chunkBytes: 2 * MiB, pace: (b) => ((paced += b), Promise.resolve()), going: () => true, progress: (n) => done.push(n) },
      scrubTargets([row(1, [1, 2]), row(2, [1, 2], 3, MiB)], view),
      1000,
      () => 1500,
    );
    expect(reads).toEqual([`1/101@0+${2 * MiB}`, `1/101@${2 * MiB}+${MiB}`, `1/102@0+${2 * MiB}`, `1/102@${2 * MiB}+${MiB}`, `2/101@0+${MiB}`, `2/102@0+${MiB}`]);
    expect(paced).toBe(3 * MiB + 3 * MiB + MiB + MiB);
    expect(damaged).toEqual([{ target: { egroup: 1n, disk: 102n, node: 'n2', sizeBytes: 3 * MiB }, why: 'egroup 1: slice 32 failed its check' }]);
    expect(summary).toEqual({ startedAtMs: 1000, durationMs: 500, replicas: 2, bytes: 6 * MiB, damaged: 1, skipped: 2 });
    expect(done).toEqual([1, 2, 3, 4]);
  });

  it('has the plan replace a damaged replica on another node, dropping it, and forgets one the entry no longer names', () => {
    const v4 = clusterView(
      {
        nodes: [...nodes.slice(0, 2), { ...nodes[0]!, id: 4n, name: 'n4' } as ObjectOf<'node'>],
        disks: [...disks.slice(0, 2), { ...disks[0]!, id: 104n, name: 'n4-d1', spec: { ...disks[0]!.spec, node: 4n } } as ObjectOf<'disk'>],
        containers,
        vdisks,
      },
      () => 0,
    );
    const damaged = new Map([['1/102', 'slice 32 failed its check']]);
    const p = plan([row(1, [1, 2])], v4, 0, { reprotectDelayMs: 60_000 }, new Set(), damaged);
    expect(p.actions).toEqual([expect.objectContaining({ source: { disk: 101n, node: 'n1' }, lost: { disk: 102n, node: 'n2' }, target: { disk: 104n, node: 'n4' }, drop: true })]);
    expect(p.actions[0]!.reason).toMatch(/failed its checksum \(scrub: slice 32 failed its check\)/);
    expect(damagedForPlan(damaged, [row(1, [1, 4])])).toEqual(new Map());
    expect(damagedForPlan(damaged, [row(1, [1, 2])])).toEqual(damaged);
  });
});
