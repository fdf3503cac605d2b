// The garbage collection's I/O with a fake bus and fake metadata: disks listed in
// pages, a disk whose listing fails skipped, each entry read again just before its
// delete (an entry that names the disk now keeps the replica), an extent group being
// copied skipped, nothing sent by a master that lost its lease meanwhile, and
// STRATA_GC=off deleting nothing.
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { createLogger } from '@strata/log';
import type { EgroupEntry, ObjectOf } from '@strata/proto';
import { collectGarbage, type GcDeps } from '../src/gc';
import { clusterView } from '../src/view';

const OLD = Date.now() - 3_600_000;

/** n1 (disk 101) and n2 (disk 102), both alive. */
function view(): ReturnType<typeof clusterView> {
  const nodes = [1, 2].map((i) => ({ kind: 'node', id: BigInt(i), name: `n${i}`, spec: {}, status: { liveness: 'alive', incarnation: 1, changedAtMs: 0 } })) as unknown as ObjectOf<'node'>[];
  const disks = [1, 2].map((i) => ({ kind: 'disk', id: BigInt(100 + i), name: `n${i}-d1`, spec: { node: BigInt(i), path: '/d', tier: 'ssd', capacityBytes: 2 ** 30 } })) as unknown as ObjectOf<'disk'>[];
  return clusterView({ nodes, disks, containers: [], vdisks: [] }, () => 0);
}

const entry = (disks: number[]): EgroupEntry => ({ vdisk: 7n, replicas: disks.map((d) => ({ disk: BigInt(d), node: `n${d - 100}` })), version: 1, sizeBytes: 10, extents: [] });

interface World {
  /** Replicas on each disk (egroup ids). */
  disks: Map<bigint, bigint[]>;
  failing: Set<bigint>;
  deleted: string[];
  lists: number;
  /** Entries as the re-read sees them. */
  entries: Map<bigint, EgroupEntry>;
}

function deps(w: World, over: Partial<GcDeps> = {}): GcDeps {
  const bus = {
    request: async (subject: string, req: { disk: bigint; egroup?: bigint; after?: bigint; limit?: number }) => {
      if (subject.endsWith('.list')) {
        w.lists++;
        if (w.failing.has(req.disk)) throw new StrataError(ErrorCode.TIMEOUT, 'no answer');
        const ids = (w.disks.get(req.disk) ?? []).filter((e) => req.after === undefined || e > req.after);
        // Pages of 2, whatever the limit asked: the client must follow `more`.
        return { replicas: ids.slice(0, 2).map((egroup) => ({ egroup, sizeBytes: 10, version: 1, mtimeMs: OLD })), more: ids.length > 2 };
      }
      if (subject.endsWith('.delete')) {
        w.deleted.push(`${req.disk}/${req.egroup}`);
        return {};
      }
      throw new Error(`unexpected ${subject}`);
    },
  } as unknown as Bus;
  return {
    bus,
    md: { get: (async (_map: string, key: string) => {
      const e = w.entries.get(BigInt(key));
      return e === undefined ? null : { value: e, revision: 1 };
    }) as unknown as GcDeps['md']['get'] },
    log: createLogger({ service: 'test', level: 'silent' }),
    timeoutMs: 1_000,
    graceMs: 60_000,
    deletesPerSec: 1_000,
    enabled: true,
    leading: () => true,
    copying: () => false,
    ...over,
  };
}

function world(): World {
  return { disks: new Map([[101n, [1n, 2n, 3n, 4n, 5n]], [102n, [1n]]]), failing: new Set(), deleted: [], lists: 0, entries: new Map([[1n, entry([101, 102])]]) };
}

describe('collectGarbage', () => {
  it('lists every page, deletes what no entry names, and reports the counts', async () => {
    const w = world();
    const rows = [{ egroup: 1n, revision: 1, entry: entry([101, 102]) }];
    const { summary } = await collectGarbage(deps(w), rows, view());
    expect(w.deleted).toEqual(['101/2', '101/3', '101/4', '101/5']);
    expect(summary).toMatchObject({ listed: 6, deleted: 4, bytes: 40, young: 0, skippedDisks: 0, enabled: true });
  });

  it('keeps a replica whose entry names its disk when read again, and one whose extent group is being copied', async () => {
    const w = world();
    // The scan read no entry at all; by the time of the deletes, 1's names both disks and 2's names disk 101.
    w.entries.set(2n, entry([101]));
    const { summary } = await collectGarbage(deps(w, { copying: (e) => e === 3n }), [], view());
    expect(w.deleted).toEqual(['101/4', '101/5']);
    expect(summary.deleted).toBe(2);
  });

  it('sends no delete once the lease is lost during the re-read of its entry (a master paused there wakes deposed)', async () => {
    const w = world();
    let leading = true;
    const d = deps(w, { leading: () => leading });
    const get = d.md.get;
    // The re-read is where the pause falls: the lease runs out before it returns.
    d.md = { get: (async (...args: Parameters<typeof get>) => {
      const answer = await get(...args);
      leading = false;
      return answer;
    }) as typeof get };
    // 1 is live, so the first re-read is of 2: still garbage, and the lease gone when it returns.
    const rows = [{ egroup: 1n, revision: 1, entry: entry([101, 102]) }];
    const { summary } = await collectGarbage(d, rows, view());
    expect(w.deleted).toEqual([]);
    expect(summary.deleted).toBe(0);
  });

  it('skips a disk whose listing failed, and deletes nothing when off', async () => {
    const w = world();
    w.failing.add(101n);
    const off = await collectGarbage(deps(w, { enabled: false }), [], view());
    expect(w.deleted).toEqual([]);
    expect(off.summary).toMatchObject({ listed: 1, deleted: 0, skippedDisks: 1, enabled: false });
  });
});
