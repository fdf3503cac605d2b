// The consistency check on crafted clusters: a clean one (a source, its snapshot, a
// clone, shared and sealed extent groups) has no finding; each kind of garbage and each
// dangling reference planted into it is found, named, and nothing else is reported.
import type { EgroupEntry, ObjectOf, VdiskRow } from '@strata/proto';
import { checkCluster, describeFindings, type CheckInput } from '@strata/sweep';

const MiB = 2 ** 20;
const NOW = 1_000_000_000;

type Vdisk = ObjectOf<'vdisk'>;

function vdisk(id: bigint, extra: Partial<Vdisk['spec']> = {}): Pick<Vdisk, 'id' | 'name' | 'spec'> {
  return { id, name: `v${id}`, spec: { container: 1n, sizeBytes: 64 * MiB, blockSizeBytes: MiB, shared: false, qos: { priority: 'normal', weight: 1 }, ...extra } };
}

function egroup(writer: bigint, disks: bigint[], extra: Partial<EgroupEntry> = {}): EgroupEntry {
  return { vdisk: writer, replicas: disks.map((d) => ({ disk: d, node: `n${d - 100n}` })), version: 1, sizeBytes: 4 * MiB, extents: [], ...extra };
}

function blocks(...egroups: bigint[]): VdiskRow {
  const out: VdiskRow['blocks'] = {};
  egroups.forEach((eg, i) => (out[String(i)] = { egroup: eg, offset: 0, length: MiB }));
  return { blocks: out };
}

/**
 * Source 7 (generation 1), its snapshot 8 and a clone 9 of it. 500 (gen 0) is shared by
 * 7 and 8; 501 sealed, named by 8 and 9; 510 is 7's open extent group (gen 1); 520 is
 * the clone's own. Every replica on disks 101 and 102, each with its file.
 */
function clean(): CheckInput {
  const egroups = [
    { id: 500n, entry: egroup(7n, [101n, 102n]) },
    { id: 501n, entry: egroup(7n, [101n, 102n]) },
    { id: 510n, entry: egroup(7n, [101n, 102n], { gen: 1 }) },
    { id: 520n, entry: egroup(9n, [101n, 102n]) },
  ];
  return {
    vdisks: [vdisk(7n), vdisk(8n, { snapshotOf: 7n }), vdisk(9n, { cloneOf: 8n })],
    disks: [101n, 102n],
    rows: [
      { key: '7.0', value: blocks(500n, 510n) },
      { key: '8.0', value: blocks(500n, 501n) },
      { key: '9.0', value: blocks(501n, 520n) },
    ],
    extents: [],
    egroups,
    generations: new Map([[7n, 1]]),
    ownKeys: ['vdisk.7', 'vdisk.9', 'role.config', 'md.3'],
    oplog: new Map([['oplog.7', 3]]),
    listings: [101n, 102n].map((disk) => ({ node: `n${disk - 100n}`, disk, egroups: egroups.map((e) => e.id) })),
    nowMs: NOW,
  };
}

function check(input: CheckInput): string[] {
  return checkCluster(input).map((f) => `${f.kind}: ${f.what}`);
}

describe('checkCluster', () => {
  it('finds nothing in a clean cluster with snapshots, clones, shared and sealed extent groups', () => {
    expect(describeFindings(checkCluster(clean()))).toBe('');
  });

  it('does not count an open extent group of a live writer that no row names yet (it may still be allocated in)', () => {
    const c = clean();
    c.rows = c.rows.map((r) => (r.key === '7.0' ? { key: r.key, value: blocks(500n) } : r));
    expect(check(c)).toEqual([]);
  });

  it('finds what an interrupted delete left: the vDisk still marked, its rows, its sealed and its own extent groups, own keys and oplog', () => {
    const c = clean();
    c.vdisks = [vdisk(7n), vdisk(8n, { snapshotOf: 7n, deletingSinceMs: 5 }), vdisk(9n, { cloneOf: 8n })];
    // The snapshot's row still names 500 (shared with 7: fine) and 501 (the clone names it: fine).
    expect(check(c)).toEqual(['garbage: vdisk v8 (8)', 'garbage: md-vdisk 8.0']);
    // Swept but for leftovers: the config object gone, a row, the clone gone too (501 now sealed and unnamed), own keys and oplog of 9.
    c.vdisks = [vdisk(7n)];
    c.ownKeys = [...c.ownKeys, 'takeover.9'];
    c.oplog = new Map([...c.oplog, ['oplog.9', 2]]);
    expect(check(c)).toEqual([
      'garbage: md-vdisk 8.0',
      'garbage: md-vdisk 9.0',
      'garbage: md-egroup 501',
      'garbage: md-egroup 520',
      'garbage: own vdisk.9',
      'garbage: own takeover.9',
      'garbage: oplog oplog.9',
    ]);
  });

  it('counts a snapshot or clone left creating as garbage only once the creating timeout has passed', () => {
    const c = clean();
    c.vdisks = [...c.vdisks, vdisk(11n, { cloneOf: 8n, creatingSinceMs: NOW - 2_000 })];
    c.rows = [...c.rows, { key: '11.0', value: blocks(501n) }];
    expect(check({ ...c, creatingTimeoutMs: 5_000 })).toEqual([]);
    expect(check({ ...c, creatingTimeoutMs: 1_000 })).toEqual(['garbage: vdisk v11 (11)', 'garbage: md-vdisk 11.0']);
  });

  it('finds replica files no entry names: no entry at all, or an entry naming other disks', () => {
    const c = clean();
    c.listings = [
      { node: 'n1', disk: 101n, egroups: [500n, 501n, 510n, 520n, 999n] },
      { node: 'n3', disk: 103n, egroups: [500n] },
      { node: 'n2', disk: 102n, egroups: [500n, 501n, 510n, 520n] },
    ];
    c.disks = [...c.disks, 103n];
    const found = checkCluster(c);
    expect(found.map((f) => `${f.kind}: ${f.what}: ${f.why}`)).toEqual([
      'garbage: replica of egroup 999 on disk 101 (n1): its extent group has no md-egroup entry',
      'garbage: replica of egroup 500 on disk 103 (n3): its entry names disks 101, 102',
    ]);
  });

  it('finds dangling references: a block naming no entry, an extent naming no entry, a replica without its file or on a disk not configured', () => {
    const c = clean();
    c.rows = [...c.rows, { key: '9.1', value: blocks(777n) }];
    c.extents = [{ key: 'abc', egroup: 778n }];
    c.egroups = c.egroups.map((e) => (e.id === 520n ? { id: 520n, entry: egroup(9n, [101n, 105n]) } : e));
    c.listings = [
      { node: 'n1', disk: 101n, egroups: [500n, 501n, 510n, 520n] },
      { node: 'n2', disk: 102n, egroups: [500n, 510n, 520n] },
    ];
    expect(check(c)).toEqual([
      'dangling: md-vdisk 9.1 block 0',
      'dangling: md-extent abc',
      'dangling: md-egroup 520 replica on disk 105 (n5)',
      'garbage: replica of egroup 520 on disk 102 (n2)',
      'dangling: md-egroup 501 replica on disk 102 (n2)',
    ]);
  });

  it('does not judge the files of a disk it has no listing of, nor a replica not written yet (version 0)', () => {
    const c = clean();
    c.listings = [{ node: 'n1', disk: 101n, egroups: [500n, 501n, 510n] }];
    c.egroups = c.egroups.map((e) => (e.id === 520n ? { id: 520n, entry: { ...e.entry, version: 0 } } : e));
    expect(check(c)).toEqual([]);
  });
});
