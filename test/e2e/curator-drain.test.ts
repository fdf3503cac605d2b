// Replicas leaving through the curator (PROTOCOL.md section 13), end to end with real
// processes on one `strata up` cluster of 3 nodes, RF 2.
//
// Scrub: a vDisk written through node 1 (so each extent group has a replica there),
// one byte flipped in one replica's data file on n1's disk, then `strata curator scrub`:
// the pass reports it damaged (curator.scrub.damaged, with the checksum failure), a
// copy from the good replica replaces it on the third node, the damaged file is
// deleted, the new replica has the good one's bytes, and the data reads back right.
//
// Drain: `strata node drain`. Node 2 owns the
// vDisk (its gateway serves the writer), so every extent group has a replica there. While a
// verifying qemu-io writer writes through node 2, `strata node drain n2 --wait` marks
// the node draining and waits, printing progress, until the extent-group map names
// none of its disks. The test proves: the map sampled during the drain never shows an
// extent group below RF; no client error and no lost write; every extent
// group at RF 2 on distinct nodes other than n2, in the metadata and on the disks (each
// replica's file there, the same bytes as the other's); n2's disk holds no replica
// file; the end was announced (curator.drain.done) and shown (`strata curator status`);
// `strata node rm n2` refused before and accepted after.
//
// Disk: on the two nodes left, a second disk added to n1, then `strata disk rm n1-d1
// --wait`: its replicas move to n1-d2 (the same node: no other node is free with RF
// 2), the disk is removed, and the data reads back.
//
// Its teeth: with STRATA_REBUILD=off (CURATOR_TEST_REBUILD=off runs it so) nothing is
// copied: the damaged replica is never replaced, and `node drain --wait` times out.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { EventType } from '@strata/proto';
import { UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { egroupsOf, protectionProblem, replicaFile } from '../harness/curator';
import { HA_TEST_ENV, strata } from '../harness/ha';
import { AckedWriter, createdId, qemuIo, readBackAcked, readOwnership, waitForDrained } from '../harness/strata';
import { run } from '../harness/processes';

const KiB = 1024;
const MiB = 1024 * KiB;

const clusters = new UpClusters('drain');

/** `strata ...args` that must fail: its exit code and stderr. */
async function strataFails(cluster: UpCluster, args: string[]): Promise<{ code: number | string; stderr: string }> {
  const { code, stderr } = await run(process.execPath, ['cli/dist/main.js', '--dir', cluster.dir, ...args], { timeoutMs: 30_000 });
  if (code === 0) throw new Error(`strata ${args.join(' ')} succeeded; it should have failed`);
  return { code, stderr };
}

/** A scan every second, small extent groups (so there are many to move). */
const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  STRATA_DRAIN_START_BYTES: String(64 * KiB),
  // Copies at 2 MiB/s: the drain takes seconds, long enough to overlap the writes.
  STRATA_CURATOR_COPY_BYTES_PER_SEC: String(2 * MiB),
  STRATA_REBUILD: process.env.CURATOR_TEST_REBUILD ?? 'on',
  STRATA_SCRUB_BYTES_PER_S: String(16 * MiB),
};

