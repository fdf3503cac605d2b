// Snapshots and writable clones end to end (PROTOCOL.md section 7a), with real
// processes: one `strata up` cluster of 3 nodes (RF 2 by default) shared by the cases, real NBD
// clients (qemu-io), 2 MiB extent groups so a vDisk spans several, a curator scan every
// second with a garbage grace of 1 s. It proves:
//  - redirect-on-write: pattern A, a snapshot, pattern B over part of it (a partial
//    block included); the snapshot reads A, the vDisk B where written and A elsewhere,
//    and the snapshot's export is read-only (a write is refused);
//  - the cut during a verifying workload (AckedWriter): every write acknowledged before
//    the snapshot command was started is in it, and no write first sent after the
//    command returned is (its block reads zeros there); the writes' pause is printed;
//  - a clone is writable and independent: writes to it do not show in the snapshot or
//    the source, and later writes to the source do not show in it;
//  - removing the snapshot (while the clone still shares its blocks) and running curator
//    scans frees exactly the extent groups only the snapshot named (entries and replica
//    files gone), keeps every one the source or the clone names, and both read right.
//
// Its teeth: with redirect disabled (isShared answering false for an owned extent
// group), the first case fails: the snapshot reads B where B was written (see the
// report of the change that added this test).
import { existsSync } from 'node:fs';
import { buckets, mdValue, type EgroupEntry, type VdiskRow } from '@strata/proto';
import { openBucket } from '@strata/kv';
import { UpClusters, connectClient, type UpCluster } from '../harness';
import { replicaFile } from '../harness/curator';
import { strata } from '../harness/ha';
import { AckedWriter, createdId, qemuIo, qemuIoReadOnly, readBackAcked, waitForDrained } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;

const clusters = new UpClusters('snapshot');

/** What the source reads after pattern B (and the small write into block 6). */
const SRC_READS = [`read -P 10 0 ${512 * KiB}`, `read -P 11 ${512 * KiB} ${6 * MiB - 512 * KiB}`, 'read -P 10 6M 4K', `read -P 14 ${6 * MiB + 4 * KiB} 4K`, `read -P 10 ${6 * MiB + 8 * KiB} ${2 * MiB - 8 * KiB}`];
/** What the clone reads after its writes. */
const CLONE_READS = ['read -P 12 0 6M', `read -P 10 6M ${MiB + 8 * KiB}`, `read -P 15 ${7 * MiB + 8 * KiB} 4K`, `read -P 10 ${7 * MiB + 12 * KiB} ${MiB - 12 * KiB}`];
/** And after the source's write of block 7 (pattern 13). */
const SRC_READS_LATER = [...SRC_READS.slice(0, -1), `read -P 10 ${6 * MiB + 8 * KiB} ${MiB - 8 * KiB}`, 'read -P 13 7M 1M'];

const ENV: Record<string, string> = {
  NATS_URL: '',
  STRATA_DRAIN_IDLE_MS: '200',
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_GC_GRACE_MS: '1000',
};

/** Every md-vdisk row and md-egroup entry of the cluster. */
async function metadata(cluster: UpCluster): Promise<{ rows: Array<{ key: string; value: VdiskRow }>; egroups: Map<bigint, EgroupEntry> }> {
  const nc = await connectClient(cluster.natsUrl);
  try {
    const rows = await (await openBucket(nc, buckets.mdVdisk, mdValue.vdisk, { history: 1 })).entries();
    const egroups = await (await openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 })).entries();
    return { rows, egroups: new Map(egroups.map((e) => [BigInt(e.key), e.value])) };
  } finally {
    await nc.close();
  }
}

/** The extent groups the rows of `vdisk` name. */
function namedBy(rows: ReadonlyArray<{ key: string; value: VdiskRow }>, vdisk: bigint): Set<bigint> {
  const out = new Set<bigint>();
  for (const r of rows) if (r.key.startsWith(`${vdisk}.`)) for (const l of Object.values(r.value.blocks)) out.add(l.egroup);
  return out;
}

