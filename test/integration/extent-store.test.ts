// The extent store as a real process against a real nats-server and a real config
// replica. It proves that the store finds its node's disks in the config service
// (creating their directories, and picking up a disk added later), serves extent-group
// writes, reads, stats and deletes over the bus with the proto schemas, answers
// CHECKSUM for a byte flipped on disk, NOT_FOUND for another node's disk and INVALID
// for malformed CBOR, reports disk usage to `hb`, keeps an acknowledged write across
// kill -9 and a restart, and stops cleanly on SIGTERM. Every wait is bounded.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { connectBus, type Bus } from '@strata/bus';
import { encode } from '@strata/codec';
import { openBucket, type TypedBucket } from '@strata/kv';
import {
  EstoreOp,
  buckets,
  diskUsage,
  egReadReply,
  egStatReply,
  egWriteReply,
  ioDoneReply,
  keys,
  subjects,
  type ObjectOf,
} from '@strata/proto';
import { ConfigClient, startConfigReplica, startNode, startTopology, waitFor, waitForLeader, type ActorProcess, type NatsTopology } from '../harness';

const MiB = 2 ** 20;
const INTERVAL_MS = 300;

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + seed * 29 + 3) & 0xff;
  return out;
}

describe('extent store against single nats', () => {
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

  function egWrite(disk: bigint, egroup: bigint, version: number, offset: number, data: Uint8Array, epoch = 1): Promise<{ version: number; crc32c: number }> {
    return bus.request(subject(EstoreOp.write), { disk, egroup, vdisk: 9n, epoch, version, offset, data }, egWriteReply, { timeoutMs: 5_000 });
  }

  function egRead(disk: bigint, egroup: bigint, offset: number, length: number): Promise<Uint8Array> {
    return bus.request(subject(EstoreOp.read), { disk, egroup, offset, length }, egReadReply, { timeoutMs: 5_000 }).then((r) => r.data);
  }

  beforeAll(async () => {
    nats = await startTopology('single');
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
    const a = pattern(64 * 1024, 1);
    const b = pattern(32 * 1024, 2);
    expect(await egWrite(d1.id, 1001n, 1, 0, a)).toEqual({ version: 1, crc32c: crc32c(a) });
    expect(await egWrite(d1.id, 1001n, 2, a.length, b)).toEqual({ version: 2, crc32c: crc32c(b) });
    expect(await egWrite(d2.id, 1002n, 1, 0, b)).toEqual({ version: 1, crc32c: crc32c(b) });
    // A retry of version 2 is answered as before; a stale version is a conflict.
    expect(await egWrite(d1.id, 1001n, 2, a.length, b)).toEqual({ version: 2, crc32c: crc32c(b) });
    await expect(egWrite(d1.id, 1001n, 2, 0, b)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('is at version 2') });

    expect(Buffer.from(await egRead(d1.id, 1001n, 0, a.length))).toEqual(Buffer.from(a));
    expect(Buffer.from(await egRead(d1.id, 1001n, a.length, b.length))).toEqual(Buffer.from(b));
    expect(Buffer.from(await egRead(d2.id, 1002n, 0, b.length))).toEqual(Buffer.from(b));
    expect(await bus.request(subject(EstoreOp.stat), { disk: d1.id, egroup: 1001n }, egStatReply)).toEqual({ version: 2, sizeBytes: a.length + b.length });
    expect(existsSync(join(root, 'd1', 'egroups', '1001.eg'))).toBe(true);
    expect(existsSync(join(root, 'd2', 'egroups', '1002.meta'))).toBe(true);

    // d2 holds 128 KiB and 32 KiB are in use: 100 KiB more is refused.
    await expect(egWrite(d2.id, 1003n, 1, 0, pattern(100 * 1024, 3))).rejects.toMatchObject({ code: 'NO_SPACE' });

    expect(await bus.request(subject(EstoreOp.delete), { disk: d2.id, egroup: 1002n }, ioDoneReply)).toEqual({});
    await expect(bus.request(subject(EstoreOp.stat), { disk: d2.id, egroup: 1002n }, egStatReply)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(existsSync(join(root, 'd2', 'egroups', '1002.eg'))).toBe(false);
  });

  it('answers CHECKSUM, over the bus, for a byte flipped in the data file', async () => {
    const data = pattern(16 * 1024, 4);
    await egWrite(d1.id, 2001n, 1, 0, data);
    const path = join(root, 'd1', 'egroups', '2001.eg');
    const bytes = await readFile(path);
    bytes[5000]! ^= 0x80;
    await writeFile(path, bytes);
    await expect(egRead(d1.id, 2001n, 0, data.length)).rejects.toMatchObject({
      code: 'CHECKSUM',
      message: expect.stringMatching(new RegExp(`^disk ${d1.id}: egroup 2001: the extent at offset 0 \\(16384 bytes\\) failed its check`)),
    });
  });

  it('answers NOT_FOUND for a disk of another node, or of no node, and for an unknown extent group', async () => {
    await expect(egWrite(foreign.id, 3001n, 1, 0, pattern(512, 5))).rejects.toMatchObject({ code: 'NOT_FOUND', message: `disk ${foreign.id} is not a disk of node n1` });
    await expect(egRead(123_456_789n, 3001n, 0, 512)).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'disk 123456789 is not a disk of node n1' });
    await expect(egRead(d1.id, 3002n, 0, 512)).rejects.toMatchObject({ code: 'NOT_FOUND', message: `disk ${d1.id}: egroup 3002 has no replica here` });
    // The store did not touch the other node's directory.
    expect(existsSync(join(root, 'd3'))).toBe(false);
  });

  it('reports each disk’s usage to the hb bucket', async () => {
    const usage = await waitFor('usage of d1 and d2 in hb', 10_000, async () => {
      const [u1, u2] = await Promise.all([hb.get(keys.diskUsage(d1.id)), hb.get(keys.diskUsage(d2.id))]);
      // d1 holds 1001 (96 KiB) and 2001 (16 KiB) by now; d2 nothing after the delete.
      return u1 !== null && u2 !== null && u1.value.usedBytes === 112 * 1024 && u2.value.usedBytes === 0 ? [u1.value, u2.value] : false;
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
    await waitFor('the store to serve d4', 10 * INTERVAL_MS, async () => (await egWrite(d4.id, 4001n, 1, 0, data)).version === 1);
    expect(Buffer.from(await egRead(d4.id, 4001n, 0, data.length))).toEqual(Buffer.from(data));
  });

  it('keeps an acknowledged write across kill -9 and a restart', async () => {
    // A whole default vDisk block (1 MiB) in one message.
    const data = pattern(MiB, 7);
    expect(await egWrite(d1.id, 5001n, 1, 0, data, 3)).toMatchObject({ version: 1 });
    store.signal('SIGKILL');
    expect(await store.exited()).toBe('SIGKILL');
    store = await startedStore();
    expect(Buffer.from(await egRead(d1.id, 5001n, 0, data.length))).toEqual(Buffer.from(data));
    expect(await bus.request(subject(EstoreOp.stat), { disk: d1.id, egroup: 5001n }, egStatReply)).toEqual({ version: 1, sizeBytes: data.length });
    // The epoch seen before the crash still fences.
    await expect(egWrite(d1.id, 5001n, 2, data.length, pattern(512, 8), 2)).rejects.toMatchObject({ code: 'FENCED' });
  });

  it('answers INVALID for malformed CBOR and for a request that breaks its schema', async () => {
    for (const junk of [new Uint8Array([0xff]), new Uint8Array([0xa1, 0x61]), new Uint8Array([0x9f, 0x01]), encode('just a string')]) {
      const reply = (await bus.requestRaw(subject(EstoreOp.write), junk, 5_000)) as { error?: { code: string } };
      expect(reply.error?.code).toBe('INVALID');
    }
    await expect(bus.request(subject(EstoreOp.write), { disk: d1.id, egroup: 6001n, vdisk: 9n, epoch: 1, version: 1, offset: 0 }, egWriteReply)).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringMatching(/^data: /),
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
