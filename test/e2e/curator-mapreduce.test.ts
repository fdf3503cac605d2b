// Curator scans as MapReduce over the curators (PROTOCOL.md section 13, "Scans as map
// tasks"), end to end with real processes: a `strata up` cluster of 3 nodes, RF 2, each
// page of a map task held 1 s (STRATA_CURATOR_MAP_HOLD_MS) so that a kill lands
// mid-task, and no scheduled scan in the way (only the master's first and the
// operator's). One cluster for three cases, in order:
//
// 1. A full scan's map tasks run on the slave curators (the status names them while it
//    runs); the slave mapping one is killed -9 mid-task: its task goes to another curator
//    (`curator.scan.task.reassigned` names it), the scan completes over every entry, and
//    its plan is what a scan in one process would make: a replica whose file was deleted
//    beforehand is found missing (by a slave's stat) and re-replicated.
// 2. The master is killed -9 mid-scan (a full scan, persisted): the next master resumes
//    it (`curator.scan.resumed`), maps again only the tasks not done, and completes it
//    under the same scan id; the `strata curator scan --full` that was waiting for the
//    dead master ends with the new master's name instead of waiting out its timeout.
// 3. A partial scan reads only the entries changed since the last scan: after writes,
//    its entry count is the number of md-egroup entries with a newer revision.
// 4. A slave's curator hung (SIGSTOP) mid-task: an idle curator maps its task too (a
//    backup, after STRATA_CURATOR_MAP_BACKUP_AFTER_MS), and the scan completes.
//
// Its teeth: CURATOR_TEST_MAP_REASSIGN=off (STRATA_CURATOR_MAP_REASSIGN=off) fails cases
// 1 and 4 (the scan fails with the killed or hung slave's task); CURATOR_TEST_SCAN_RESUME=off
// (STRATA_CURATOR_SCAN_RESUME=off) fails case 2 (the new master starts a new scan).
import { existsSync } from 'node:fs';
import { healthReply, healthSubject } from '@strata/actor';
import { connectBus, type Bus } from '@strata/bus';
import { Kvm } from '@nats-io/kv';
import { CuratorOp, EstoreOp, EventType, buckets, egDeleteReply, curatorStatusReply, subjects, type CuratorScanSummary, type CuratorStatusReply } from '@strata/proto';
import { UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { egroupsOf, protectionProblem, replicaFile } from '../harness/curator';
import { HA_TEST_ENV, hostProcesses, killAll, strata } from '../harness/ha';
import { createdId, qemuIo, waitForDrained } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;

const clusters = new UpClusters('curator-mr');

const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  // A killed curator is started again 4 s later (the next case has three curators again).
  STRATA_RESTART_DELAY_MS: '4000',
  STRATA_REPROTECT_DELAY_MS: '600000',
  STRATA_CURATOR_SCAN_INTERVAL_MS: '600000',
  STRATA_CURATOR_MAP_HOLD_MS: '1000',
  STRATA_CURATOR_MAP_TIMEOUT_MS: '4000',
  STRATA_CURATOR_MAP_BACKUP_AFTER_MS: '2500',
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  STRATA_CURATOR_MAP_REASSIGN: process.env.CURATOR_TEST_MAP_REASSIGN ?? 'on',
  STRATA_CURATOR_SCAN_RESUME: process.env.CURATOR_TEST_SCAN_RESUME ?? 'on',
};

/** The pid of a node's curator process. */
async function curatorPid(cluster: UpCluster, node: string): Promise<number | undefined> {
  const procs = await hostProcesses(cluster.up.pid(), node);
  return [...procs].find(([, cmd]) => cmd.includes('services/curator/'))?.[0];
}

/**
 * Waits until every node's curator answers its health check again (a killed one is
 * restarted by `strata up`); the failure names what answered and what `ps` shows.
 */
async function threeCurators(cluster: UpCluster, bus: Bus): Promise<void> {
  const answered = new Map<string, number>();
  try {
    await waitFor('three curators answering their health checks', 30_000, async () => {
      await Promise.all(
        ['n1', 'n2', 'n3'].map(async (n) => {
          const reply = await bus.request(healthSubject('curator', n), {}, healthReply, { timeoutMs: 2_000 }).catch(() => undefined);
          if (reply === undefined) answered.delete(n);
          else answered.set(n, reply.pid);
        }),
      );
      return answered.size === 3;
    }, 300);
  } catch (err) {
    const seen = await Promise.all(['n1', 'n2', 'n3'].map(async (n) => `${n}: ${(await curatorPid(cluster, n)) ?? 'none'}`));
    throw new Error(`${(err as Error).message}: answered ${JSON.stringify([...answered])}; curator processes of strata up ${seen.join(', ')}; its output: ${cluster.up.output().slice(-2000)}`);
  }
}

