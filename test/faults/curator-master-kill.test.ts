// The curator master killed -9 in the middle of re-replication (PROTOCOL.md section 13):
// another node's curator takes the lease `curator.master`, scans again, and finishes
// the copies; no replica ends up on a wrong or duplicate disk, and the data reads back.
//
// A `strata up` cluster, RF 2 on 4 nodes, copies slowed to 1 MiB/s one at a time so the
// rebuild of node 1's replicas takes several seconds. Node 1 is killed for good; at the
// first copy the test kills -9 the master's curator (which `strata up` restarts only
// after ten minutes), and the rebuild must still end with every extent group at two
// replicas on distinct disks of distinct live nodes.
import { EventType } from '@strata/proto';
import { UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { egroupsOf, protectionProblem } from '../harness/curator';
import { HA_TEST_ENV, hostProcesses, killAll, strata } from '../harness/ha';
import { AckedWriter, createdId, qemuIo, readBackAcked, readOwnership, waitForDrained } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;

const clusters = new UpClusters('curator-master-kill');

const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  STRATA_RESTART_DELAY_MS: '600000',
  STRATA_REPROTECT_DELAY_MS: '3000',
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_CURATOR_LEASE_TTL_MS: '2000',
  STRATA_CURATOR_COPIES_IN_FLIGHT_MAX: '1',
  STRATA_CURATOR_COPY_BYTES_PER_SEC: String(MiB),
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  STRATA_DRAIN_START_BYTES: String(64 * KiB),
};

async function copiedSince(cluster: UpCluster, sinceMs: number): Promise<Array<{ atMs: number; message: string }>> {
  const nc = await connectClient(cluster.natsUrl);
  const events = await readEvents(nc).finally(() => nc.close());
  return events.filter((ev) => ev.type === EventType.curatorReplicaCopied && ev.atMs >= sinceMs);
}

describe('the curator master killed -9 during re-replication', () => {
  let cluster: UpCluster;
  beforeAll(async () => {
    cluster = await clusters.start({ nodes: 4, env: ENV });
  }, 120_000);
  afterAll(() => clusters.stopAll(), 60_000);

  it('the next master resumes the rebuild, and every extent group ends at RF on distinct live disks', async () => {
    const uriAt = (k: number): string => `nbd://127.0.0.1:${cluster.nbdPort + k - 1}/data`;
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'data', '--size', '256M', '--shared']));
    // Opened first through node 1, so node 1 owns it and every extent group has a replica there.
    await qemuIo(uriAt(1), ['write -P 1 0 4k'], 30_000);
    const writer = new AckedWriter({ uri: uriAt(4), base: MiB, strideBytes: 128 * KiB, blockBytes: 64 * KiB, perRound: 8, blocks: 128, verifyPrevious: true, deadlineMs: 60_000 });
    cluster.writer = writer;
    writer.start();
    await writer.finished();
    await waitForDrained(cluster.natsUrl, id, 30_000);
    const before = await egroupsOf(cluster.natsUrl, id);
    const onN1 = [...before.values()].filter((e) => e.replicas.some((r) => r.node === 'n1')).length;
    // The premise: enough to copy that the rebuild outlasts the kill.
    expect(onN1).toBeGreaterThanOrEqual(4);

    // The master must not be node 1's curator: kill node 1 and wait for a master elsewhere.
    const killedAt = Date.now();
    killAll((await hostProcesses(cluster.up.pid(), 'n1')).keys());
    const firstMaster = await waitFor('a curator master on a live node', 20_000, async () => {
      const status = await strata(cluster, ['curator', 'status']).catch(() => '');
      const master = /^master: (n\d) /m.exec(status)?.[1];
      return master !== undefined && master !== 'n1' ? master : false;
    });

    // At its first copy, the master's curator is killed -9.
    await waitFor('the first copy after the node loss', 30_000, async () => (await copiedSince(cluster, killedAt)).length > 0, 200);
    const curatorPid = [...(await hostProcesses(cluster.up.pid(), firstMaster))].find(([, cmd]) => cmd.includes('services/curator/'))?.[0];
    expect(curatorPid).toBeDefined();
    const masterKilledAt = Date.now();
    killAll([curatorPid!]);

    // Another curator is elected, and the rebuild finishes under it.
    const dead = new Set(['n1']);
    let problems: string[] = [];
    await waitFor(
      'every extent group back to 2 replicas on distinct live nodes',
      60_000,
      async () => {
        const entries = await egroupsOf(cluster.natsUrl, id);
        problems = [...entries].map(([e, entry]) => protectionProblem(e, entry, 2, dead)).filter((p) => p !== undefined);
        return entries.size > 0 && problems.length === 0;
      },
      500,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${problems.slice(0, 5).join('; ')}`);
    });
    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    const elected = events.filter((ev) => ev.type === EventType.curatorMasterElected && ev.atMs > masterKilledAt);
    expect(elected.length).toBeGreaterThan(0);
    const copiedAfter = events.filter((ev) => ev.type === EventType.curatorReplicaCopied && ev.atMs > masterKilledAt);
    expect(copiedAfter.length).toBeGreaterThan(0);
    // The status counts what the last scan saw: a scan that read the entries just before
    // the last copy was recorded still counts that extent group, so wait for the next one.
    let status = '';
    await waitFor('curator status to count no under-replicated extent group', 20_000, async () => {
      status = await strata(cluster, ['curator', 'status']);
      return /^under-replicated extent groups: 0$/m.test(status);
    }, 500).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; the last status:\n${status}`);
    });
    expect(status).not.toMatch(new RegExp(`^master: ${firstMaster} `, 'm'));
    console.log(`curator master ${firstMaster} killed at the first copy; ${elected[0]!.message}; ${copiedAfter.length} copies after it`);

    // And the data: every acknowledged write reads back through a live gateway.
    expect(await readOwnership(cluster.natsUrl, id)).not.toMatchObject({ owner: 'n1' });
    await readBackAcked(uriAt(4), writer.acked);
    cluster.passed = true;
  }, 180_000);
});
