// Metadata shards as real processes against real nats-servers (one, and a
// three-server cluster), driven through MdClient. It proves, in order, on each:
//  1. one shard holds all 16 partition leases and serves every map on every
//     partition: create, read, compare-and-set conflicts, delete, re-create;
//  2. a value that does not fit its map, a key sent to the wrong partition, a key KV
//     cannot hold, a malformed request and malformed CBOR are INVALID and change
//     nothing; and a write made straight to KV (not through the shard) is seen by
//     the shard's next reads once its watch delivers it (a read before it was a
//     cache hit, counted in the shard's metrics: invalidation, not bypass);
//  3. fencing: with vDisk V's ownership record at epoch 3 in `own`, a put or delete
//     fenced at epoch 2 is FENCED (naming V and both epochs) and leaves the key as
//     it was (read through the shard and straight from KV); epochs 3 and 4 are
//     accepted; after 4, epoch 3 is FENCED although `own` still says 3;
//  4. a second shard takes about half the partitions (6 to 10 each, read from the
//     lease records in `own`) while a get/put workload keeps succeeding with no error,
//     although md-2's metrics port is taken (it logs so and serves without metrics);
//  5. after kill -9 of the first shard during the workload, the survivor holds all
//     16 partitions within a bounded time (measured and printed), the workload's
//     operations succeed again, every acknowledged write reads back (never older),
//     and the data written in step 1 is intact;
//  6. SIGTERM releases every lease (holders become '').
import { connectBus, type Bus } from '@strata/bus';
import { encode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { openBucket, type TypedBucket } from '@strata/kv';
import { leaseRecord } from '@strata/lease';
import { MdClient } from '@strata/md-client';
import { MD_PARTITIONS, buckets, keys, mdGetReply, mdValue, partitionOf, subjects, vdiskOwnership, type MdMap } from '@strata/proto';
import { freePort, sleep, startNode, startTopology, topologies, waitFor, type ActorProcess, type NatsTopology } from '../harness';
import { isUnavailable } from '../harness/verify';

const LEASE_TTL_MS = 1_500;

function startShard(url: string, name: string, metricsPort?: number): ActorProcess {
  return startNode('services/metadata-shard/dist/main.js', ['--shard', name], {
    name,
    env: {
      NATS_URL: url,
      STRATA_LEASE_TTL_MS: String(LEASE_TTL_MS),
      STRATA_HEARTBEAT_INTERVAL_MS: '500',
      LOG_LEVEL: 'info',
      ...(metricsPort === undefined ? {} : { STRATA_METRICS_PORT: String(metricsPort) }),
    },
  });
}

/** A counter of a shard's /metrics page. */
async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** One key per partition for `map`: `<map>-<i>` for the first i that lands in each. */
function keyPerPartition(prefix: string): string[] {
  const out: (string | undefined)[] = Array.from({ length: MD_PARTITIONS }, () => undefined);
  for (let i = 0; out.includes(undefined); i++) {
    const key = `${prefix}-${i}`;
    out[partitionOf(key)] ??= key;
  }
  return out as string[];
}

/** A value of each map for partition `p`; the u64 fields are above 2^53, to prove they stay exact. */
function sample(map: MdMap, p: number, version = 1): unknown {
  const big = 2n ** 63n + BigInt(p);
  switch (map) {
    case 'vdisk':
      return { blocks: { [String(p)]: { egroup: big, offset: 4096 * version, length: 4096 } } };
    case 'extent':
      return { egroup: big + BigInt(version) };
    case 'egroup':
      return {
        vdisk: big,
        replicas: [{ disk: 3n, node: 'n1' }],
        version,
        sizeBytes: 4096 * version,
        extents: [{ id: `${p}:0:${version}`, offset: 0, length: 4096, refs: 1 }],
      };
  }
}

const maps: MdMap[] = ['vdisk', 'extent', 'egroup'];

/** The holder named by each partition's lease record ('' when released, absent when none). */
async function holders(own: TypedBucket<typeof leaseRecord>): Promise<string[]> {
  return Promise.all(Array.from({ length: MD_PARTITIONS }, async (_, p) => (await own.get(keys.mdPartition(p)))?.value.holder ?? ''));
}

function count(list: string[], name: string): number {
  return list.filter((h) => h === name).length;
}

/** Workers doing get-then-put on keys of their own, remembering every acknowledged write. */
class Workload {
  readonly acked = new Map<string, { revision: number; n: number }>();
  readonly errors: { code: string; atMs: number; op: string }[] = [];
  readonly successAtMs: number[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly client: MdClient,
    workers: number,
  ) {
    this.loops = Array.from({ length: workers }, (_, w) => this.worker(w));
  }

  private async worker(w: number): Promise<void> {
    const keysOfWorker = Array.from({ length: 4 }, (_, j) => `wl-${w}-${j}`);
    for (let i = 0; this.running; i++) {
      const key = keysOfWorker[i % keysOfWorker.length]!;
      let op = 'get';
      try {
        const cur = await this.client.get('extent', key);
        const n = cur === null ? 1 : Number(cur.value.egroup) + 1;
        op = 'put';
        const revision = await this.client.put('extent', key, { egroup: BigInt(n) }, cur?.revision ?? 0);
        this.acked.set(key, { revision, n });
        this.successAtMs.push(Date.now());
      } catch (err) {
        this.errors.push({ code: err instanceof StrataError ? err.code : String(err), atMs: Date.now(), op });
      }
      // Modest load: the machine is shared.
      await sleep(10);
    }
  }

  successesSince(ms: number): number {
    return this.successAtMs.filter((t) => t >= ms).length;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

describe.each(topologies)('metadata shards (real processes, %s nats)', (kind) => {
  let nats: NatsTopology | undefined;
  let bus: Bus;
  let client: MdClient;
  let own: TypedBucket<typeof leaseRecord>;
  const shards = new Map<string, ActorProcess>();
  let metricsPort = 0;
  /** What step 1 left in each map, to read back after the kill. */
  const written = new Map<string, { map: MdMap; key: string; revision: number; value: unknown }>();

  beforeAll(async () => {
    nats = await startTopology(kind);
    bus = await connectBus({ name: 'md-test', servers: nats.url });
    client = new MdClient(bus, { timeoutMs: 10_000 });
    own = await openBucket(bus.nc, buckets.own, leaseRecord);
  });

  afterAll(async () => {
    await Promise.all([...shards.values()].map((s) => s.stop()));
    await bus?.close();
    await nats?.stop();
  });

  it('one shard holds all 16 partitions and serves every map on each: put, get, CAS conflicts, delete', async () => {
    metricsPort = await freePort();
    shards.set('md-1', startShard(nats!.url, 'md-1', metricsPort));
    await waitFor('md-1 to hold all 16 partition leases', 15_000, async () => count(await holders(own), 'md-1') === MD_PARTITIONS);

    for (const map of maps) {
      await Promise.all(
        keyPerPartition(`${map}-key`).map(async (key, p) => {
          expect(partitionOf(key)).toBe(p);
          expect(await client.get(map, key)).toBeNull();
          const r1 = await client.put(map, key, sample(map, p, 1) as never, 0);
          expect(r1).toBeGreaterThan(0);
          expect(await client.get(map, key)).toEqual({ value: sample(map, p, 1), revision: r1 });
          await expect(client.put(map, key, sample(map, p, 2) as never, 0)).rejects.toMatchObject({ code: ErrorCode.CONFLICT });
          const r2 = await client.put(map, key, sample(map, p, 2) as never, r1);
          expect(r2).toBeGreaterThan(r1);
          await expect(client.put(map, key, sample(map, p, 3) as never, r1)).rejects.toMatchObject({ code: ErrorCode.CONFLICT });
          expect(await client.get(map, key)).toEqual({ value: sample(map, p, 2), revision: r2 });
          await expect(client.delete(map, key, r1)).rejects.toMatchObject({ code: ErrorCode.CONFLICT });
          await client.delete(map, key, r2);
          expect(await client.get(map, key)).toBeNull();
          // A deleted key is created again with revision 0.
          const r3 = await client.put(map, key, sample(map, p, 4) as never, 0);
          expect(await client.get(map, key)).toEqual({ value: sample(map, p, 4), revision: r3 });
          written.set(`${map}/${key}`, { map, key, revision: r3, value: sample(map, p, 4) });
        }),
      );
    }
    expect(written.size).toBe(3 * MD_PARTITIONS);
  });

  it('refuses a value that does not fit its map, a key of another partition, a malformed request and malformed CBOR with INVALID', async () => {
    const key = keyPerPartition('invalid')[5]!;
    const p = partitionOf(key);
    const badGroup = { ...(sample('egroup', p) as object), replicas: [] };
    await expect(client.put('egroup', key, badGroup as never, 0)).rejects.toMatchObject({ code: ErrorCode.INVALID, message: expect.stringMatching(/value\.replicas/) });
    // An extent entry is not a vDisk row.
    await expect(client.put('vdisk', key, sample('extent', p) as never, 0)).rejects.toMatchObject({ code: ErrorCode.INVALID, message: expect.stringMatching(/value/) });
    expect(await client.get('egroup', key)).toBeNull();
    expect(await client.get('vdisk', key)).toBeNull();

    const wrong = (p + 1) % MD_PARTITIONS;
    await expect(bus.request(subjects.md(wrong, 'get'), { map: 'extent', key }, mdGetReply, { timeoutMs: 5_000 })).rejects.toMatchObject({
      code: ErrorCode.INVALID,
      message: expect.stringMatching(new RegExp(`partition ${p}`)),
    });
    const envelopeOf = async (data: Uint8Array): Promise<{ error?: { code: string; message: string } }> => (await bus.requestRaw(subjects.md(p, 'put'), data, 5_000)) as never;
    const noKey = await envelopeOf(encode({ map: 'extent', value: { egroup: 1 }, revision: 0 }));
    expect(noKey.error).toMatchObject({ code: 'INVALID', message: expect.stringMatching(/key/) });
    const unknownMap = await envelopeOf(encode({ map: 'inode', key, value: {}, revision: 0 }));
    expect(unknownMap.error).toMatchObject({ code: 'INVALID', message: expect.stringMatching(/map/) });
    for (const garbage of [Uint8Array.of(0xff), Uint8Array.of(0x1c), Uint8Array.of(0xbf, 0x61), new Uint8Array(0)]) {
      expect((await envelopeOf(garbage)).error?.code).toBe('INVALID');
    }
    // A key JetStream KV cannot hold (extent ids like `1:2:3` need encoding first).
    await expect(client.get('extent', '1:2:3')).rejects.toMatchObject({ code: ErrorCode.INVALID, message: expect.stringMatching(/letters, digits/) });
    expect(await client.get('extent', key)).toBeNull();
  });

  it('a write made behind the shard’s back (straight to KV) reaches its cache through the watch', async () => {
    const key = keyPerPartition('behind')[3]!;
    const r1 = await client.put('extent', key, { egroup: 1n }, 0);
    // Cached now: the shard wrote it, and this read is answered from the cache.
    const hits = await metric(metricsPort, 'strata_md_cache_hits_total');
    expect(await client.get('extent', key)).toEqual({ value: { egroup: 1n }, revision: r1 });
    expect(await metric(metricsPort, 'strata_md_cache_hits_total')).toBe(hits + 1);
    const direct = await openBucket(bus.nc, buckets.mdExtent, mdValue.extent);
    const r2 = await direct.update(key, { egroup: 2n }, r1);
    await waitFor('the shard to read the direct write', 2_000, async () => (await client.get('extent', key))?.revision === r2);
    await direct.delete(key, r2);
    await waitFor('the shard to see the direct delete', 2_000, async () => (await client.get('extent', key)) === null);
  });

  it('refuses a put or delete fenced below the vDisk’s ownership epoch with FENCED and changes nothing', async () => {
    const vdisk = 12349n;
    const ownership = await openBucket(bus.nc, buckets.own, vdiskOwnership);
    await ownership.put(keys.vdiskOwnership(vdisk), { owner: 'n1', epoch: 3, volunteers: [], drained: 0 });
    // The shard learns the epoch from its watch of `own`: wait until a write fenced
    // below it is refused (a delete of a key that has no value changes nothing either way).
    const probe = `${vdisk}.99`;
    await waitFor('the shard’s ownership watch to deliver epoch 3', 5_000, async () => {
      try {
        await client.delete('vdisk', probe, undefined, { fence: { vdisk, epoch: 2 } });
        return false;
      } catch (err) {
        if (err instanceof StrataError && err.code === ErrorCode.FENCED) return true;
        throw err;
      }
    });

    const key = keys.vdiskRow(vdisk, 0);
    const row = (n: number): { blocks: Record<string, { egroup: bigint; offset: number; length: number }> } => ({ blocks: { '0': { egroup: 67890n, offset: 4096 * n, length: 4096 } } });
    const kv = await openBucket(bus.nc, buckets.mdVdisk, mdValue.vdisk);
    const unchanged = async (value: unknown, revision: number): Promise<void> => {
      expect(await client.get('vdisk', key)).toEqual({ value, revision });
      const stored = await kv.get(key);
      expect({ value: stored?.value, revision: stored?.revision }).toEqual({ value, revision });
    };

    const r1 = await client.put('vdisk', key, row(1), 0, { fence: { vdisk, epoch: 3 } });
    // The deposed owner's write, at epoch 2: FENCED, named, and nothing changes.
    await expect(client.put('vdisk', key, row(2), r1, { fence: { vdisk, epoch: 2 } })).rejects.toMatchObject({
      code: ErrorCode.FENCED,
      message: expect.stringMatching(new RegExp(`vdisk ${vdisk}\\b.*epoch 2\\b.*epoch is 3\\b`)),
    });
    await unchanged(row(1), r1);

    const r2 = await client.put('vdisk', key, row(3), r1, { fence: { vdisk, epoch: 3 } });
    // A newer owner's write reaches the shard before its claim is in `own`.
    const r3 = await client.put('vdisk', key, row(4), r2, { fence: { vdisk, epoch: 4 } });
    expect((await ownership.get(keys.vdiskOwnership(vdisk)))?.value.epoch).toBe(3);
    await expect(client.put('vdisk', key, row(5), r3, { fence: { vdisk, epoch: 3 } })).rejects.toMatchObject({
      code: ErrorCode.FENCED,
      message: expect.stringMatching(/epoch 3\b.*epoch is 4\b/),
    });
    await unchanged(row(4), r3);

    // Deletes are fenced the same way, by the record and by the accepted epoch.
    for (const epoch of [2, 3]) {
      await expect(client.delete('vdisk', key, undefined, { fence: { vdisk, epoch } })).rejects.toMatchObject({ code: ErrorCode.FENCED });
      await unchanged(row(4), r3);
    }
    // Another vDisk's epoch is not this one's business, and an unfenced write (a tool's) is not checked.
    const other = keys.vdiskRow(vdisk + 1n, 0);
    await client.put('vdisk', other, row(1), 0, { fence: { vdisk: vdisk + 1n, epoch: 1 } });
    const r4 = await client.put('vdisk', key, row(6), r3);
    await client.delete('vdisk', key, r4, { fence: { vdisk, epoch: 4 } });
    expect(await client.get('vdisk', key)).toBeNull();
  });

  let workload: Workload | undefined;

  it('a second shard takes about half the partitions while a workload keeps succeeding', async () => {
    workload = new Workload(new MdClient(bus, { timeoutMs: 8_000 }), 4);
    await waitFor('the workload to get going', 10_000, () => workload!.successAtMs.length >= 20);

    const joinedAtMs = Date.now();
    // md-2 is given md-1's metrics port: it says so and serves without metrics
    // rather than exiting (a storage process is never restarted in a loop for its metrics).
    shards.set('md-2', startShard(nats!.url, 'md-2', metricsPort));
    const split = await waitFor('the partitions to split between md-1 and md-2 (6 to 10 each)', 20_000, async () => {
      const h = await holders(own);
      const [a, b] = [count(h, 'md-1'), count(h, 'md-2')];
      return a + b === MD_PARTITIONS && a >= 6 && a <= 10 && b >= 6 && b <= 10 ? { a, b } : false;
    });
    console.log(`metadata shards: md-2 joined; split ${split.a}/${split.b} after ${Date.now() - joinedAtMs} ms`);
    // The split holds, and the workload runs on both shards without a single error.
    await sleep(3 * LEASE_TTL_MS);
    const h = await holders(own);
    expect(count(h, 'md-1') + count(h, 'md-2')).toBe(MD_PARTITIONS);
    expect(count(h, 'md-2')).toBeGreaterThanOrEqual(6);
    expect(workload.successesSince(joinedAtMs)).toBeGreaterThan(20);
    expect(workload.errors).toEqual([]);
    const said = shards.get('md-2')!.output().split('\n').filter((l) => l.includes('metrics are not served (STRATA_METRICS_PORT cannot be bound)'));
    expect(said).toEqual([expect.stringContaining('EADDRINUSE')]);
  });

  it('after kill -9 of one shard the survivor takes every partition within about a TTL, and no acknowledged write is lost', async () => {
    const w = workload!;
    const killedAtMs = Date.now();
    shards.get('md-1')!.signal('SIGKILL');
    await shards.get('md-1')!.exited();

    await waitFor('md-2 to hold all 16 partitions', 20_000, async () => count(await holders(own), 'md-2') === MD_PARTITIONS);
    const heldAfterMs = Date.now() - killedAtMs;
    // Served means answering: a get on every partition, each allowed one 2 s attempt.
    const probe = new MdClient(bus, { timeoutMs: 2_000 });
    // A partition nobody serves yet answers UNAVAILABLE or times out: "not yet". Any other error fails.
    await waitFor(
      'every partition to answer',
      20_000,
      async () => {
        await Promise.all(keyPerPartition('probe').map((key) => probe.get('extent', key)));
        return true;
      },
      { retryIf: isUnavailable },
    );
    const servedAfterMs = Date.now() - killedAtMs;
    console.log(`metadata shards: after kill -9, md-2 held all 16 leases in ${heldAfterMs} ms and served all 16 partitions in ${servedAfterMs} ms (lease TTL ${LEASE_TTL_MS} ms)`);
    expect(servedAfterMs).toBeLessThan(4 * LEASE_TTL_MS + 2_000);

    // The workload succeeds again: every worker's loop goes on after the takeover.
    const resumedFromMs = Date.now();
    await waitFor('the workload to succeed again after the takeover', 20_000, () => w.successesSince(resumedFromMs) >= 40);
    await w.stop();
    // Only operations caught in flight by the kill may have failed, with an unknown outcome (TIMEOUT).
    const failures = w.errors.filter((e) => e.atMs >= killedAtMs);
    console.log(`metadata shards: workload failures after the kill: ${JSON.stringify(failures.map((e) => ({ ...e, atMs: e.atMs - killedAtMs })))}`);
    for (const e of failures) expect(e.code).toBe(ErrorCode.TIMEOUT);
    expect(failures.length).toBeLessThanOrEqual(4);
    expect(w.errors.filter((e) => e.atMs < killedAtMs)).toEqual([]);

    // Every acknowledged write reads back, never rolled back (values only grow per key).
    for (const [key, acked] of w.acked) {
      const now = await client.get('extent', key);
      expect(now).not.toBeNull();
      expect(now!.revision).toBeGreaterThanOrEqual(acked.revision);
      expect(Number(now!.value.egroup)).toBeGreaterThanOrEqual(acked.n);
      if (now!.revision === acked.revision) expect(Number(now!.value.egroup)).toBe(acked.n);
    }
    // And what was written before the kill, by the dead shard, is intact.
    for (const { map, key, revision, value } of written.values()) {
      expect(await client.get(map, key)).toEqual({ value, revision });
    }
  });

  it('SIGTERM releases every lease', async () => {
    const md2 = shards.get('md-2')!;
    await md2.stop();
    expect(await md2.exited()).toBe(0);
    expect(await holders(own)).toEqual(Array.from({ length: MD_PARTITIONS }, () => ''));
  });
});
