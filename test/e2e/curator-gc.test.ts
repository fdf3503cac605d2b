// The curator's garbage collection of replica files nothing references (PROTOCOL.md
// section 13), end to end with real processes: a `strata up` cluster, RF 2 on 3 nodes,
// a grace period of 2 s and a scan every second. Two kinds of garbage are made on the
// disks: (a) a stray replica of an extent group that has no md-egroup entry, written
// by a real extent-store write request over NATS; (b) the replicas of a node (not the
// vDisk owner's) that was paused (SIGSTOP of all its actors) until declared dead and
// re-replicated elsewhere, then resumed (SIGCONT): its old replicas are no longer named
// by any entry. After
// scans, both kinds are gone from the disks, every replica an entry names is still
// there, the data reads back through a real NBD client (qemu-io), and the event and
// `strata curator status` show the bytes reclaimed.
//
// Its teeth: with STRATA_GC=off (CURATOR_TEST_GC=off runs it so) nothing is deleted
// and the wait for the garbage to be gone fails.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { connectBus, type Bus } from '@strata/bus';
import { EstoreOp, EventType, egWriteReply, subjects } from '@strata/proto';
import { ConfigClient, UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { egroupsOf, protectionProblem, replicaFile } from '../harness/curator';
import { HA_TEST_ENV, hostProcesses, strata } from '../harness/ha';
import { createdId, qemuIo, waitForDrained } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;
/** An extent-group id no vDisk will reach in this test: its replica has no entry. */
const STRAY = 9_000_000_001n;

const clusters = new UpClusters('curator-gc');

/** Nodes dead after 3 s, replicas lost 2 s later, a scan every second, garbage deleted once 2 s old; small extent groups, so there are several. */
const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  STRATA_RESTART_DELAY_MS: '600000',
  STRATA_REPROTECT_DELAY_MS: '2000',
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_GC_GRACE_MS: '2000',
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  STRATA_GC: process.env.CURATOR_TEST_GC ?? 'on',
};

/** The extent groups with a data file on a node's disk. */
function filesOn(cluster: UpCluster, node: string): Set<bigint> {
  const dir = join(cluster.dir, 'disks', `${node}-d1`, 'egroups');
  return new Set(
    readdirSync(dir)
      .filter((f) => f.endsWith('.eg'))
      .map((f) => BigInt(f.slice(0, -'.eg'.length))),
  );
}

function signalAll(pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone already: nothing to pause or resume.
    }
  }
}

describe('the curator deletes replica files nothing references', () => {
  let cluster: UpCluster;
  let bus: Bus | undefined;
  let paused: number[] = [];
  beforeAll(async () => {
    cluster = await clusters.start({ nodes: 3, env: ENV });
  }, 120_000);
  afterAll(async () => {
    signalAll(paused, 'SIGCONT');
    await bus?.close();
    await clusters.stopAll();
  }, 60_000);

  it('removes a stray replica and the replicas of a node re-replicated while it was away, and keeps every replica an entry names', async () => {
    const startedMs = Date.now();
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/data`;
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'data', '--size', '64M']));
    // 8 MiB through node 1: n1 owns the vDisk; several 2 MiB extent groups, each on 2 of the 3 nodes.
    await qemuIo(uri, ['write -P 7 0 8M'], 30_000);
    await waitForDrained(cluster.natsUrl, id, 30_000);

    // (a) A stray replica on n1, by a real write request: its extent group has no entry.
    bus = await connectBus({ name: 'curator-gc-test', servers: cluster.natsUrl });
    const config = new ConfigClient(bus, 10_000);
    const n1 = (await config.list('node')).find((n) => n.name === 'n1')!;
    const n1Disk = (await config.list('disk')).find((d) => d.spec.node === n1.id)!;
    await bus.request(
      subjects.estore('n1', EstoreOp.write),
      { disk: n1Disk.id, egroup: STRAY, vdisk: id, epoch: 1, version: 1, sizeBytes: 64 * KiB, pieces: [{ offset: 0, data: new Uint8Array(64 * KiB).fill(9) }] },
      egWriteReply,
      { timeoutMs: 10_000 },
    );
    expect(existsSync(replicaFile(cluster, 'n1', STRAY))).toBe(true);

    // (b) The node other than the owner's (n1) that holds more replicas is paused until
    // declared dead and its replicas copied elsewhere.
    const before = await egroupsOf(cluster.natsUrl, id);
    const holding = (node: string): bigint[] => [...before].filter(([, e]) => e.replicas.some((r) => r.node === node)).map(([e]) => e);
    const victim = holding('n2').length >= holding('n3').length ? 'n2' : 'n3';
    const onVictim = holding(victim);
    expect(onVictim.length).toBeGreaterThan(0);
    paused = [...(await hostProcesses(cluster.up.pid(), victim)).keys()];
    signalAll(paused, 'SIGSTOP');
    await waitFor(
      `every extent group of vdisk data back to 2 replicas, none on ${victim}`,
      30_000,
      async () => {
        const entries = await egroupsOf(cluster.natsUrl, id);
        return [...entries].every(([e, entry]) => protectionProblem(e, entry, 2, new Set([victim])) === undefined);
      },
      500,
    );
    const stale = onVictim.filter((e) => filesOn(cluster, victim).has(e));
    expect(stale.length).toBeGreaterThan(0);
    const resumedAt = Date.now();
    signalAll(paused, 'SIGCONT');
    paused = [];

    // Both kinds gone after scans (one a second, and those asked for here).
    let left: string[] = [];
    await waitFor(
      `the stray replica on n1 and the stale replicas on ${victim} deleted`,
      30_000,
      async () => {
        await strata(cluster, ['curator', 'scan'], 20_000).catch(() => undefined);
        const onDisk = filesOn(cluster, victim);
        left = [...stale.filter((e) => onDisk.has(e)).map((e) => `${victim}:${e}`), ...(existsSync(replicaFile(cluster, 'n1', STRAY)) ? [`n1:${STRAY}`] : [])];
        return left.length === 0;
      },
      1_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; still on the disks: ${left.join(', ')}`);
    });

    // Every replica an entry names is still there, and the data reads back.
    const after = await egroupsOf(cluster.natsUrl, id);
    expect(after.size).toBe(before.size);
    for (const [e, entry] of after) {
      for (const r of entry.replicas) {
        const file = replicaFile(cluster, r.node, e);
        expect({ file, exists: existsSync(file) }).toEqual({ file, exists: true });
      }
    }
    await qemuIo(uri, ['read -P 7 0 8M'], 30_000);

    // The event and the status show the bytes reclaimed.
    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    const collected = events.filter((ev) => ev.type === EventType.curatorGarbageDeleted && ev.atMs >= resumedAt);
    const freed = collected.reduce((n, ev) => n + (ev.freedBytes ?? 0), 0);
    expect(freed).toBeGreaterThanOrEqual(64 * KiB + stale.length * 4 * KiB);
    const status = await strata(cluster, ['curator', 'status']);
    const garbage = /^garbage: (\d+) replicas, .* reclaimed \(last scan: .*\)$/m.exec(status);
    expect(Number(garbage?.[1])).toBeGreaterThanOrEqual(stale.length + 1);
    console.log(`${stale.length} stale replicas on ${victim} and 1 stray on n1 deleted, ${freed} bytes reclaimed; the case took ${Math.round((Date.now() - startedMs) / 1000)} s\n${status}`);
    cluster.passed = true;
  }, 90_000);
});
