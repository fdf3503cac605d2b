// The config rules over an in-memory view: references must exist, a replication
// factor must fit the nodes with disks, a vDisk never shrinks or moves, and nothing
// in use can be deleted.
import { validate } from '@strata/codec';
import { cfgObjectWithRevision, createRequest, type CfgObjectWithRevision, type Kind, type ObjectOf } from '@strata/proto';
import { checkDeletable, checkNameFree, checkReferences, nodesWithDisks, resolve, type ConfigView } from '../src/rules';

class FakeView implements ConfigView {
  constructor(private readonly objects: CfgObjectWithRevision[]) {}
  get<K extends Kind>(kind: K, id: bigint): ObjectOf<K> | undefined {
    return this.objects.find((o): o is ObjectOf<K> => o.kind === kind && o.id === id);
  }
  byName<K extends Kind>(kind: K, name: string): ObjectOf<K> | undefined {
    return this.objects.find((o): o is ObjectOf<K> => o.kind === kind && o.name === name);
  }
  list<K extends Kind>(kind: K): ObjectOf<K>[] {
    return this.objects.filter((o): o is ObjectOf<K> => o.kind === kind);
  }
}

let nextId = 1n;
function obj(kind: Kind, name: string, spec: object): CfgObjectWithRevision {
  const status = kind === 'node' ? { status: { liveness: 'alive', incarnation: 1, changedAtMs: 0 } } : {};
  return validate({ kind, id: nextId++, name, spec, ...status, createdAtMs: 0, updatedAtMs: 0, epoch: 1, revision: 1 }, cfgObjectWithRevision);
}
const req = (value: unknown) => validate(value, createRequest);

const n1 = obj('node', 'n1', {});
const n2 = obj('node', 'n2', {});
const n3 = obj('node', 'n3', {});
const d1 = obj('disk', 'd1', { node: n1.id, path: '/a', tier: 'ssd', capacityBytes: 1 });
const d2 = obj('disk', 'd2', { node: n2.id, path: '/a', tier: 'hdd', capacityBytes: 1 });
const d2b = obj('disk', 'd2b', { node: n2.id, path: '/b', tier: 'hdd', capacityBytes: 1 });
const c1 = obj('container', 'c1', { replicationFactor: 2 });
const v1 = obj('vdisk', 'v1', { container: c1.id, sizeBytes: 2 ** 30 });
const view = new FakeView([n1, n2, n3, d1, d2, d2b, c1, v1]);