describe('curator scans as map tasks on the slave curators', () => {
  let cluster: UpCluster;
  let bus: Bus;
  let id: bigint;
  const status = (): Promise<CuratorStatusReply> => bus.request(subjects.curator(CuratorOp.status), {}, curatorStatusReply, { timeoutMs: 5_000, retry: true });
  const scan = async (full: boolean): Promise<CuratorScanSummary> => JSON.parse(await strata(cluster, ['--json', 'curator', 'scan', ...(full ? ['--full'] : [])], 60_000)) as CuratorScanSummary;
  /** The scan running once `ready` says so (bounded). */
  const runningWhen = (what: string, ready: (r: NonNullable<CuratorStatusReply['running']>) => boolean): Promise<CuratorStatusReply> =>
    waitFor(what, 20_000, async () => {
      const s = await status().catch(() => undefined);
      return s?.running !== undefined && ready(s.running) ? s : false;
    }, 100);
  const idle = (): Promise<CuratorStatusReply> =>
    waitFor('the curator master idle: no scan running, no copy queued', 30_000, async () => {
      const s = await status().catch(() => undefined);
      return s !== undefined && s.running === undefined && s.copiesInFlight === 0 && s.progress.bytesToCopy === 0 && s.progress.lastScan !== undefined ? s : false;
    }, 200);

  beforeAll(async () => {
    cluster = await clusters.start({ nodes: 3, env: ENV });
    bus = await connectBus({ name: 'curator-mr-test', servers: cluster.natsUrl });
    id = createdId(await strata(cluster, ['vdisk', 'create', 'data', '--size', '64M']));
    // 16 MiB: eight 2 MiB extent groups, each on 2 of the 3 nodes.
    await qemuIo(`nbd://127.0.0.1:${cluster.nbdPort}/data`, ['write -P 3 0 16M'], 30_000);
    await waitForDrained(cluster.natsUrl, id, 30_000);
  }, 150_000);
  afterAll(async () => {
    await bus?.close();
    await clusters.stopAll();
  }, 60_000);

  it('hands a killed slave’s map task to another curator, and the scan still finds and re-replicates a missing replica', async () => {
    const { master } = await idle();
    const slaves = ['n1', 'n2', 'n3'].filter((n) => n !== master);
    const victim = slaves[0]!;
    // A replica deleted from its extent store (its file and the store's index, as a lost
    // file found at start-up would be) on a node whose curator stays up: only a full
    // scan's stat finds it.
    const entries = await egroupsOf(cluster.natsUrl, id);
    const [egroup, entry] = [...entries].find(([, e]) => e.version > 0 && e.replicas.some((r) => r.node !== victim))!;
    const lost = entry.replicas.find((r) => r.node !== victim)!;
    await bus.request(subjects.estore(lost.node, EstoreOp.delete), { disk: lost.disk, egroup }, egDeleteReply, { timeoutMs: 10_000 });
    expect(existsSync(replicaFile(cluster, lost.node, egroup))).toBe(false);

    const startedMs = Date.now();
    const scanning = scan(true);
    scanning.catch(() => undefined);
    // The slaves map the tasks: the status names them while the scan runs.
    const during = await runningWhen(`${victim} mapping a task of the full scan`, (r) => r.kind === 'full' && (r.workers ?? []).some((w) => w.node === victim && w.mapping > 0));
    expect(during.running?.workers?.map((w) => w.node).filter((n) => n !== master).length).toBeGreaterThan(0);
    const pid = await curatorPid(cluster, victim);
    expect(pid).toBeDefined();
    killAll([pid!]);

    const summary = await scanning;
    expect(summary).toMatchObject({ kind: 'full', tasks: 8, egroups: entries.size, entries: entries.size });
    expect(summary.reassigned).toBeGreaterThanOrEqual(1);
    expect(summary.lostReplicas).toBeGreaterThanOrEqual(1);
    expect(summary.copiesQueued).toBeGreaterThanOrEqual(1);
    // Every task was mapped by a slave that lived, or by the victim before its kill; the master only maps what no slave may.
    expect(summary.workers?.reduce((n, w) => n + w.tasks, 0)).toBe(8);
    expect(summary.workers?.some((w) => w.node !== master)).toBe(true);

    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    const reassigned = events.filter((ev) => ev.type === EventType.curatorScanTaskReassigned && ev.atMs >= startedMs);
    expect(reassigned.map((ev) => ev.name)).toContain(victim);
    expect(events.some((ev) => ev.type === EventType.curatorScanStarted && ev.atMs >= startedMs)).toBe(true);

    // The plan's result: the extent group back to 2 replicas, each with its file.
    await waitFor(
      `egroup ${egroup} re-replicated after its replica on ${lost.node} was found missing`,
      30_000,
      async () => {
        const now = (await egroupsOf(cluster.natsUrl, id)).get(egroup);
        if (now === undefined || protectionProblem(egroup, now, 2, new Set()) !== undefined) return false;
        return now.replicas.every((r) => existsSync(replicaFile(cluster, r.node, egroup)));
      },
      300,
    );
  }, 90_000);

  it('resumes the persisted scan under a new master after the master is killed mid-scan, mapping only the tasks not done', async () => {
    // Three curators again (the victim was started again).
    await threeCurators(cluster, bus);
    const { master } = await idle();
    const startedMs = Date.now();
    const scanning = scan(true);
    scanning.catch(() => undefined);
    const during = await runningWhen('two map tasks of the full scan done', (r) => r.kind === 'full' && (r.tasksDone ?? 0) >= 2);
    const scanId = during.running!.id!;
    const doneBefore = during.running!.tasksDone!;
    expect(doneBefore).toBeLessThan(8);
    killAll([(await curatorPid(cluster, master))!]);

    const after = await waitFor(
      `scan ${scanId} completed by a new master`,
      45_000,
      async () => {
        const s = await status().catch(() => undefined);
        return s !== undefined && s.master !== master && s.progress.lastScan?.id === scanId ? s : false;
      },
      300,
    );
    // The operator's `strata curator scan --full` did not wait out its timeout for the dead master: it said what happened.
    await expect(scanning).rejects.toThrow(new RegExp(`curator master ${master} \\(epoch \\d+\\) went away before it answered; ${after.master} is the master now \\(epoch \\d+\\): it resumes the scan from its record`));
    const last = after.progress.lastScan!;
    expect(last).toMatchObject({ kind: 'full', tasks: 8 });
    // The tasks done before the kill were not mapped again (a task may have ended between the status and the kill).
    expect(last.resumed).toBeGreaterThanOrEqual(doneBefore);
    expect(last.resumed).toBeLessThan(8);

    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    const resumed = events.filter((ev) => ev.type === EventType.curatorScanResumed && ev.atMs >= startedMs);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]).toMatchObject({ name: master, message: expect.stringContaining(`scan ${scanId} (full) of ${master} resumed: ${last.resumed} of 8 map tasks found done, ${8 - last.resumed!} mapped again`) });
  }, 120_000);

  it('maps only the entries changed since the last scan in a partial scan', async () => {
    await idle();
    // One partial scan settles what changed during the last cases (copies); the next reads only the new writes.
    expect((await scan(false)).kind).toBe('partial');
    await qemuIo(`nbd://127.0.0.1:${cluster.nbdPort}/data`, ['write -P 4 16M 4M'], 30_000);
    await waitForDrained(cluster.natsUrl, id, 30_000);
    const summary = await scan(false);
    expect(summary.kind).toBe('partial');
    // What changed: the md-egroup entries with a revision past the scan's starting point.
    const nc = await connectClient(cluster.natsUrl);
    let changed = 0;
    try {
      const kv = await new Kvm(nc).open(buckets.mdEgroup);
      for await (const key of await kv.keys()) {
        const e = await kv.get(key);
        if (e !== null && e.operation === 'PUT' && e.revision > summary.sinceRevision!) changed++;
      }
    } finally {
      await nc.close();
    }
    expect(changed).toBeGreaterThan(0);
    expect(summary.entries).toBe(changed);
    expect(summary.entries).toBeLessThan(summary.egroups);
  }, 60_000);

  it('backs up the task of a hung slave on an idle curator, and the scan completes', async () => {
    await threeCurators(cluster, bus);
    const { master } = await idle();
    const startedMs = Date.now();
    const scanning = scan(true);
    scanning.catch(() => undefined);
    // Near the scan's end, so that the other slave is soon idle and backs the task up (before its 4 s deadline).
    const during = await runningWhen('a slave mapping one of the last tasks of the full scan', (r) => r.kind === 'full' && (r.tasksDone ?? 0) >= 6 && (r.workers ?? []).some((w) => w.node !== master && w.mapping > 0));
    const hung = during.running!.workers!.find((w) => w.node !== master && w.mapping > 0)!.node;
    const pid = (await curatorPid(cluster, hung))!;
    process.kill(pid, 'SIGSTOP');
    try {
      const summary = await scanning;
      expect(summary).toMatchObject({ kind: 'full', tasks: 8, entries: summary.egroups });
      const nc = await connectClient(cluster.natsUrl);
      const events = await readEvents(nc).finally(() => nc.close());
      const backups = events.filter((ev) => ev.type === EventType.curatorScanTaskReassigned && ev.atMs >= startedMs && ev.name === hung);
      expect(backups.map((ev) => ev.reason)).toContain(`no answer from ${hung} after 2500 ms`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    cluster.passed = true;
  }, 60_000);
});
