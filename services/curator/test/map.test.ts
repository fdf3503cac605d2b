// The map of a scan on a curator: a page is bounded in bytes as well as rows (the size
// a row is counted for must never be below its CBOR: random entries, fast-check), and
// a slave refuses a task from a master whose lease epoch has passed.
import fc from 'fast-check';
import { encode } from '@strata/codec';
import { ErrorCode } from '@strata/errors';
import type { CuratorMapRequest, MapRow } from '@strata/proto';
import { refuseStale, rowBytesAtMost } from '../src/map';

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const uint = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,62}$/);

const row: fc.Arbitrary<MapRow> = fc.record({
  egroup: u64,
  revision: uint,
  entry: fc.record(
    {
      vdisk: u64,
      replicas: fc.array(fc.record({ node: name, disk: u64 }), { minLength: 1, maxLength: 5 }),
      version: uint,
      sizeBytes: uint,
      tentative: fc.record({ version: uint, atMs: uint }),
      gen: uint,
      extents: fc.array(fc.record({ id: fc.tuple(u64, uint).map(([v, b]) => `${v}:${b}`), offset: uint, length: uint, refs: uint }), { maxLength: 64 }),
    },
    { requiredKeys: ['vdisk', 'replicas', 'version', 'sizeBytes', 'extents'] },
  ),
});

describe('rowBytesAtMost', () => {
  it('is never below the CBOR of the row', () => {
    fc.assert(
      fc.property(row, (r) => {
        expect(encode(r).length).toBeLessThanOrEqual(rowBytesAtMost(r));
      }),
    );
  });
});

describe('refuseStale', () => {
  const req: CuratorMapRequest = { scan: 1, master: 'n1', curatorEpoch: 4, task: 0, partitions: [0], kind: 'complete', sinceRevision: 0, alive: [] };
  const lease = (holder: string, epoch: number): { holder: string; epoch: number; renewedAtMs: number; ttlMs: number } => ({ holder, epoch, renewedAtMs: 0, ttlMs: 3_000 });

  it('accepts a task from the master holding the lease (or when no lease is read)', () => {
    expect(() => refuseStale(req, lease('n1', 4))).not.toThrow();
    expect(() => refuseStale(req, undefined)).not.toThrow();
  });

  it('refuses, FENCED and saying who the master is, a task from a master the lease has moved past', () => {
    for (const l of [lease('n2', 5), lease('', 5), lease('n2', 4)]) {
      expect(() => refuseStale(req, l)).toThrow(expect.objectContaining({ code: ErrorCode.FENCED, message: expect.stringMatching(/map task 0 of scan 1 refused: it comes from n1 at curator epoch 4, but curator.master is (n2|released) at epoch [45]/) }));
    }
  });
});