describe('config rules', () => {
  it('counts distinct nodes with disks, not disks', () => {
    expect(nodesWithDisks(view).size).toBe(2);
  });

  it('accepts a replication factor up to the nodes with disks and names the field beyond it', () => {
    expect(() => checkReferences(view, req({ kind: 'container', name: 'ok', spec: { replicationFactor: 2 } }))).not.toThrow();
    expect(() => checkReferences(view, req({ kind: 'container', name: 'no', spec: { replicationFactor: 3 } }))).toThrow(
      'spec.replicationFactor: 3 is more than the 2 nodes with disks',
    );
  });

  it('refuses container settings nothing honours yet, naming the field, and accepts their defaults', () => {
    const container = (spec: Record<string, unknown>) => req({ kind: 'container', name: 'c', spec: { replicationFactor: 1, ...spec } });
    expect(() => checkReferences(view, container({ dedup: 'inline' }))).toThrow('spec.dedup: inline is not built yet');
    expect(() => checkReferences(view, container({ compression: 'post-process' }))).toThrow('spec.compression: post-process is not built yet');
    expect(() => checkReferences(view, container({ maxCapacityBytes: 2 ** 40 }))).toThrow(/^spec\.maxCapacityBytes: is not built yet/);
    expect(() => checkReferences(view, container({ reservedCapacityBytes: 2 ** 30 }))).toThrow(/^spec\.reservedCapacityBytes: is not built yet/);
    expect(() => checkReferences(view, container({ dedup: 'off', compression: 'off', reservedCapacityBytes: 0 }))).not.toThrow();
  });

  it('requires referenced objects to exist', () => {
    expect(() => checkReferences(view, req({ kind: 'vdisk', name: 'x', spec: { container: 424242n, sizeBytes: 512 } }))).toThrow('spec.container: container 424242 does not exist');
    expect(() => checkReferences(view, req({ kind: 'disk', name: 'x', spec: { node: 999n, path: '/z', tier: 'ssd', capacityBytes: 1 } }))).toThrow(/^spec\.node: /);
    expect(() => checkReferences(view, req({ kind: 'vm', name: 'x', spec: { host: 5n, cpuCount: 1, memoryBytes: 1 } }))).toThrow(/^spec\.host: /);
  });

  it('refuses two disks on one path of one node', () => {
    expect(() => checkReferences(view, req({ kind: 'disk', name: 'dup', spec: { node: n1.id, path: '/a', tier: 'ssd', capacityBytes: 1 } }))).toThrow(/already uses \/a/);
    expect(() => checkReferences(view, req({ kind: 'disk', name: 'ok', spec: { node: n3.id, path: '/a', tier: 'ssd', capacityBytes: 1 } }))).not.toThrow();
  });

  it('lets a vDisk grow but not shrink, move or change its block size', () => {
    const change = (spec: object) => () => checkReferences(view, req({ kind: 'vdisk', name: 'v1', spec }), v1);
    expect(change({ container: c1.id, sizeBytes: 2 ** 31 })).not.toThrow();
    expect(change({ container: c1.id, sizeBytes: 2 ** 29 })).toThrow(/^spec\.sizeBytes: cannot shrink/);
    expect(change({ container: c1.id, sizeBytes: 2 ** 30, blockSizeBytes: 4096 })).toThrow(/^spec\.blockSizeBytes: /);
  });

  it('marks a vDisk deleting by an update, refuses it at create, and refuses any change once it is marked', () => {
    const spec = { container: c1.id, sizeBytes: 2 ** 30 };
    expect(() => checkReferences(view, req({ kind: 'vdisk', name: 'v1', spec: { ...spec, deletingSinceMs: 5 } }), v1)).not.toThrow();
    expect(() => checkReferences(view, req({ kind: 'vdisk', name: 'new', spec: { ...spec, deletingSinceMs: 5 } }))).toThrow(/^spec\.deletingSinceMs: is set by a delete/);
    const deleting = obj('vdisk', 'gone', { ...spec, deletingSinceMs: 5 });
    expect(() => checkReferences(view, req({ kind: 'vdisk', name: 'gone', spec }), deleting)).toThrow(/^spec: vdisk gone is being deleted .*can no longer be changed/);
    expect(() => checkReferences(view, req({ kind: 'vdisk', name: 'gone', spec: { ...spec, deletingSinceMs: 5 } }), deleting)).toThrow(/is being deleted/);
  });

  it('creates a snapshot or clone only tentative and linked right: no snapshot of a snapshot, no clone of a vDisk that is not one, same size', () => {
    const spec = { container: c1.id, sizeBytes: 2 ** 30 };
    const snap = obj('vdisk', 's1', { ...spec, snapshotOf: v1.id });
    const lineage = new FakeView([n1, n2, n3, d1, d2, d2b, c1, v1, snap]);
    const create = (name: string, extra: object) => () => checkReferences(lineage, req({ kind: 'vdisk', name, spec: { ...spec, ...extra } }));
    expect(create('s2', { snapshotOf: v1.id, creatingSinceMs: 5 })).not.toThrow();
    expect(create('c1', { cloneOf: snap.id, creatingSinceMs: 5 })).not.toThrow();
    expect(create('s2', { snapshotOf: v1.id })).toThrow(/^spec\.creatingSinceMs: a snapshot or clone is created tentative/);
    expect(create('s3', { snapshotOf: snap.id, creatingSinceMs: 5 })).toThrow(/^spec\.snapshotOf: vdisk s1 is a snapshot: a snapshot of a snapshot is refused/);
    expect(create('c2', { cloneOf: v1.id, creatingSinceMs: 5 })).toThrow(/^spec\.cloneOf: vdisk v1 is not a snapshot/);
    expect(create('c3', { cloneOf: 4242n, creatingSinceMs: 5 })).toThrow(/^spec\.cloneOf: vdisk 4242 does not exist/);
    expect(create('s4', { snapshotOf: v1.id, creatingSinceMs: 5, sizeBytes: 2 ** 29 })).toThrow(/^spec\.sizeBytes: must be 1073741824 bytes/);
    expect(create('plain', { creatingSinceMs: 5 })).toThrow(/^spec\.creatingSinceMs: is only for a snapshot or clone/);
  });

  it('never changes a vDisk\'s lineage, resizes a snapshot, or marks a committed vDisk creating again', () => {
    const spec = { container: c1.id, sizeBytes: 2 ** 30 };
    const snap = obj('vdisk', 's1', { ...spec, snapshotOf: v1.id, creatingSinceMs: 5 });
    const update = (extra: object, existing = snap) => () => checkReferences(view, req({ kind: 'vdisk', name: existing.name, spec: { ...spec, ...extra } }), existing);
    // The commit removes the mark.
    expect(update({ snapshotOf: v1.id })).not.toThrow();
    expect(update({ creatingSinceMs: 5 })).toThrow(/^spec\.snapshotOf: cannot change/);
    expect(update({ snapshotOf: v1.id, sizeBytes: 2 ** 31 })).toThrow(/^spec\.sizeBytes: a snapshot cannot be resized/);
    expect(update({ creatingSinceMs: 9 }, v1)).toThrow(/^spec\.creatingSinceMs: is set only when/);
  });

  it('marks a node or disk draining by an update (and clears it), and refuses it at create', () => {
    expect(() => checkReferences(view, req({ kind: 'node', name: 'n2', spec: { drainingSinceMs: 5 } }), n2)).not.toThrow();
    expect(() => checkReferences(view, req({ kind: 'node', name: 'n9', spec: { drainingSinceMs: 5 } }))).toThrow(/^spec\.drainingSinceMs: is set by a drain \(strata node drain\)/);
    const disk = { node: n2.id, path: '/a', tier: 'hdd', capacityBytes: 1 };
    expect(() => checkReferences(view, req({ kind: 'disk', name: 'd2', spec: { ...disk, drainingSinceMs: 5 } }), d2)).not.toThrow();
    expect(() => checkReferences(view, req({ kind: 'disk', name: 'd2', spec: disk }), { ...d2, spec: { ...disk, drainingSinceMs: 5 } } as CfgObjectWithRevision)).not.toThrow();
    expect(() => checkReferences(view, req({ kind: 'disk', name: 'd9', spec: { ...disk, path: '/z', drainingSinceMs: 5 } }))).toThrow(/^spec\.drainingSinceMs: is set by a drain \(strata disk drain\)/);
  });

  it('refuses to mark deleting a vDisk a VM still uses (the sweep could not commit)', () => {
    const used = obj('vdisk', 'boot', { container: c1.id, sizeBytes: 2 ** 30 });
    const host = obj('host', 'h1', { node: n1.id, cpuCount: 2, memoryBytes: 2 ** 30 });
    const vm = obj('vm', 'web', { host: host.id, cpuCount: 1, memoryBytes: 2 ** 28, vdisks: [used.id] });
    const withVm = new FakeView([n1, n2, n3, d1, d2, d2b, c1, used, host, vm]);
    expect(() => checkReferences(withVm, req({ kind: 'vdisk', name: 'boot', spec: { container: c1.id, sizeBytes: 2 ** 30, deletingSinceMs: 5 } }), used)).toThrow('vdisk boot is still used by vm web');
  });

  it('refuses to delete what is in use, naming the users', () => {
    expect(() => checkDeletable(view, c1)).toThrow('container c1 is still used by vdisk v1');
    expect(() => checkDeletable(view, n2)).toThrow('node n2 is still used by disk d2, disk d2b');
    expect(() => checkDeletable(view, n3)).not.toThrow();
    expect(() => checkDeletable(view, v1)).not.toThrow();
  });

  it('finds objects by name or id, and says which one is missing', () => {
    expect(resolve(view, 'vdisk', { name: 'v1' })).toBe(v1);
    expect(resolve(view, 'vdisk', { id: v1.id })).toBe(v1);
    expect(() => resolve(view, 'vdisk', { name: 'nope' })).toThrow('vdisk "nope" does not exist');
    expect(() => checkNameFree(view, 'node', 'n1')).toThrow(/already exists/);
  });
});
