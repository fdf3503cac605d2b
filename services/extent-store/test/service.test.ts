// The extent-store actor without NATS: a fake bus captures the handlers (requests
// still pass through the proto schemas), a fake config service lists the disks, and a
// fake `hb` bucket records usage. It proves which disks are served as the config
// changes (added, resized, moved away, deleted, unusable then fixed), the errors for
// disks that are not this node's, the format-2 requests (pieces, ranged reads) and the
// slice size setting reaching the disks, usage reports, and that stop closes every disk.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bus } from '@strata/bus';
import { validate } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { createLogger } from '@strata/log';
import { EstoreOp, subjects, type DiskUsage, type ObjectOf } from '@strata/proto';
import { readSettings } from '@strata/actor';
import { crc32c } from '@node-rs/crc32';
import { ExtentStore } from '../src/service';
import { extentStoreSettings } from '../src/settings';
import { decodeSidecarFile } from '../src/sidecar';

const N1 = 1001n;
const N2 = 1002n;

interface Served {
  schema: Parameters<typeof validate>[1];
  handler: (request: unknown, ctx: unknown) => unknown;
}

class FakeBus {
  readonly served = new Map<string, Served>();
  async serve(subject: string, schema: Served['schema'], handler: Served['handler']): Promise<{ subject: string; stop(): Promise<void> }> {
    this.served.set(subject, { schema, handler });
    return { subject, stop: async () => void this.served.delete(subject) };
  }
  /** What the bus would do with a request: validate, then call the handler. */
  async call(op: EstoreOp, request: unknown): Promise<unknown> {
    const s = this.served.get(subjects.estore('n1', op));
    if (s === undefined) throw new Error(`nothing serves ${op}`);
    return s.handler(validate(request, s.schema), {});
  }
}

function disk(id: bigint, node: bigint, path: string, capacityBytes: number): ObjectOf<'disk'> {
  return { kind: 'disk', id, name: `d${id}`, createdAtMs: 0, updatedAtMs: 0, epoch: 1, revision: 1, spec: { node, path, tier: 'ssd', capacityBytes } };
}

let root: string;
let disks: ObjectOf<'disk'>[];
let bus: FakeBus;
let usage: Map<string, DiskUsage>;
let store: ExtentStore;

function makeStore(nodeRegistered = true, flags: string[] = []): ExtentStore {
  const settings = readSettings(extentStoreSettings, ['--node', 'n1', '--usage-report-interval-ms', '20', '--disk-refresh-interval-ms', '600000', ...flags], {});
  return new ExtentStore({
    bus: bus as unknown as Bus,
    config: {
      get: async (request) => {
        if (!nodeRegistered || request.name !== 'n1') throw new StrataError(ErrorCode.NOT_FOUND, `node ${request.name} does not exist`);
        return { kind: 'node', id: N1, name: 'n1', createdAtMs: 0, updatedAtMs: 0, epoch: 1, revision: 1, spec: {}, status: { liveness: 'alive', incarnation: 1, changedAtMs: 0 } };
      },
      list: (async () => disks.map((d) => ({ ...d, spec: { ...d.spec } }))) as never,
    },
    usage: {
      put: async (key: string, value: DiskUsage) => {
        usage.set(key, value);
        return 1;
      },
      delete: async (key: string) => void usage.delete(key),
    },
    log: createLogger({ service: 'test', level: 'silent' }),
    settings,
  });
}

const write = (diskId: bigint, egroup: bigint, bytes: number): Promise<unknown> =>
  bus.call(EstoreOp.write, { disk: diskId, egroup, vdisk: 1n, epoch: 1, version: 1, sizeBytes: bytes, pieces: [{ offset: 0, data: new Uint8Array(bytes).fill(7) }] });

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-estore-svc-'));
  bus = new FakeBus();
  usage = new Map();
  disks = [disk(11n, N1, join(root, 'a'), 4096), disk(12n, N1, join(root, 'b'), 4096), disk(13n, N2, join(root, 'c'), 4096)];
});

afterEach(async () => {
  await store?.stop();
  await rm(root, { recursive: true, force: true });
});

it('refuses to start for a node the config service does not know, saying how to register it', async () => {
  store = makeStore(false);
  await expect(store.start()).rejects.toThrow('node n1 is not registered in the config service; register it first ("strata node add n1")');
});

it("serves this node's disks only, each operation on its own subject", async () => {
  store = makeStore();
  await store.start();
  expect([...bus.served.keys()].sort()).toEqual(['delete', 'list', 'read', 'stat', 'write'].map((op) => `strata.estore.n1.${op}`));
  expect([...store.openDisks().keys()]).toEqual(['11', '12']);
  await expect(write(11n, 1n, 100)).resolves.toMatchObject({ version: 1 });
  await expect(bus.call(EstoreOp.read, { disk: 11n, egroup: 1n, offset: 0, length: 100 })).resolves.toEqual({ data: new Uint8Array(100).fill(7) });
  // Pieces at any offset, zeros pieces, and reads of any range.
  await expect(
    bus.call(EstoreOp.write, { disk: 11n, egroup: 1n, vdisk: 1n, epoch: 1, version: 2, sizeBytes: 300, pieces: [{ offset: 250, data: new Uint8Array([1, 2]) }, { offset: 10, zeros: 5 }] }),
  ).resolves.toEqual({ version: 2, crc32c: crc32c(new Uint8Array([1, 2, 0, 0, 0, 0, 0])) });
  await expect(bus.call(EstoreOp.read, { disk: 11n, egroup: 1n, offset: 8, length: 9 })).resolves.toEqual({ data: new Uint8Array([7, 7, 0, 0, 0, 0, 0, 7, 7]) });
  await expect(bus.call(EstoreOp.read, { disk: 11n, egroup: 1n, offset: 249, length: 4 })).resolves.toEqual({ data: new Uint8Array([0, 1, 2, 0]) });
  await expect(bus.call(EstoreOp.stat, { disk: 11n, egroup: 1n })).resolves.toEqual({ version: 2, sizeBytes: 300 });
  await expect(bus.call(EstoreOp.delete, { disk: 11n, egroup: 1n })).resolves.toEqual({});
  await expect(write(13n, 1n, 100)).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'disk 13 is not a disk of node n1' });
});