describe('snapshots and writable clones', () => {
  let cluster: UpCluster;
  const uri = (name: string): string => `nbd://127.0.0.1:${cluster.nbdPort}/${name}`;
  beforeAll(async () => {
    cluster = await clusters.start({ env: ENV });
  }, 120_000);
  afterAll(async () => {
    await clusters.stopAll();
  }, 60_000);

  let srcId = 0n;
  let snapId = 0n;
  let cloneId = 0n;

  it('a snapshot keeps pattern A while the vDisk is overwritten with B (a partial block included), and is read-only', async () => {
    srcId = createdId(await strata(cluster, ['vdisk', 'create', 'src', '--size', '16M']));
    await qemuIo(uri('src'), ['write -P 10 0 8M']);
    const out = await strata(cluster, ['vdisk', 'snapshot', 'src', 's1']);
    expect(out).toMatch(/^snapshot s1 of vdisk src taken \(id \d+, 8 blocks, writes held \d+ ms\)/);
    snapId = BigInt(/id (\d+)/.exec(out)![1]!);
    // B from 512 KiB to 6 MiB: large writes, which go to new (staging) extents anyway;
    // and a small one into block 6, which goes through the oplog and is drained: into a
    // new extent holding the whole block (read-merge-write), not into the shared one.
    await qemuIo(uri('src'), [`write -P 11 ${512 * KiB} ${6 * MiB - 512 * KiB}`, `write -P 14 ${6 * MiB + 4 * KiB} 4K`]);
    await waitForDrained(cluster.natsUrl, srcId, 20_000);
    await qemuIoReadOnly(uri('s1'), ['read -P 10 0 8M', 'read -P 0 8M 8M']);
    await qemuIo(uri('src'), SRC_READS);
    // Read-only: the export says so, and a client that tries to write anyway is refused.
    await expect(qemuIo(uri('s1'), ['write -P 1 0 4K'])).rejects.toThrow(/Permission denied|read-only|not permitted/i);
    // Listed with its parent; refusals are clear and change nothing.
    const ls = await strata(cluster, ['vdisk', 'ls']);
    expect(ls).toMatch(/^s1 .* snapshot +src +ok$/m);
    await expect(strata(cluster, ['vdisk', 'snapshot', 's1', 's2'])).rejects.toThrow(/s1 is a snapshot/);
    await expect(strata(cluster, ['vdisk', 'clone', 'src', 'c0'])).rejects.toThrow(/src is not a snapshot/);
    await expect(strata(cluster, ['vdisk', 'snapshot', 'src', 's1'])).rejects.toThrow(/s1/);
    await expect(strata(cluster, ['vdisk', 'snapshot', 'nosuch', 's3'])).rejects.toThrow(/nosuch/);
    expect(await strata(cluster, ['vdisk', 'ls'])).not.toMatch(/^(s2|c0|s3) /m);
  }, 60_000);

  it('a snapshot taken during a verifying workload holds every write acknowledged before it was asked for, and none sent after it returned', async () => {
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'busy', '--size', '64M']));
    const writer = new AckedWriter({ uri: uri('busy'), base: 0, strideBytes: 64 * KiB, blockBytes: 4 * KiB, perRound: 8, blocks: 600, deadlineMs: 50_000 }).start();
    await writer.waitForAcked(40, 20_000);
    const askedAtMs = Date.now();
    const out = await strata(cluster, ['vdisk', 'snapshot', 'busy', 'busy-snap']);
    const returnedAtMs = Date.now();
    await writer.waitForAckedSince(returnedAtMs, 24, 20_000);
    await writer.stop();
    const pauseMs = Number(/writes held (\d+) ms/.exec(out)![1]);
    const before = writer.acked.filter((b) => b.ackedAtMs < askedAtMs);
    const after = writer.acked.filter((b) => b.firstIssuedAtMs > returnedAtMs);
    expect(before.length).toBeGreaterThanOrEqual(40);
    expect(after.length).toBeGreaterThanOrEqual(8);
    await qemuIoReadOnly(uri('busy-snap'), before.map((b) => `read -P ${b.pattern} ${b.offset} ${b.length}`));
    await qemuIoReadOnly(uri('busy-snap'), after.map((b) => `read -P 0 ${b.offset} ${b.length}`));
    // The vDisk itself has every acknowledged write.
    await readBackAcked(uri('busy'), writer.acked);
    const inBetween = writer.acked.length - before.length - after.length;
    console.log(`snapshot during writes: cut ${askedAtMs - writer.acked[0]!.ackedAtMs} ms into the workload; command took ${returnedAtMs - askedAtMs} ms, writes held ${pauseMs} ms; ${before.length} writes acked before (all in it), ${after.length} sent after (none in it), ${inBetween} in between (either)`);
    expect(id).toBeGreaterThan(0n);
  }, 60_000);

  it('a clone is writable and independent of its snapshot and of the source', async () => {
    const out = await strata(cluster, ['vdisk', 'clone', 's1', 'c1']);
    expect(out).toMatch(/^vdisk c1 cloned from snapshot s1 \(id \d+, 8 blocks shared\)/);
    cloneId = BigInt(/id (\d+)/.exec(out)![1]!);
    await qemuIo(uri('c1'), ['read -P 10 0 8M']);
    // Large writes, and a small one into block 7 (shared, in the source's extent group: it moves).
    await qemuIo(uri('c1'), ['write -P 12 0 6M', `write -P 15 ${7 * MiB + 8 * KiB} 4K`]);
    await waitForDrained(cluster.natsUrl, cloneId, 20_000);
    await qemuIo(uri('c1'), CLONE_READS);
    await qemuIo(uri('src'), ['write -P 13 7M 1M']);
    await qemuIo(uri('c1'), CLONE_READS);
    await qemuIoReadOnly(uri('s1'), ['read -P 10 0 8M']);
    await qemuIo(uri('src'), SRC_READS_LATER);
    expect(await strata(cluster, ['vdisk', 'snapshots', 'src'])).toMatch(/^s1 .* c1 +ok$/m);
  }, 60_000);

  it('removing the snapshot frees the extent groups only it named, after curator scans; the source and the clone still read right', async () => {
    // Wait for drains to settle, then see who names what.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const before = await metadata(cluster);
    const live = new Set([...namedBy(before.rows, srcId), ...namedBy(before.rows, cloneId)]);
    const onlySnapshot = [...namedBy(before.rows, snapId)].filter((e) => !live.has(e));
    // The source and the clone both rewrote blocks 0-5: some of the snapshot's extent groups are its alone.
    expect(onlySnapshot.length).toBeGreaterThan(0);
    const files = (ids: Iterable<bigint>): string[] => [...ids].flatMap((e) => before.egroups.get(e)!.replicas.map((r) => replicaFile(cluster, r.node, e)));
    expect(files(onlySnapshot).every((f) => existsSync(f))).toBe(true);

    await strata(cluster, ['vdisk', 'rm', 's1']);
    const deadline = Date.now() + 20_000;
    let after = before;
    for (;;) {
      await strata(cluster, ['curator', 'scan'], 20_000).catch(() => undefined);
      after = await metadata(cluster);
      const gone = onlySnapshot.every((e) => !after.egroups.has(e)) && files(onlySnapshot).every((f) => !existsSync(f));
      if (gone && !after.rows.some((r) => r.key.startsWith(`${snapId}.`))) break;
      if (Date.now() > deadline) throw new Error(`after 20 s of scans, still there: ${onlySnapshot.filter((e) => after.egroups.has(e)).join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    // Every extent group the source or the clone names is still there, entry and files.
    for (const e of live) {
      expect({ e, entry: after.egroups.has(e) }).toEqual({ e, entry: true });
      for (const f of files([e])) expect({ f, exists: existsSync(f) }).toEqual({ f, exists: true });
    }
    await qemuIo(uri('c1'), CLONE_READS);
    await qemuIo(uri('src'), SRC_READS_LATER);
    expect(await strata(cluster, ['vdisk', 'ls'])).toMatch(/^c1 .* clone +\d+ +ok$/m);
    console.log(`snapshot removal freed ${onlySnapshot.length} extent groups only it named; ${live.size} named by the source or the clone kept`);
    cluster.passed = true;
  }, 60_000);
});
