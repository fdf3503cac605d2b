// The extent store as a real process against real nats-servers (one, and a
// three-server cluster) and a real config replica. It proves that the store finds its node's disks in the config service
// (creating their directories, and picking up a disk added later), serves extent-group
// writes of pieces in place, reads of any range, stats and deletes over the bus with
// the proto schemas, answers CHECKSUM for a byte flipped on disk (for that slice only),
// NOT_FOUND for another node's disk and INVALID for malformed CBOR or a bad range,
// reports disk usage to `hb`, keeps acknowledged writes across kill -9 and a restart,
// and stops cleanly on SIGTERM. Every wait is bounded.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { connectBus, type Bus } from '@strata/bus';
import { encode } from '@strata/codec';
import { ErrorCode, isStrataError } from '@strata/errors';
import { openBucket, type TypedBucket } from '@strata/kv';
import {
  EstoreOp,
  buckets,
  diskUsage,
  egReadReply,
  egStatReply,
  egListReply,
  egWriteReply,
  ioDoneReply,
  keys,
  subjects,
  type EgPiece,
  type ObjectOf,
} from '@strata/proto';
import { seededRandom } from '../harness/random';
import { ConfigClient, startConfigReplica, startNode, startTopology, topologies, waitFor, waitForLeader, type ActorProcess, type NatsTopology } from '../harness';

const KiB = 1024;
const MiB = 2 ** 20;
const INTERVAL_MS = 300;
/** The store's default slice size: the unit of its checksums. */
const SLICE_BYTES = 32 * KiB;

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + seed * 29 + 3) & 0xff;
  return out;
}

