// HA's wait list end to end (PROTOCOL.md section 12, "Restart and wait lists"): a
// protected process VM on host n1 writes its counter to a vDisk of an RF 1 container,
// whose drained data therefore lives on n1's disk only. Every process of n1 is killed;
// `strata up` brings them back after 15 s (its supervisor's restart delay; the VM is on
// the wait list once its 4 s power-on lease has expired, about 5 s after the kill). It proves
// that the VM goes to the wait list with the reason (its extent group has no replica
// on a live node), is not powered on anywhere while its vDisk cannot be served, and
// is restarted once node n1 is alive again (the accessibility change), with its
// counter continuing; a monitor sees at most one instance of it throughout.
import { EventType, type ClusterEvent } from '@strata/proto';
import { ConfigClient, UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { HA_TEST_ENV, VmMonitor, consoleMark, counters, countersPast, createVm, hostProcesses, killAll, restartedPast, strata, vdiskRows } from '../harness/ha';

const clusters = new UpClusters('ha-wait');

describe('the wait list', () => {
  let cluster: UpCluster;
  let monitor: VmMonitor;
  beforeAll(async () => {
    // Drain starts at 64 KiB undrained: the workload writes steadily (never idle for the
    // default drainIdleMs) and slowly, so the default 8 MiB would take minutes.
    cluster = await clusters.start({ env: { ...HA_TEST_ENV, STRATA_RESTART_DELAY_MS: '15000', STRATA_DRAIN_START_BYTES: '65536' } });
    monitor = await new VmMonitor().start(cluster.natsUrl);
  }, 120_000);
  afterAll(async () => {
    await monitor?.stop();
    await clusters.stopAll();
  }, 60_000);

  it('a protected VM whose vDisk has no replica on a live node waits, with the reason, and restarts when the node is back, not before', async () => {
    await strata(cluster, ['container', 'create', 'solo', '--rf', '1']);
    await createVm(cluster, 'w1', 'n1', { driver: 'process', protected: true, memory: '128M', container: 'solo' });
    await strata(cluster, ['vm', 'start', 'w1']);
    await countersPast(cluster, 'w1', 0, 3, 30_000);
    const client = await ConfigClient.connect(cluster.natsUrl);
    const vdiskId = await client.get({ kind: 'vdisk', name: 'w1' }).then((v) => v.id).finally(() => client.close());
    // Its data must be drained to n1's disk, or there would be nothing only n1 holds.
    await waitFor('vdisk w1 to have drained data', 60_000, async () => (await vdiskRows(cluster.natsUrl, vdiskId)) > 0, 500);

    const mark = consoleMark(cluster.dir, 'w1');
    const victims = await hostProcesses(cluster.up.pid(), 'n1');
    const killedAt = Date.now();
    killAll(victims.keys());
    // Read once the instance is dead: it printed on until the kill landed.
    const before = Math.max(...counters(cluster.dir, 'w1').printed);

    const status = await waitFor('vm w1 on the wait list', 20_000, async () => {
      const s = await strata(cluster, ['ha', 'status']);
      return /^wait list:\n {2}w1 \(medium\) wait-access: vdisk w1: extent group \d+ has no replica on a live node \(its replicas are on n1\)/m.test(s) ? s : false;
    }, 500);
    expect(status).toMatch(/^restart list: empty$/m);
    expect(await strata(cluster, ['vm', 'ls'])).toMatch(/^w1 +n1 +waiting +yes .*no replica on a live node/m);

    const restartedInstance = await restartedPast(cluster, 'w1', mark, 2, 90_000);
    // The master publishes ha.vm.restarted once the power-on's reply is in, which may come after the VM's first counters.
    const isAlive = (e: ClusterEvent): boolean => (e.type === EventType.nodeAlive || e.type === EventType.nodeRestarted) && e.name === 'n1' && e.atMs > killedAt;
    const isRestarted = (e: ClusterEvent): boolean => e.type === EventType.haVmRestarted && e.name === 'w1';
    const nc = await connectClient(cluster.natsUrl);
    const events = await waitFor('the events of n1 alive again and of w1 restarted', 20_000, async () => {
      const all = await readEvents(nc);
      return all.some(isAlive) && all.some(isRestarted) ? all : false;
    }, 500).finally(() => nc.close());
    const alive = events.find(isAlive)!;
    const waiting = events.find((e) => e.type === EventType.haVmWaiting && e.name === 'w1');
    const restarted = events.find(isRestarted)!;
    console.log(`after the kill: w1 waiting at +${waiting === undefined ? '?' : waiting.atMs - killedAt} ms, n1 alive at +${alive.atMs - killedAt} ms, w1 restarted at +${restarted.atMs - killedAt} ms`);
    expect(waiting!.atMs).toBeLessThan(alive.atMs);
    expect(restarted.atMs).toBeGreaterThan(alive.atMs);
    // Not one instance between the kill and the node's return.
    const after = monitor.instances('w1').filter((i) => i.lastMs > killedAt + 500);
    expect(after).toHaveLength(1);
    expect(after[0]!.firstMs).toBeGreaterThan(alive.atMs);
    expect(restartedInstance.counter).toBeGreaterThanOrEqual(before);
    expect(restartedInstance.counter).toBeLessThanOrEqual(before + 1);
    expect(await strata(cluster, ['vm', 'why', 'w1'])).toMatch(/ha\.vm\.waiting +vm w1 waits on the wait list: vdisk w1: extent group \d+ has no replica on a live node[\s\S]*ha\.vm\.restarted +vm w1 restarted/);
    expect(monitor.doubles).toEqual([]);
    expect(monitor.leaseViolations()).toEqual([]);
    cluster.passed = true;
  }, 240_000);
});
