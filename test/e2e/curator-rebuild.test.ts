// Re-replication by the curator after a node is lost for good (PROTOCOL.md section 13),
// end to end with real processes: a `strata up` cluster, RF 2 on 3 nodes and RF 3 on 4
// nodes. A shared vDisk is opened first through node 1's gateway (so node 1 owns it and
// its extent groups all have a replica there), then a verifying qemu-io writer writes
// known patterns through the last node's gateway. Every process of node 1 is killed -9
// (`strata up` would restart them only after ten minutes): the vDisk fails over to the
// writer's node, which reads every acknowledged block back at once (so its controller
// caches extent-group entries that still name node 1). After the re-protection delay
// the curator copies each lost replica; the test proves that every extent group is
// back to RF replicas on distinct live nodes, in the metadata and on the disks (each
// replica's data file is there, with the same bytes as the others'), that the writer saw no error,
// and that the progress was shown (events, `strata curator status`). Then node 2 is
// killed too, and every acknowledged write still reads back: with RF 2 the controller's
// cached entries then name two dead nodes, and only the rebuilt replicas (and the
// controller reading the entry again) can serve them.
//
// Its teeth: with STRATA_REBUILD=off (CURATOR_TEST_REBUILD=off runs it so) no replica is
// copied and the wait for RF replicas on live nodes fails.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { EventType } from '@strata/proto';
import { UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { egroupsOf, protectionProblem, replicaFile } from '../harness/curator';
import { HA_TEST_ENV, hostProcesses, killAll, strata } from '../harness/ha';
import { AckedWriter, createdId, qemuIo, readBackAcked, readOwnership, waitForDrained } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;

const clusters = new UpClusters('curator');

/** Short timings: nodes declared dead after 3 s, replicas lost 4 s later, a scan every second; small extent groups, so there are many. */
const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  STRATA_RESTART_DELAY_MS: '600000',
  STRATA_REPROTECT_DELAY_MS: '4000',
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  STRATA_DRAIN_START_BYTES: String(64 * KiB),
  STRATA_REBUILD: process.env.CURATOR_TEST_REBUILD ?? 'on',
};

interface Case {
  rf: 2 | 3;
  nodes: 3 | 4;
}

