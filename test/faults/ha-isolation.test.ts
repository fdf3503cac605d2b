// An isolated host (PROTOCOL.md section 12, "Isolation"): a fourth host, h4, whose
// agent reaches NATS only through a TCP proxy of the test (its VMs use node n1's
// gateway), runs a protected process VM. The proxy is cut: every connection dropped,
// new ones refused, so the agent hears no other agent and cannot reach the ha bucket.
// It proves that the agent declares itself isolated and powers the VM off before the
// VM's power-on lease can expire (measured against the last renewal a watch of the
// lease saw), and that the master restarts the VM on another host only after that,
// never two instances at once, its counter continuing.
import { join } from 'node:path';
import { ConfigClient, UpClusters, startNode, waitFor, type ActorProcess, type UpCluster } from '../harness';
import { HA_TEST_ENV, TcpProxy, VmMonitor, counters, countersPast, createVm, strata } from '../harness/ha';

const clusters = new UpClusters('ha-isolation');
const LEASE_TTL_MS = 4_000;

describe('an isolated host', () => {
  let cluster: UpCluster;
  let monitor: VmMonitor;
  let agent: ActorProcess | undefined;
  beforeAll(async () => {
    cluster = await clusters.start({ env: HA_TEST_ENV });
    monitor = await new VmMonitor().start(cluster.natsUrl);
  }, 120_000);
  afterAll(async () => {
    await agent?.stop();
    await monitor?.stop();
    await clusters.stopAll();
  }, 60_000);

  it('powers its VMs off before their leases expire; they run elsewhere afterwards, never twice', async () => {
    const client = await ConfigClient.connect(cluster.natsUrl);
    try {
      const n1 = await client.get({ kind: 'node', name: 'n1' });
      await client.create({ kind: 'host', name: 'h4', spec: { node: n1.id, cpuCount: 2, memoryBytes: 2 ** 30 } });
    } finally {
      await client.close();
    }
    const [host, port] = cluster.natsUrl.replace('nats://', '').split(':');
    const proxy = await new TcpProxy({ host: host!, port: Number(port) }).start();
    agent = startNode('services/ha-agent/dist/main.js', ['--host', 'h4', '--nbd-port', String(cluster.nbdPort), '--run-dir', join(cluster.dir, 'ha', 'h4')], {
      name: 'h4-ha-agent',
      env: { ...HA_TEST_ENV, NATS_URL: `nats://127.0.0.1:${proxy.port}` },
    });
    await waitFor('host h4 alive', 30_000, async () => /^h4 +n1 +alive /m.test(await strata(cluster, ['host', 'ls'])), 500);
    await createVm(cluster, 'i1', 'h4', { driver: 'process', protected: true, memory: '128M' });
    expect(await strata(cluster, ['vm', 'start', 'i1'])).toMatch(/^vm i1 running on h4 /);
    await countersPast(cluster, 'i1', 0, 3, 30_000);
    const isolatedInstance = monitor.instances('i1').at(-1)!;

    const before = Math.max(...counters(cluster.dir, 'i1').printed);
    const cutAt = Date.now();
    await proxy.cut();
    const elsewhere = await waitFor('vm i1 to come up on another host', 30_000, () => counters(cluster.dir, 'i1').readies.find((r) => r.host !== 'h4'), 200);
    await countersPast(cluster, 'i1', elsewhere.counter, 2, 30_000);
    console.log(`h4 agent ${agent.child.exitCode === null && agent.child.signalCode === null ? 'still running' : `exited (${agent.child.exitCode ?? agent.child.signalCode})`}; its last lines:\n${agent.output().trim().split('\n').slice(-8).join('\n')}`);

    const lastRenewal = monitor.leases.filter((c) => c.holder === 'h4' && c.atMs <= cutAt).at(-1)!;
    const offAt = monitor.instances('i1').find((i) => i.pid === isolatedInstance.pid)!.lastMs;
    console.log(`cut at +0; last renewal seen at ${lastRenewal.atMs - cutAt} ms; VM last seen on h4 at +${offAt - cutAt} ms; lease could expire at +${lastRenewal.atMs + LEASE_TTL_MS - cutAt} ms`);
    expect(offAt).toBeLessThan(lastRenewal.atMs + LEASE_TTL_MS);
    const next = monitor.instances('i1').filter((i) => i.pid !== isolatedInstance.pid);
    expect(next).toHaveLength(1);
    expect(next[0]!.firstMs).toBeGreaterThan(offAt);
    expect(elsewhere.counter).toBeGreaterThanOrEqual(before);
    expect(agent.output()).toMatch(/host isolated: it hears no other agent and cannot reach the ha bucket; powering its VMs off/);
    expect(monitor.doubles).toEqual([]);
    expect(monitor.leaseViolations()).toEqual([]);
    cluster.passed = true;
  }, 180_000);
});