/** Flips the bits of the byte at `offset` of `file`, as a failing disk might. */
function flipByte(file: string, offset: number): void {
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

const sha1Padded = (files: Buffer[]): string[] => {
  const size = Math.max(...files.map((b) => b.length));
  return files.map((b) => createHash('sha1').update(Buffer.concat([b, Buffer.alloc(size - b.length)])).digest('hex'));
};

describe('replicas leaving through the curator', () => {
  let cluster: UpCluster;
  /** The vDisk the scrub case writes, read again after its disk is drained. */
  let coldId: bigint;
  beforeAll(async () => {
    cluster = await clusters.start({ nodes: 3, env: ENV });
  }, 120_000);
  afterAll(async () => {
    await clusters.stopAll();
  }, 60_000);

  it('scrub finds a flipped byte in one replica, replaces it from the good one, and reports it', async () => {
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/cold`;
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'cold', '--size', '64M']));
    coldId = id;
    await qemuIo(uri, ['write -P 0x5a 0 3M']);
    await waitForDrained(cluster.natsUrl, id, 30_000);
    const entries = await egroupsOf(cluster.natsUrl, id);
    const [egroup, entry] = [...entries].find(([, e]) => e.sizeBytes > 0 && e.replicas.some((r) => r.node === 'n1'))!;
    const bad = entry.replicas.find((r) => r.node === 'n1')!;
    const good = entry.replicas.find((r) => r.node !== 'n1')!;
    const badFile = replicaFile(cluster, 'n1', egroup);
    flipByte(badFile, 1000);
    const flippedAt = Date.now();

    const pass = await strata(cluster, ['curator', 'scrub']);
    expect(pass).toMatch(/^scrub at .*: \d+ replicas \([\d.]+ [KM]iB\) read and verified, 1 damaged, 0 skipped$/m);
    // Replaced: the entry names a new replica on the third node instead of the damaged one.
    const repaired = await waitFor(`egroup ${egroup} repaired`, 30_000, async () => {
      const now = (await egroupsOf(cluster.natsUrl, id)).get(egroup);
      return now !== undefined && !now.replicas.some((r) => r.disk === bad.disk) && now.replicas.length === 2 ? now : false;
    }, 200);
    expect(repaired.replicas.some((r) => r.disk === good.disk)).toBe(true);
    const fresh = repaired.replicas.find((r) => r.disk !== good.disk)!;
    expect(fresh.node).not.toBe('n1');
    const [a, b] = sha1Padded([readFileSync(replicaFile(cluster, good.node, egroup)), readFileSync(replicaFile(cluster, fresh.node, egroup))]);
    expect(a).toBe(b);
    await waitFor('the damaged file deleted', 10_000, () => !existsSync(badFile), 200);
    await qemuIo(uri, ['read -P 0x5a 0 3M']);

    const nc = await connectClient(cluster.natsUrl);
    const events = (await readEvents(nc).finally(() => nc.close())).filter((ev) => ev.atMs >= flippedAt);
    expect(events.filter((ev) => ev.type === EventType.curatorScrubDamaged)).toEqual([expect.objectContaining({ kind: 'egroup', id: egroup, fromDisk: bad.disk, reason: expect.stringMatching(/failed its check/) })]);
    expect(events.some((ev) => ev.type === EventType.curatorScrubDone)).toBe(true);
    expect(events.filter((ev) => ev.type === EventType.curatorReplicaCopied && ev.id === egroup)).toEqual([expect.objectContaining({ fromDisk: good.disk, toDisk: fresh.disk, reason: expect.stringMatching(/failed its checksum/) })]);
    expect(await strata(cluster, ['curator', 'status'])).toMatch(/^scrub: not running; last pass: scrub at .* 1 damaged, 0 skipped$/m);
  }, 90_000);

  it('moves every replica off a node during writes, never below RF, and the node can then be removed', async () => {
    const uri = `nbd://127.0.0.1:${cluster.nbdPort + 1}/data`;
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'data', '--size', '256M']));
    const writer = new AckedWriter({ uri, base: MiB, strideBytes: 128 * KiB, blockBytes: 64 * KiB, perRound: 8, blocks: 96, verifyPrevious: true, deadlineMs: 60_000 });
    cluster.writer = writer;
    writer.start();
    await writer.waitForAcked(24, 30_000);
    expect(await readOwnership(cluster.natsUrl, id)).toMatchObject({ owner: 'n2' });
    const before = await egroupsOf(cluster.natsUrl, id);
    expect([...before.values()].some((e) => e.replicas.some((r) => r.node === 'n2'))).toBe(true);

    // Refused while it holds replicas, with what to do instead.
    expect((await strataFails(cluster, ['node', 'rm', 'n2'])).stderr).toMatch(/^strata: CONFLICT: node n2 holds replicas of \d+ extent groups? .*"strata node drain n2 --wait"/);

    // While it drains, the map is sampled: every entry keeps RF replicas on distinct nodes at every moment.
    let sampling = true;
    const shortfalls: string[] = [];
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        for (const [e, entry] of await egroupsOf(cluster.natsUrl, id)) {
          if (entry.replicas.length < 2 || new Set(entry.replicas.map((r) => r.node)).size < entry.replicas.length) shortfalls.push(`egroup ${e}: ${entry.replicas.map((r) => r.node).join(',')}`);
        }
        samples++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const drainedAt = Date.now();
    const out = await strata(cluster, ['node', 'drain', 'n2', '--wait', '--timeout', '40'], 60_000).finally(() => (sampling = false));
    const drainEnd = Date.now();
    await sampler;
    expect({ samples: samples > 5, shortfalls }).toEqual({ samples: true, shortfalls: [] });
    // The drain overlapped the writes.
    expect(writer.acked.filter((b) => b.ackedAtMs > drainedAt && b.ackedAtMs < drainEnd).length).toBeGreaterThan(0);
    expect(out).toMatch(/^node n2 is draining: the curator moves its replicas to other nodes$/m);
    expect(out).toMatch(/^node n2: \d+ extent groups? \([\d.]+ [KM]iB\) left/m);
    expect(out).toMatch(/^node n2: drained, it holds no replica$/m);

    await writer.finished();
    expect(writer.failures).toEqual([]);
    await waitForDrained(cluster.natsUrl, id, 30_000);
    await readBackAcked(uri, writer.acked);
    expect(writer.acked).toHaveLength(96);

    // Every extent group at RF 2 on distinct nodes, none on n2, in the metadata...
    const after = await egroupsOf(cluster.natsUrl, id);
    const problems = [...after].map(([e, entry]) => protectionProblem(e, entry, 2, new Set(['n2']))).filter((p) => p !== undefined);
    expect(problems).toEqual([]);
    // ... and on the disks: each replica's file, the same bytes as the other's (padded with zeros, see curator-rebuild.test.ts).
    for (const [e, entry] of after) {
      if (entry.sizeBytes === 0) continue;
      expect(new Set(sha1Padded(entry.replicas.map((r) => readFileSync(replicaFile(cluster, r.node, e))))).size).toBe(1);
    }
    // n2's disk holds no replica file of the vDisk's extent groups (moved ones deleted, none new).
    const n2Files = readdirSync(join(cluster.dir, 'disks', 'n2-d1', 'egroups')).filter((f) => f.endsWith('.eg'));
    expect(n2Files.filter((f) => after.has(BigInt(f.replace(/\.eg$/, ''))) || before.has(BigInt(f.replace(/\.eg$/, ''))))).toEqual([]);
    for (const e of after.keys()) expect(existsSync(replicaFile(cluster, 'n2', e))).toBe(false);

    // Announced and shown.
    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    const moved = events.filter((ev) => ev.type === EventType.curatorReplicaCopied && ev.atMs >= drainedAt);
    expect(moved.length).toBeGreaterThan(0);
    for (const ev of moved) expect(ev.reason).toMatch(/node n2 is draining/);
    expect(events.filter((ev) => ev.type === EventType.curatorDrainDone)).toEqual([expect.objectContaining({ kind: 'node', name: 'n2', reason: 'node n2 holds no replica' })]);
    expect(await strata(cluster, ['curator', 'status'])).toMatch(/^draining node n2: drained, it holds no replica$/m);
    console.log(`drain of n2: ${moved.length} replicas moved in ${Math.round((Date.now() - drainedAt) / 100) / 10} s\n${out}`);

    // Drained: removed, with its disk.
    expect(await strata(cluster, ['node', 'rm', 'n2'])).toMatch(/^node n2 removed with its disk n2-d1; host n2 no longer has a storage node$/m);
  }, 150_000);

  it('disk rm --wait drains a disk through the curator (to another disk of the same node) and then removes it', async () => {
    const listDisks = async (): Promise<Array<{ name: string; id: string }>> => JSON.parse(await strata(cluster, ['--json', 'disk', 'ls'])) as Array<{ name: string; id: string }>;
    const d1 = BigInt((await listDisks()).find((d) => d.name === 'n1-d1')!.id);
    await strata(cluster, ['disk', 'add', 'n1-d2', '--node', 'n1', '--path', join(cluster.dir, 'disks', 'n1-d2'), '--capacity', '1G']);
    const d2 = BigInt((await listDisks()).find((d) => d.name === 'n1-d2')!.id);
    // A drain started and cancelled: the mark goes, and the disk is placed on again.
    expect(await strata(cluster, ['disk', 'drain', 'n1-d1'])).toMatch(/^disk n1-d1 is draining: the curator moves its replicas to other disks$/m);
    expect(await strata(cluster, ['disk', 'drain', 'n1-d1', '--cancel'])).toMatch(/^disk n1-d1 is no longer draining$/m);
    expect(await strata(cluster, ['disk', 'drain', 'n1-d1', '--cancel'])).toMatch(/^disk n1-d1 was not draining$/m);
    expect(JSON.parse(await strata(cluster, ['--json', 'disk', 'ls'])).find((d: { name: string }) => d.name === 'n1-d1').spec.drainingSinceMs).toBeUndefined();
    // Moves the short drain made went to n1-d2: count the replicas on either disk of n1.
    const onN1 = [...(await egroupsOf(cluster.natsUrl, coldId)).values()].filter((e) => e.replicas.some((r) => r.disk === d1 || r.disk === d2)).length;
    expect(onN1).toBeGreaterThan(0);

    const out = await strata(cluster, ['disk', 'rm', 'n1-d1', '--wait', '--timeout', '40'], 60_000);
    expect(out).toMatch(/^disk n1-d1 is draining: the curator moves its replicas to other disks$/m);
    expect(out).toMatch(/^disk n1-d1: drained, it holds no replica$/m);
    expect(out).toMatch(/^disk n1-d1 removed$/m);
    const entries = [...(await egroupsOf(cluster.natsUrl, coldId)).values()];
    expect(entries.filter((e) => e.replicas.some((r) => r.disk === d1))).toEqual([]);
    expect(entries.filter((e) => e.replicas.some((r) => r.disk === d2)).length).toBe(onN1);
    for (const e of entries) expect(new Set(e.replicas.map((r) => r.node)).size).toBe(2);
    await qemuIo(`nbd://127.0.0.1:${cluster.nbdPort}/cold`, ['read -P 0x5a 0 3M']);
    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    expect(events.filter((ev) => ev.type === EventType.curatorDrainDone && ev.kind === 'disk')).toEqual([expect.objectContaining({ name: 'n1-d1', id: d1 })]);
    cluster.passed = true;
  }, 90_000);
});