describe.each<Case>([
  { rf: 2, nodes: 3 },
  { rf: 3, nodes: 4 },
])('the curator re-protects RF $rf on $nodes nodes after a node is lost for good', ({ rf, nodes }) => {
  let cluster: UpCluster;
  beforeAll(async () => {
    cluster = await clusters.start({ nodes, env: ENV });
  }, 120_000);
  afterAll(async () => {
    await clusters.stopAll();
  }, 60_000);

  it('copies every lost replica to a live node, shows its progress, and the data survives a second node loss', async () => {
    const startedMs = Date.now();
    const writerNode = `n${nodes}`;
    const uriAt = (k: number, name: string): string => `nbd://127.0.0.1:${cluster.nbdPort + k - 1}/${name}`;
    if (rf === 3) await strata(cluster, ['container', 'create', 'gold', '--rf', '3']);
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'data', '--size', '256M', '--shared', ...(rf === 3 ? ['--container', 'gold'] : [])]));
    // Opened first through node 1: n1 owns it, so every extent group drain makes has a replica on n1.
    await qemuIo(uriAt(1, 'data'), ['write -P 1 0 4k'], 30_000);
    expect(await readOwnership(cluster.natsUrl, id)).toMatchObject({ owner: 'n1' });

    // The writer goes through the last node's gateway (forwarded to the owner, n1), whose node becomes a volunteer.
    const writer = new AckedWriter({ uri: uriAt(nodes, 'data'), base: MiB, strideBytes: 128 * KiB, blockBytes: 64 * KiB, perRound: 8, blocks: 96, verifyPrevious: true, deadlineMs: 60_000 });
    cluster.writer = writer;
    writer.start();
    await writer.waitForAcked(32, 20_000);

    const victims = await hostProcesses(cluster.up.pid(), 'n1');
    expect([...victims.values()].some((cmd) => cmd.includes('services/curator/'))).toBe(true);
    const killedAt = Date.now();
    killAll(victims.keys());
    // The vDisk fails over to the writer's node, and writes go on.
    await writer.waitForAckedSince(killedAt, 8, 30_000);
    expect(await readOwnership(cluster.natsUrl, id)).toMatchObject({ owner: writerNode });
    // Read everything back now, before the curator has copied anything: the new owner
    // caches the extent-group entries as they are, naming n1.
    await readBackAcked(uriAt(nodes, 'data'), [...writer.acked]);
    await writer.finished();
    await waitForDrained(cluster.natsUrl, id, 30_000);

    // Every extent group back to RF replicas on distinct live nodes, in the metadata...
    const dead = new Set(['n1']);
    let problems: string[] = [];
    const rebuilt = await waitFor(
      `every extent group of vdisk data back to ${rf} replicas on live nodes`,
      30_000,
      async () => {
        const entries = await egroupsOf(cluster.natsUrl, id);
        problems = [...entries].map(([e, entry]) => protectionProblem(e, entry, rf, dead)).filter((p) => p !== undefined);
        return entries.size > 0 && problems.length === 0 ? entries : false;
      },
      500,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${problems.slice(0, 5).join('; ')}`);
    });
    // ... and on the disks: each replica's data file is there, with the same bytes as the
    // others'. A data file may end before the replica's size when its last bytes were
    // never written (they read as zeros); a copy writes them, so compare padded with zeros.
    for (const [e, entry] of rebuilt) {
      if (entry.sizeBytes === 0) continue;
      const files = entry.replicas.map((r) => {
        const file = replicaFile(cluster, r.node, e);
        expect({ file, exists: existsSync(file) }).toEqual({ file, exists: true });
        return { file, bytes: readFileSync(file) };
      });
      const size = Math.max(...files.map((f) => f.bytes.length));
      expect(size).toBeGreaterThan(0);
      const digest = (b: Buffer): string => createHash('sha1').update(Buffer.concat([b, Buffer.alloc(size - b.length)])).digest('hex');
      const expected = digest(files[0]!.bytes);
      for (const f of files) expect({ file: f.file, sha1: digest(f.bytes) }).toEqual({ file: f.file, sha1: expected });
    }

    // The progress was shown: an event per copy, scans, and the master's status.
    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    const copied = events.filter((ev) => ev.type === EventType.curatorReplicaCopied && ev.atMs >= killedAt);
    expect(copied.length).toBeGreaterThan(0);
    for (const ev of copied) expect(ev).toMatchObject({ kind: 'egroup', fromDisk: expect.any(BigInt), toDisk: expect.any(BigInt), bytes: expect.any(Number), reason: expect.stringMatching(/node n1 dead/) });
    expect(events.some((ev) => ev.type === EventType.curatorScanDone)).toBe(true);
    expect(events.some((ev) => ev.type === EventType.curatorMasterElected)).toBe(true);
    const status = await strata(cluster, ['curator', 'status']);
    expect(status).toMatch(/^under-replicated extent groups: 0$/m);
    const done = /rebuild progress: .* copied \((\d+) copies, (\d+) failed\)/m.exec(status);
    expect(Number(done?.[1])).toBeGreaterThanOrEqual(copied.length);
    // A full scan, which also asks each replica's extent store for its file, finds nothing more to do.
    expect(await strata(cluster, ['curator', 'scan', '--full'])).toMatch(/^scan \d+ \(full\) at .*: \d+ extent groups, 0 under-replicated, \d+ replicas lost, 0 copies queued, 0 unfixable$/m);
    console.log(`RF ${rf}, ${nodes} nodes: ${rebuilt.size} extent groups, ${copied.length} replicas copied, rebuilt ${Math.round((Math.max(...copied.map((ev) => ev.atMs)) - killedAt) / 100) / 10} s after the kill\n${status}`);

    // The client saw no error through the failover and the copies.
    expect(writer.failures).toEqual([]);

    // A second node lost for good: every acknowledged write still reads back.
    const secondKillAt = Date.now();
    killAll((await hostProcesses(cluster.up.pid(), 'n2')).keys());
    await readBackAcked(uriAt(nodes, 'data'), writer.acked);
    expect(writer.acked).toHaveLength(96);
    console.log(`RF ${rf}, ${nodes} nodes: the case took ${Math.round((Date.now() - startedMs) / 1000)} s (first kill after ${Math.round((killedAt - startedMs) / 1000)} s, the read-back after the second kill ${Math.round((Date.now() - secondKillAt) / 1000)} s)`);
    cluster.passed = true;
  }, 150_000);
});
