// A cluster started one role at a time, as hosts join one: a harness nats-server,
// then `strata config run`, `strata shard run` and two `strata node run` processes,
// each a command of its own (no `strata up`). Liveness timings are shortened
// (heartbeat 500 ms, fence 2 s, dead 3 s). It proves that:
//  - the two nodes register themselves, their disks and hosts, and serve: a vDisk
//    written and read by a real NBD client (qemu-io) through node 2's gateway, which
//    listens where --nbd-host says (127.0.0.2); node 1's processes serve metrics on
//    the ports --metrics-port gives them;
//  - a third node run that names node 1's disk directory is refused (CONFLICT, exit 1)
//    and registers nothing;
//  - SIGTERM to node 2's run stops it (exit 0) and every process it started (by PID),
//    node 2 is then marked dead, and its vDisk fails over: node 1 takes it over
//    (epoch + 1) and the data written through node 2 reads back through node 1;
//  - the same node run again registers nothing anew: node 2 is alive again and the
//    data reads back through its gateway;
//  - bad input (an unknown flag, a bad --disk, NATS that does not answer, no config
//    replica yet) is one line and an exit code, within a bound.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigClient, childPids, commandLine, createdId, freePort, freePortRun, killIfUnchanged, qemuIo, readOwnership, run, sleep, startNode, startTopology, waitFor, type ActorProcess, type NatsTopology } from '../harness';

const TIMINGS = { STRATA_HEARTBEAT_INTERVAL_MS: '500', STRATA_FENCE_TIMEOUT_MS: '2000', STRATA_DEAD_TIMEOUT_MS: '3000', STRATA_TAKEOVER_STEP_TIMEOUT_MS: '3000' };
const CLI = 'cli/dist/main.js';

let topology: NatsTopology;
let dir: string;
let nbdPort: number;
let metricsPort: number;
let env: Record<string, string>;
const runs: ActorProcess[] = [];
/** Every process a run started (PID -> command line), killed after the tests if still there. */
const started = new Map<number, string>();
let passed = false;

/** Starts `strata --dir DIR <args>` and waits for its `ready` line; remembers the processes it started. */
async function startRun(args: string[], ready: RegExp): Promise<ActorProcess> {
  const p = startNode(CLI, ['--dir', dir, ...args], { name: `strata ${args.slice(0, 2).join(' ')}`, env });
  runs.push(p);
  await p.waitForOutput(ready, 60_000);
  for (const pid of await childPids(p.pid())) started.set(pid, commandLine(pid) ?? '');
  return p;
}

const strata = (args: string[], timeoutMs = 30_000): ReturnType<typeof run> => run(process.execPath, [CLI, '--dir', dir, ...args], { env, timeoutMs });

/** Node 2's gateway listens on 127.0.0.2 (--nbd-host), node 1's on loopback's default. */
const uri = (node: number): string => `nbd://127.0.0.${node}:${nbdPort + node - 1}/vol`;

