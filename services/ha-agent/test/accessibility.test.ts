// A vDisk is accessible when every extent group its map points to has a replica on a
// live node.
import { egroupsOf, judgeVdisk } from '../src/accessibility';

const entry = (nodes: string[]) => ({ vdisk: 1n, replicas: nodes.map((node, i) => ({ disk: BigInt(100 + i), node })), version: 1, sizeBytes: 0, extents: [] });
const db = { id: 1n, name: 'db' };

test('every extent group with a replica on a live node: accessible', () => {
  expect(judgeVdisk(db, new Map([[7n, entry(['n1', 'n2'])], [8n, entry(['n3'])]]), new Set(['n2', 'n3']))).toEqual({ ok: true });
  expect(judgeVdisk(db, new Map(), new Set(['n2']))).toEqual({ ok: true });
});

test('an extent group whose replicas are all on dead nodes, or without metadata, or no live node at all: not accessible, and why', () => {
  expect(judgeVdisk(db, new Map([[7n, entry(['n1', 'n2'])]]), new Set(['n3']))).toEqual({ ok: false, reason: 'vdisk db: extent group 7 has no replica on a live node (its replicas are on n1, n2)' });
  expect(judgeVdisk(db, new Map([[7n, undefined]]), new Set(['n3']))).toEqual({ ok: false, reason: 'vdisk db: extent group 7 has no metadata' });
  expect(judgeVdisk(db, new Map(), new Set())).toEqual({ ok: false, reason: 'vdisk db: no node is alive to serve it' });
});

test('the extent groups of a vDisk are those its rows point to, once each', () => {
  const loc = (egroup: bigint) => ({ egroup, offset: 0, length: 1 });
  expect([...egroupsOf([{ blocks: { '0': loc(7n), '1': loc(7n) } }, { blocks: { '16': loc(9n) } }])]).toEqual([7n, 9n]);
});