it('lists the replicas of a disk in pages, refusing a disk of another node and a limit out of range', async () => {
  store = makeStore();
  await store.start();
  const before = Date.now();
  for (const egroup of [5n, 3n, 9n]) await write(11n, egroup, 100);
  await write(12n, 4n, 200);
  const first = (await bus.call(EstoreOp.list, { disk: 11n, limit: 2 })) as { replicas: { egroup: bigint; mtimeMs: number }[]; more: boolean };
  expect(first).toMatchObject({ replicas: [{ egroup: 3n, sizeBytes: 100, version: 1 }, { egroup: 5n, sizeBytes: 100, version: 1 }], more: true });
  for (const r of first.replicas) expect(r.mtimeMs).toBeGreaterThanOrEqual(before);
  await expect(bus.call(EstoreOp.list, { disk: 11n, after: 5n, limit: 2 })).resolves.toMatchObject({ replicas: [{ egroup: 9n }], more: false });
  await expect(bus.call(EstoreOp.list, { disk: 11n, after: 9n })).resolves.toEqual({ replicas: [], more: false });
  await expect(bus.call(EstoreOp.list, { disk: 12n })).resolves.toMatchObject({ replicas: [{ egroup: 4n, sizeBytes: 200 }], more: false });
  await expect(bus.call(EstoreOp.list, { disk: 13n })).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'disk 13 is not a disk of node n1' });
  await expect(bus.call(EstoreOp.list, { disk: 11n, limit: 0 })).rejects.toMatchObject({ code: 'INVALID' });
  await expect(bus.call(EstoreOp.list, { disk: 11n, limit: 10_001 })).rejects.toMatchObject({ code: 'INVALID' });
});

it('makes new replicas with the slice size of its settings', async () => {
  store = makeStore(true, ['--slice-bytes', '8192']);
  await store.start();
  await write(11n, 1n, 100);
  const { sidecar } = decodeSidecarFile(await readFile(join(root, 'a', 'egroups', '1.meta')));
  expect(sidecar.sliceBytes).toBe(8192);
  expect(sidecar.crcs).toHaveLength(4);
});

it('reports the usage of every open disk', async () => {
  store = makeStore();
  await store.start();
  await write(12n, 5n, 1000);
  const deadline = Date.now() + 5_000;
  while (usage.get('disk.12')?.usedBytes !== 1000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(usage.get('disk.12')).toMatchObject({ node: 'n1', usedBytes: 1000, capacityBytes: 4096 });
  expect(usage.get('disk.11')).toMatchObject({ node: 'n1', usedBytes: 0 });
  expect(usage.has('disk.13')).toBe(false);
});

it('follows the config: new capacities, disks moved away or deleted, disks added', async () => {
  store = makeStore();
  await store.start();
  await expect(write(11n, 1n, 5000)).rejects.toMatchObject({ code: 'NO_SPACE' });
  disks[0]!.spec.capacityBytes = 8192;
  // Disk 12 moves to n2, a new disk 14 arrives, and disk 13 (n2's) is deleted.
  disks[1]!.spec.node = N2;
  disks[2] = disk(14n, N1, join(root, 'd'), 4096);
  usage.set('disk.12', { node: 'n1', usedBytes: 0, capacityBytes: 4096, atMs: 0 });
  await store.refresh();
  await expect(write(11n, 1n, 5000)).resolves.toMatchObject({ version: 1 });
  await expect(write(12n, 1n, 10)).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'disk 12 is not a disk of node n1' });
  await expect(write(14n, 1n, 10)).resolves.toMatchObject({ version: 1 });
  expect([...store.openDisks().keys()].sort()).toEqual(['11', '14']);
  // Disk 12 still exists (on n2): its usage key is n2's store's to rewrite, not ours to delete.
  expect(usage.has('disk.12')).toBe(true);
  // Disk 11 is deleted: no store will report it again, so its usage goes too.
  usage.set('disk.11', { node: 'n1', usedBytes: 5000, capacityBytes: 8192, atMs: 0 });
  disks.splice(0, 1);
  await store.refresh();
  await expect(write(11n, 2n, 10)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  expect(usage.has('disk.11')).toBe(false);
  expect(usage.has('disk.12')).toBe(true);
});

it('answers UNAVAILABLE for a disk of this node that cannot be opened, and serves it once it can', async () => {
  const blocker = join(root, 'not-a-directory');
  await writeFile(blocker, 'x');
  disks[1] = disk(12n, N1, blocker, 4096);
  store = makeStore();
  await store.start();
  await expect(write(12n, 1n, 10)).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^disk 12 of node n1 cannot be used: /) });
  await rm(blocker);
  await store.refresh();
  await expect(write(12n, 1n, 10)).resolves.toMatchObject({ version: 1 });
});

it('closes every disk on stop: operations in progress finish, later ones are refused', async () => {
  store = makeStore();
  await store.start();
  const disk11 = store.openDisks().get('11')!;
  const inProgress = write(11n, 2n, 100);
  await store.stop();
  await expect(inProgress).resolves.toMatchObject({ version: 1 });
  await expect(disk11.stat(2n)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  expect(bus.served.size).toBe(0);
});