describe.each(topologies)('extent store against %s nats', (kind) => {
  let nats: NatsTopology;
  let replica: ActorProcess;
  let store: ActorProcess;
  let bus: Bus;
  let client: ConfigClient;
  let hb: TypedBucket<typeof diskUsage>;
  let root: string;
  let d1: ObjectOf<'disk'>;
  let d2: ObjectOf<'disk'>;
  let foreign: ObjectOf<'disk'>;

  const subject = (op: EstoreOp): string => subjects.estore('n1', op);

  function startStore(): ActorProcess {
    return startNode('services/extent-store/dist/main.js', ['--node', 'n1'], {
      name: 'extent-store-n1',
      env: { NATS_URL: nats.url, STRATA_USAGE_REPORT_INTERVAL_MS: String(INTERVAL_MS), STRATA_DISK_REFRESH_INTERVAL_MS: String(INTERVAL_MS) },
    });
  }

  async function startedStore(): Promise<ActorProcess> {
    const p = startStore();
    await p.waitForOutput(/"msg":"extent store serving"/, 20_000);
    return p;
  }

  function egWrite(disk: bigint, egroup: bigint, version: number, sizeBytes: number, pieces: EgPiece[], epoch = 1): Promise<{ version: number; crc32c: number }> {
    return bus.request(subject(EstoreOp.write), { disk, egroup, vdisk: 9n, epoch, version, sizeBytes, pieces }, egWriteReply, { timeoutMs: 5_000 });
  }

  function egRead(disk: bigint, egroup: bigint, offset: number, length: number): Promise<Uint8Array> {
    return bus.request(subject(EstoreOp.read), { disk, egroup, offset, length }, egReadReply, { timeoutMs: 5_000 }).then((r) => r.data);
  }

  beforeAll(async () => {
    nats = await startTopology(kind);
    replica = startConfigReplica(nats.url, 'config-a');
    bus = await connectBus({ name: 'extent-store-test', servers: nats.url });
    client = new ConfigClient(bus, 10_000);
    await waitForLeader(client);
    hb = await openBucket(bus.nc, buckets.hb, diskUsage);
    root = await mkdtemp(join(tmpdir(), 'strata-estore-it-'));

    const n1 = await client.create({ kind: 'node', name: 'n1', spec: {} });
    const n2 = await client.create({ kind: 'node', name: 'n2', spec: {} });
    // d1's directory does not exist yet: the store creates it.
    d1 = (await client.create({ kind: 'disk', name: 'd1', spec: { node: n1.id, path: join(root, 'd1'), tier: 'ssd', capacityBytes: 64 * MiB } })) as ObjectOf<'disk'>;
    d2 = (await client.create({ kind: 'disk', name: 'd2', spec: { node: n1.id, path: join(root, 'd2'), tier: 'hdd', capacityBytes: 128 * 1024 } })) as ObjectOf<'disk'>;
    foreign = (await client.create({ kind: 'disk', name: 'd3', spec: { node: n2.id, path: join(root, 'd3'), tier: 'ssd', capacityBytes: 64 * MiB } })) as ObjectOf<'disk'>;
    store = await startedStore();
  });

  afterAll(async () => {
    await store?.stop();
    await bus?.close();
    await replica?.stop();
    await nats?.stop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('writes an extent group on each disk over the bus, reads it back, stats and deletes it', async () => {
    const a = pattern(64 * KiB, 1);
    const b = pattern(32 * KiB, 2);
    expect(await egWrite(d1.id, 1001n, 1, a.length, [{ offset: 0, data: a }])).toEqual({ version: 1, crc32c: crc32c(a) });
    expect(await egWrite(d1.id, 1001n, 2, a.length + b.length, [{ offset: a.length, data: b }])).toEqual({ version: 2, crc32c: crc32c(b) });
    expect(await egWrite(d2.id, 1002n, 1, b.length, [{ offset: 0, data: b }])).toEqual({ version: 1, crc32c: crc32c(b) });
    // A retry of version 2 is answered as before; another write at version 2, or below it, is a conflict.
    expect(await egWrite(d1.id, 1001n, 2, a.length + b.length, [{ offset: a.length, data: b }])).toEqual({ version: 2, crc32c: crc32c(b) });
    await expect(egWrite(d1.id, 1001n, 2, a.length + b.length, [{ offset: 0, data: b }])).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('is at version 2') });
    await expect(egWrite(d1.id, 1001n, 1, a.length, [{ offset: 0, data: a }])).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('is at version 2') });

    expect(Buffer.from(await egRead(d1.id, 1001n, 0, a.length))).toEqual(Buffer.from(a));
    expect(Buffer.from(await egRead(d1.id, 1001n, a.length, b.length))).toEqual(Buffer.from(b));
    expect(Buffer.from(await egRead(d2.id, 1002n, 0, b.length))).toEqual(Buffer.from(b));
    // Any range: 4 KiB inside, and across the boundary between the two writes.
    expect(Buffer.from(await egRead(d1.id, 1001n, 5000, 4096))).toEqual(Buffer.from(a.subarray(5000, 9096)));
    expect(Buffer.from(await egRead(d1.id, 1001n, a.length - 10, 20))).toEqual(Buffer.concat([a.subarray(a.length - 10), b.subarray(0, 10)]));
    expect(await bus.request(subject(EstoreOp.stat), { disk: d1.id, egroup: 1001n }, egStatReply)).toEqual({ version: 2, sizeBytes: a.length + b.length });
    expect(existsSync(join(root, 'd1', 'egroups', '1001.eg'))).toBe(true);
    expect(existsSync(join(root, 'd2', 'egroups', '1002.meta'))).toBe(true);

    // d2 holds 128 KiB and 32 KiB are in use: growing by 100 KiB more is refused.
    await expect(egWrite(d2.id, 1003n, 1, 100 * KiB, [{ offset: 0, zeros: 1 }])).rejects.toMatchObject({ code: 'NO_SPACE' });

    // The list of each disk, as the curator's garbage collection reads it: a page at a time.
    expect(await bus.request(subject(EstoreOp.list), { disk: d1.id }, egListReply)).toMatchObject({ replicas: [{ egroup: 1001n, version: 2, sizeBytes: a.length + b.length }], more: false });
    expect(await bus.request(subject(EstoreOp.list), { disk: d2.id, limit: 1 }, egListReply)).toMatchObject({ replicas: [{ egroup: 1002n, version: 1, sizeBytes: b.length }], more: false });
    await expect(bus.request(subject(EstoreOp.list), { disk: 424242n }, egListReply)).rejects.toMatchObject({ code: 'NOT_FOUND' });

    expect(await bus.request(subject(EstoreOp.delete), { disk: d2.id, egroup: 1002n }, ioDoneReply)).toEqual({});
    await expect(bus.request(subject(EstoreOp.stat), { disk: d2.id, egroup: 1002n }, egStatReply)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(existsSync(join(root, 'd2', 'egroups', '1002.eg'))).toBe(false);
    expect(await bus.request(subject(EstoreOp.list), { disk: d2.id }, egListReply)).toEqual({ replicas: [], more: false });
  });

  it('writes small pieces in place and reads them back in any range, zeros where nothing was written', async () => {
    // A 256 KiB extent group drained as the controller does: 4 KiB pieces at random
    // block offsets, some overlapping, some trims; compared with a model after each write.
    const sizeBytes = 256 * KiB;
    const model = new Uint8Array(sizeBytes);
    const random = seededRandom(11);
    const next = (n: number): number => Math.floor(random() * n);
    for (let version = 1; version <= 20; version++) {
      const pieces: EgPiece[] = Array.from({ length: 1 + next(4) }, (_, i) => {
        const offset = next(64) * 4 * KiB + (version % 3 === 0 ? 512 : 0);
        const length = Math.min(4 * KiB, sizeBytes - offset);
        return i === 1 ? { offset, zeros: length } : { offset, data: pattern(length, version * 10 + i) };
      });
      const reply = await egWrite(d1.id, 1100n, version, sizeBytes, pieces);
      const bytesSent = Buffer.concat(pieces.map((p) => ('data' in p ? Buffer.from(p.data) : Buffer.alloc(p.zeros))));
      expect(reply).toEqual({ version, crc32c: crc32c(bytesSent) });
      for (const p of pieces) {
        if ('data' in p) model.set(p.data, p.offset);
        else model.fill(0, p.offset, p.offset + p.zeros);
      }
      const offset = next(sizeBytes - 8 * KiB);
      expect(Buffer.from(await egRead(d1.id, 1100n, offset, 8 * KiB)).equals(Buffer.from(model.subarray(offset, offset + 8 * KiB)))).toBe(true);
    }
    expect(Buffer.from(await egRead(d1.id, 1100n, 0, sizeBytes)).equals(Buffer.from(model))).toBe(true);
    // Reads must stay within the replica and be at least one byte long.
    await expect(egRead(d1.id, 1100n, sizeBytes - 1, 2)).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('ends beyond its 262144 bytes') });
    await expect(egRead(d1.id, 1100n, 0, 0)).rejects.toMatchObject({ code: 'INVALID' });
    await expect(egWrite(d1.id, 1100n, 21, sizeBytes, [{ offset: sizeBytes - 1, data: pattern(2, 1) }])).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('beyond the extent group') });
    expect(await bus.request(subject(EstoreOp.stat), { disk: d1.id, egroup: 1100n }, egStatReply)).toEqual({ version: 20, sizeBytes });
  });

  it('answers CHECKSUM, over the bus, for a read of a slice with a flipped byte, and still serves the other slices', async () => {
    const data = pattern(2 * SLICE_BYTES, 4);
    await egWrite(d1.id, 2001n, 1, data.length, [{ offset: 0, data }]);
    const path = join(root, 'd1', 'egroups', '2001.eg');
    const bytes = await readFile(path);
    bytes[SLICE_BYTES + 5000]! ^= 0x80;
    await writeFile(path, bytes);
    await expect(egRead(d1.id, 2001n, SLICE_BYTES + 4096, 4096)).rejects.toMatchObject({
      code: 'CHECKSUM',
      message: expect.stringMatching(new RegExp(`^disk ${d1.id}: egroup 2001: slice 1 \\(bytes 32768 to 65535\\) failed its check`)),
    });
    expect(Buffer.from(await egRead(d1.id, 2001n, 4096, 4096))).toEqual(Buffer.from(data.subarray(4096, 8192)));
  });

  it('answers NOT_FOUND for a disk of another node, or of no node, and for an unknown extent group', async () => {
    await expect(egWrite(foreign.id, 3001n, 1, 512, [{ offset: 0, data: pattern(512, 5) }])).rejects.toMatchObject({ code: 'NOT_FOUND', message: `disk ${foreign.id} is not a disk of node n1` });
    await expect(egRead(123_456_789n, 3001n, 0, 512)).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'disk 123456789 is not a disk of node n1' });
    await expect(egRead(d1.id, 3002n, 0, 512)).rejects.toMatchObject({ code: 'NOT_FOUND', message: `disk ${d1.id}: egroup 3002 has no replica here` });
    // The store did not touch the other node's directory.
    expect(existsSync(join(root, 'd3'))).toBe(false);
  });

  it('reports each disk’s usage to the hb bucket', async () => {
    const usage = await waitFor('usage of d1 and d2 in hb', 10_000, async () => {
      const [u1, u2] = await Promise.all([hb.get(keys.diskUsage(d1.id)), hb.get(keys.diskUsage(d2.id))]);
      // d1 holds 1001 (96 KiB), 1100 (256 KiB) and 2001 (64 KiB) by now; d2 nothing after the delete.
      return u1 !== null && u2 !== null && u1.value.usedBytes === 416 * KiB && u2.value.usedBytes === 0 ? [u1.value, u2.value] : false;
    });
    expect(usage[0]).toMatchObject({ node: 'n1', capacityBytes: 64 * MiB });
    expect(usage[1]).toMatchObject({ node: 'n1', capacityBytes: 128 * 1024 });
    expect(Math.abs(Date.now() - usage[0]!.atMs)).toBeLessThan(10_000);
    expect(await hb.get(keys.diskUsage(foreign.id))).toBeNull();
  });

  it('picks up a disk added while it runs', async () => {
    const n1 = await client.get({ kind: 'node', name: 'n1' });
    const d4 = await client.create({ kind: 'disk', name: 'd4', spec: { node: n1.id, path: join(root, 'd4'), tier: 'hdd', capacityBytes: 8 * MiB } });
    const data = pattern(4096, 6);
    // Until the store's next refresh of its disk list, d4 is NOT_FOUND there, and then
    // UNAVAILABLE while the store opens it: those alone mean "not yet".
    await waitFor('the store to serve d4', 10 * INTERVAL_MS, async () => (await egWrite(d4.id, 4001n, 1, data.length, [{ offset: 0, data }])).version === 1, {
      retryIf: (err) => isStrataError(err, ErrorCode.NOT_FOUND) || (isStrataError(err, ErrorCode.UNAVAILABLE) && /is being opened/.test((err as Error).message)),
    });
    expect(Buffer.from(await egRead(d4.id, 4001n, 0, data.length))).toEqual(Buffer.from(data));
  });

  it('keeps acknowledged writes across kill -9 and a restart', async () => {
    // A whole default vDisk block (1 MiB) in one message, then a 4 KiB overwrite in place.
    const data = pattern(MiB, 7);
    expect(await egWrite(d1.id, 5001n, 1, 2 * MiB, [{ offset: 0, data }], 3)).toMatchObject({ version: 1 });
    const small = pattern(4 * KiB, 8);
    expect(await egWrite(d1.id, 5001n, 2, 2 * MiB, [{ offset: 100 * KiB + 17, data: small }], 3)).toMatchObject({ version: 2 });
    data.set(small, 100 * KiB + 17);
    store.signal('SIGKILL');
    expect(await store.exited()).toBe('SIGKILL');
    store = await startedStore();
    // Buffer.equals: jest's toEqual takes seconds over a MiB.
    expect(Buffer.from(await egRead(d1.id, 5001n, 0, data.length)).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(await egRead(d1.id, 5001n, MiB, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
    expect(await bus.request(subject(EstoreOp.stat), { disk: d1.id, egroup: 5001n }, egStatReply)).toEqual({ version: 2, sizeBytes: 2 * MiB });
    // The epoch seen before the crash still fences.
    await expect(egWrite(d1.id, 5001n, 3, 2 * MiB, [{ offset: 0, data: pattern(512, 9) }], 2)).rejects.toMatchObject({ code: 'FENCED' });
  });

  it('answers INVALID for malformed CBOR and for a request that breaks its schema', async () => {
    for (const junk of [new Uint8Array([0xff]), new Uint8Array([0xa1, 0x61]), new Uint8Array([0x9f, 0x01]), encode('just a string')]) {
      const reply = (await bus.requestRaw(subject(EstoreOp.write), junk, 5_000)) as { error?: { code: string } };
      expect(reply.error?.code).toBe('INVALID');
    }
    await expect(bus.request(subject(EstoreOp.write), { disk: d1.id, egroup: 6001n, vdisk: 9n, epoch: 1, version: 1, sizeBytes: 512 }, egWriteReply)).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringMatching(/^pieces: /),
    });
    await expect(bus.request(subject(EstoreOp.write), { disk: d1.id, egroup: 6001n, vdisk: 9n, epoch: 1, version: 1, sizeBytes: 512, pieces: [] }, egWriteReply)).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringMatching(/^pieces: /),
    });
    await expect(bus.request(subject(EstoreOp.read), { disk: d1.id, egroup: 6001n, offset: -1, length: 1 }, egReadReply)).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringMatching(/^offset: /),
    });
  });

  it('stops cleanly on SIGTERM', async () => {
    store.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((resolve) => (timer = setTimeout(() => resolve('still running after 12 s'), 12_000)));
    expect(await Promise.race([store.exited(), deadline])).toBe(0);
    clearTimeout(timer);
    expect(store.output()).toMatch(/"msg":"extent-store stopped"/);
  });
});