// Inside a describe, so that its afterAll stops the runs before the harness's own (after-file.ts) kills leftovers.
describe('one role at a time', () => {
  beforeAll(async () => {
    topology = await startTopology('single');
    dir = mkdtempSync(join(tmpdir(), 'strata-node-run-'));
    nbdPort = await freePortRun(2);
    metricsPort = await freePortRun(3);
    env = { NATS_URL: topology.url, STRATA_NATS_MONITOR_URL: topology.monitorUrls, ...TIMINGS };
    for (const d of ['n1-d1', 'n2-d1']) mkdirSync(join(dir, 'disks', d), { recursive: true });
  }, 30_000);

  afterAll(async () => {
    for (const p of runs.reverse()) await p.stop(15_000);
    const leftovers = killIfUnchanged(started);
    if (leftovers.length > 0) console.warn(`killed ${leftovers.length} processes left by strata ... run: ${leftovers.join(' ')}`);
    await topology.stop();
    if (passed) rmSync(dir, { recursive: true, force: true });
    else console.warn(`node-run: the failed test's data and logs are kept in ${dir}`);
  }, 60_000);

  test('config run, shard run and two node runs make a cluster that serves a vDisk; SIGTERM to a node run stops its processes and its vDisk fails over; the same run again rejoins', async () => {
    // Before any config replica runs, a node run gives up within its bound, registering nothing.
    const early = await strata(['node', 'run', '--node', 'n9', '--connect-timeout', '2'], 20_000);
    expect({ code: early.code, stderr: early.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/^strata: UNAVAILABLE: connected to the cluster at \S+, but no config replica answers .+\n$/) as unknown });

    await startRun(['config', 'run', '--replica', 'config-1'], /^ready: config replica config-1$/m);
    await startRun(['shard', 'run', '--shard', 'md-1'], /^ready: metadata shard md-1$/m);
    const node = (k: number): string[] => ['node', 'run', '--node', `n${k}`, '--disk', `${join(dir, 'disks', `n${k}-d1`)}:4G`, '--nbd-port', String(nbdPort + k - 1), '--host-cpus', '2', '--host-memory', '1G'];
    const n1 = await startRun([...node(1), '--metrics-port', String(metricsPort)], /^ready: node n1$/m);
    const n2 = await startRun([...node(2), '--nbd-host', '127.0.0.2'], /^ready: node n2$/m);
    // Node 1's processes serve their metrics on consecutive ports, in start order.
    const services = await Promise.all([0, 1, 2].map(async (i) => /service="([^"]+)"/.exec(await (await fetch(`http://127.0.0.1:${metricsPort + i}/metrics`)).text())?.[1]));
    expect(services).toEqual(['node-host', 'ha-agent', 'curator']);
    expect(n2.output()).toMatch(new RegExp(`^disk n2-d1 registered: ${join(dir, 'disks', 'n2-d1')}, 4 GiB, ssd$`, 'm'));
    expect(n2.output()).toMatch(/^host n2 registered: 2 CPUs and 1 GiB of memory for VMs$/m);

    // A third node naming node 1's directory: refused, nothing registered. Started like
    // the others, so that if it ran anyway, what it started is stopped by PID.
    const clash = startNode(CLI, ['--dir', dir, 'node', 'run', '--node', 'n3', '--disk', `${join(dir, 'disks', 'n1-d1')}:4G`, '--nbd-port', String(await freePort())], { name: 'strata node run n3', env });
    runs.push(clash);
    const clashCode = await Promise.race([clash.exited(), sleep(30_000).then(() => 'still running after 30 s')]);
    if (clash.child.exitCode === null) for (const pid of await childPids(clash.pid())) started.set(pid, commandLine(pid) ?? '');
    expect({ code: clashCode, output: clash.output() }).toEqual({
      code: 1,
      output: expect.stringMatching(/^strata: CONFLICT: disk path \S+n1-d1 is registered to node n1 \(disk n1-d1, same address \S+\); give node n3 a directory of its own\n$/) as unknown,
    });
    const nodes = await strata(['node', 'ls']);
    expect(nodes.stdout.split('\n').filter((l) => /^n\d /.test(l)).map((l) => l.split(/\s+/).slice(0, 3).join(' ')).map((l) => l.replace(/ \d+ /, ' ID ')).sort()).toEqual(['n1 ID alive', 'n2 ID alive']);
    expect((await strata(['disk', 'ls'])).stdout.split('\n').filter((l) => /^n\d-d/.test(l)).map((l) => l.split(/\s+/)[0])).toEqual(['n1-d1', 'n2-d1']);

    expect((await strata(['container', 'create', 'c2', '--rf', '2'])).code).toBe(0);
    const created = await strata(['vdisk', 'create', 'vol', '--size', '64M', '--container', 'c2']);
    expect(created.code).toBe(0);
    const vol = createdId(created.stdout);
    await qemuIo(uri(2), ['write -P 0x5a 0 1M', 'write -P 0xc3 32M 64k', 'read -P 0x5a 0 1M', 'read -P 0xc3 32M 64k']);
    const before = await readOwnership(topology.url, vol);
    expect(before?.owner).toBe('n2');

    // SIGTERM to node 2's run: it exits 0, and so does every process it started.
    const n2Children = await childPids(n2.pid());
    expect(n2Children.map((pid) => commandLine(pid) ?? '').map((c) => /(node-host|ha-agent|curator)\/dist\/main\.js --(node|host) n2/.exec(c)?.[1]).sort()).toEqual(['curator', 'ha-agent', 'node-host']);
    n2.signal('SIGTERM');
    expect(await Promise.race([n2.exited(), new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000))])).toBe(0);
    expect(n2Children.filter((pid) => commandLine(pid) !== undefined)).toEqual([]);
    expect(n2.output()).toMatch(/^stopping node n2 \(SIGTERM\)\nstopped$/m);

    // Node 2 is marked dead, and its vDisk moves to node 1 when node 1's gateway is used.
    const client = await ConfigClient.connect(topology.url);
    try {
      await waitFor('n2 to be marked dead', 20_000, async () => (await client.list('node')).find((n) => n.name === 'n2')?.status.liveness === 'dead');
    } finally {
      await client.close();
    }
    await qemuIo(uri(1), ['read -P 0x5a 0 1M', 'read -P 0xc3 32M 64k']);
    const after = await readOwnership(topology.url, vol);
    expect({ owner: after?.owner, epoch: after?.epoch }).toEqual({ owner: 'n1', epoch: (before?.epoch ?? 0) + 1 });
    expect(n1.child.exitCode).toBeNull();

    // The same command line again: node 2 rejoins, registering nothing anew, and serves the vDisk.
    const again = await startRun([...node(2), '--nbd-host', '127.0.0.2'], /^ready: node n2$/m);
    expect(again.output()).not.toMatch(/registered|changed/);
    const back = await ConfigClient.connect(topology.url);
    try {
      await waitFor('n2 to be alive again', 20_000, async () => (await back.list('node')).find((n) => n.name === 'n2')?.status.liveness === 'alive');
      expect((await back.list('disk')).map((d) => d.name).sort()).toEqual(['n1-d1', 'n2-d1']);
    } finally {
      await back.close();
    }
    await qemuIo(uri(2), ['read -P 0x5a 0 1M', 'read -P 0xc3 32M 64k']);
    passed = true;
  }, 150_000);

  test('bad input: one line and exit 2 for an unknown flag or a bad --disk; exit 1 within the bound when NATS does not answer', async () => {
    const unknown = await strata(['node', 'run', '--node', 'n5', '--disks', '/srv:1G']);
    expect({ code: unknown.code, stderr: unknown.stderr }).toEqual({ code: 2, stderr: 'strata: node run: unknown option --disks (did you mean --disk?)\n' });
    const disk = await strata(['node', 'run', '--node', 'n5', '--disk', '/srv/d1:big']);
    expect({ code: disk.code, stderr: disk.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(/^strata: node run: --disk: "\/srv\/d1:big": "big" is not a capacity/) as unknown });
    const closed = await freePort();
    const startedAt = Date.now();
    const dead = await strata(['shard', 'run', '--shard', 'md-9', '--nats', `nats://127.0.0.1:${closed}`, '--connect-timeout', '2'], 20_000);
    expect({ code: dead.code, stderr: dead.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(new RegExp(`^strata: cannot reach NATS with JetStream at nats://127.0.0.1:${closed} within 2 s: .+\\n$`)) as unknown });
    expect(Date.now() - startedAt).toBeLessThan(10_000);
  }, 60_000);
});
