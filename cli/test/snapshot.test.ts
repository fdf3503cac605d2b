// `strata vdisk snapshot` and `strata vdisk clone` as a tentative record and a commit,
// over fake ports: refusals change nothing; a failed step leaves the new vDisk marked
// deleting (for the sweep), never committed; success commits and records an event.
import { ErrorCode, StrataError } from '@strata/errors';
import type { ClusterEvent, ObjectOf } from '@strata/proto';
import { makeClone, takeSnapshot, type SnapshotPorts } from '../src/snapshot';

type Vdisk = ObjectOf<'vdisk'>;

function vdisk(id: bigint, name: string, extra: Partial<Vdisk['spec']> = {}): Vdisk {
  return { kind: 'vdisk', id, name, createdAtMs: 0, updatedAtMs: 0, epoch: 1, revision: 1, spec: { container: 1n, sizeBytes: 2 ** 24, blockSizeBytes: 2 ** 20, shared: false, qos: { priority: 'normal', weight: 1 }, ...extra } };
}

function fake(objects: Vdisk[], fail?: 'cut' | 'copy') {
  const byName = new Map(objects.map((o) => [o.name, o]));
  const events: ClusterEvent[] = [];
  let next = 100n;
  const ports: SnapshotPorts = {
    get: async (name) => {
      const v = byName.get(name);
      if (v === undefined) throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${name} not found`);
      return v;
    },
    create: async (name, spec) => {
      if (byName.has(name)) throw new StrataError(ErrorCode.CONFLICT, `vdisk ${name} exists`);
      const v = { ...vdisk(next++, name), spec };
      byName.set(name, v);
      return v;
    },
    update: async (name, spec, revision) => {
      const v = byName.get(name)!;
      if (v.revision !== revision) throw new StrataError(ErrorCode.CONFLICT, 'changed');
      const updated = { ...v, spec, revision: revision + 1 };
      byName.set(name, updated);
      return updated;
    },
    cut: async () => {
      if (fail === 'cut') throw new StrataError(ErrorCode.TIMEOUT, 'drain did not finish');
      return { generation: 1, cutSeq: 42, rows: 1, blocks: 3, pauseMs: 7 };
    },
    copyRows: async () => {
      if (fail === 'copy') throw new StrataError(ErrorCode.UNAVAILABLE, 'shard down');
      return { rows: 1, blocks: 3 };
    },
    event: async (e) => void events.push(e),
    nowMs: () => 1_000,
  };
  return { ports, byName, events };
}

describe('vdisk snapshot and clone', () => {
  it('snapshots: a tentative object, the cut, the commit, an event', async () => {
    const f = fake([vdisk(7n, 'src')]);
    const { snapshot, cut } = await takeSnapshot(f.ports, 'src', 's1');
    expect(cut.pauseMs).toBe(7);
    expect(snapshot.spec).toMatchObject({ snapshotOf: 7n, sizeBytes: 2 ** 24 });
    expect(snapshot.spec.creatingSinceMs).toBeUndefined();
    expect(f.events).toEqual([expect.objectContaining({ type: 'vdisk.snapshot.created', name: 's1', durationMs: 7, cause: 'operator' })]);
  });

  it('a failed cut leaves the snapshot marked deleting, never committed', async () => {
    const f = fake([vdisk(7n, 'src')], 'cut');
    await expect(takeSnapshot(f.ports, 'src', 's1')).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(f.byName.get('s1')!.spec).toMatchObject({ creatingSinceMs: 1_000, deletingSinceMs: 1_000 });
    expect(f.events).toEqual([]);
  });

  it('refuses a snapshot of a snapshot, a clone of a vDisk that is not a snapshot, and a taken name, creating nothing', async () => {
    const f = fake([vdisk(7n, 'src'), vdisk(8n, 's1', { snapshotOf: 7n })]);
    await expect(takeSnapshot(f.ports, 's1', 's2')).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/s1 is a snapshot/) });
    await expect(makeClone(f.ports, 'src', 'c1')).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/src is not a snapshot/) });
    await expect(takeSnapshot(f.ports, 'src', 's1')).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(takeSnapshot(f.ports, 'nosuch', 's3')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect([...f.byName.keys()]).toEqual(['src', 's1']);
  });

  it('clones: rows copied then committed; a failed copy leaves the clone marked deleting', async () => {
    const ok = fake([vdisk(7n, 'src'), vdisk(8n, 's1', { snapshotOf: 7n })]);
    const { clone, blocks } = await makeClone(ok.ports, 's1', 'c1');
    expect(blocks).toBe(3);
    expect(clone.spec).toMatchObject({ cloneOf: 8n });
    expect(clone.spec.snapshotOf).toBeUndefined();
    expect(clone.spec.creatingSinceMs).toBeUndefined();
    expect(ok.events.map((e) => e.type)).toEqual(['vdisk.clone.created']);
    const bad = fake([vdisk(7n, 'src'), vdisk(8n, 's1', { snapshotOf: 7n })], 'copy');
    await expect(makeClone(bad.ports, 's1', 'c1')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(bad.byName.get('c1')!.spec.deletingSinceMs).toBe(1_000);
  });
});
