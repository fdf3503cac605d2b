// Three hosts on one machine, each a network namespace (test/harness/netns.ts), each
// running what a real host of infra/DEPLOY.md runs: its own nats-server (one NATS
// cluster over the three), a config replica (`strata config run`) and its storage
// node with a metadata shard (`strata node run --shard md-K`), every process started
// inside the host. Liveness timings are shortened (heartbeat 500 ms, fence 2 s,
// dead 3 s). The bus is secured as DEPLOY.md does it: `strata auth init` makes the
// CA, the servers' certificate (valid for the hosts' addresses) and a user per config
// replica and node with its role's permissions; the servers take TLS (on routes too)
// and those users only; each process runs with its user's env file, and this test
// process and its CLI as admin.
//
// Placement: the config replicas and metadata shards keep their state in JetStream
// (R3 over the three servers) and hold their roles by leases there, so one of each on
// every host leaves two of three servers (a JetStream majority) and a replica and a
// shard to take over the leases when any one host is cut. The container has RF 2, so
// every extent group still has a replica on a host that stays up.
//
// The client: qemu-io runs in this machine's namespace and reaches the hosts over the
// bridge, over TLS: each gateway listens on its host's address, which is beyond
// loopback, so it serves NBD over TLS only (`--nbd-tls-dir`, certificates from
// `strata auth init --nbd-address`) and qemu-io connects with the client
// certificates. Its gateway is on host h2, which stays up: a client whose gateway is on the
// cut host cannot be served (neither it nor its gateway reaches the cluster), as a VM
// on a cut host cannot. The vDisk is shared, so that it stays owned by node n1 (which
// opened it first) while h2's gateway forwards its I/O there; an unshared vDisk would
// move to n2 at the first I/O through n2's gateway (its VM moved).
//
// It proves that:
//  - the three hosts form one cluster that serves a vDisk over NBD across hosts;
//  - every link of h1 cut (silently: a real partition) while the writer runs: n1 is
//    marked dead, its vDisk fails over to another node (owner changes, epoch grows),
//    I/O resumes (writes issued after the failover are acknowledged; the longest pause
//    between acknowledgements is printed), and every acknowledged write reads back;
//  - the links restored: n1 is alive again in the config, h1's nats-server routes to
//    both others again, and h1's gateway serves every acknowledged write.
// MULTIHOST_TEST_CUT=off makes the cut a no-op, where the test must fail (no failover);
// MULTIHOST_KEEP=1 keeps the hosts' data and logs after a passing run too.
// Needs root (the namespaces), as test/integration/netns-hosts.test.ts does; about 45 s.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientSecurityFromEnv, waitForJetStream, type NatsServerProcess } from '@strata/natsd';
import { HOST_NATS_PORTS, TestHosts, isRunning, planHostNatsServers } from '../harness/netns';
import { AckedWriter, ConfigClient, createdId, longestAckGap, qemuIo, readBackAcked, readOwnership, repoRoot, run, waitFor, type ActorProcess } from '../harness';
import { isConnectionError, isUnavailable } from '../harness/verify';

const TIMINGS = { STRATA_HEARTBEAT_INTERVAL_MS: '500', STRATA_FENCE_TIMEOUT_MS: '2000', STRATA_DEAD_TIMEOUT_MS: '3000', STRATA_TAKEOVER_STEP_TIMEOUT_MS: '3000' };
const CLI = join(repoRoot, 'cli', 'dist', 'main.js');
const NBD_PORT = 10809;
const HOSTS = ['h1', 'h2', 'h3'] as const;
const cutIsReal = process.env.MULTIHOST_TEST_CUT !== 'off';

let hosts: TestHosts;
let servers: NatsServerProcess[];
let dir: string;
/** The servers of h2 and h3, which are never cut: what this test process uses. */
let survivorsUrl: string;
/** The NBD client certificates (strata auth init's nbd-client/). */
let tlsClientDir: string;
/** What `strata auth init` wrote: certificates, users.conf, an env file per user. */
let authDir: string;
let passed = false;

const addr = (h: string): string => hosts.host(h).address;
const natsUrl = (h: string): string => `nats://${addr(h)}:${HOST_NATS_PORTS.client}`;
const nbdUri = (h: string): string => `nbd://${addr(h)}:${NBD_PORT}/vol`;
const nodeOf = (h: string): string => `n${h.slice(1)}`;

/** The environment of host `h`'s Strata processes: its own server first (DEPLOY.md, step 3). */
function hostEnv(h: string): Record<string, string> {
  const servers = [h, ...HOSTS.filter((o) => o !== h)].map(natsUrl).join(',');
  return { NATS_URL: servers, STRATA_NATS_MONITOR_URL: `http://${addr(h)}:${HOST_NATS_PORTS.monitor}`, ...TIMINGS };
}

/** The variables of `strata auth init`'s env file of `user` (what its systemd unit reads, DEPLOY.md). */
function userEnv(user: string): Record<string, string> {
  const lines = readFileSync(join(authDir, `${user}.env`), 'utf8').split('\n').filter((l) => l.includes('='));
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Starts `strata --dir <dir>/<h> <args>` in host `h`, as NATS user `user`, and waits for its ready line. */
async function startInHost(h: string, user: string, args: string[], ready: RegExp): Promise<ActorProcess> {
  const p = hosts.spawn(h, process.execPath, [CLI, '--dir', join(dir, h), ...args], { name: `${h}: strata ${args.slice(0, 3).join(' ')}`, env: { ...hostEnv(h), ...userEnv(user) } });
  await p.waitForOutput(ready, 60_000);
  return p;
}

/** The CLI from this machine, against the servers that are never cut. */
async function strata(args: string[]): Promise<string> {
  const r = await run(process.execPath, [CLI, '--dir', join(dir, 'cli'), ...args], { env: { NATS_URL: survivorsUrl, STRATA_NATS_MONITOR_URL: '' }, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`strata ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The addresses host `h`'s nats-server routes to now. */
async function routesOf(h: string): Promise<string[]> {
  const res = await fetch(`http://${addr(h)}:${HOST_NATS_PORTS.monitor}/routez`, { signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as { routes?: Array<{ ip: string }> };
  return [...new Set((body.routes ?? []).map((r) => r.ip))].sort();
}

/** A node's liveness as the config leader has it, read through the servers that stay up. */
async function livenessOf(node: string): Promise<string | undefined> {
  const client = await ConfigClient.connect(survivorsUrl);
  try {
    return (await client.list('node')).find((n) => n.name === node)?.status.liveness;
  } finally {
    await client.close();
  }
}

const retryable = (err: unknown): boolean => isUnavailable(err) || isConnectionError(err);

describe('three hosts in network namespaces', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-multihost-'));
    hosts = TestHosts.create(3);
    // DEPLOY.md's credentials: a user per config replica and node, the servers' and the
    // gateways' certificates valid for the three hosts' addresses.
    authDir = join(dir, 'auth');
    const init = await run(
      process.execPath,
      [CLI, 'auth', 'init', '--out', authDir, '--nodes', HOSTS.map((h) => `${nodeOf(h)}:md-${h.slice(1)}`).join(','), '--config', HOSTS.map((h) => `config-${h.slice(1)}`).join(','), '--server-names', HOSTS.map(addr).join(','), '--nbd-address', HOSTS.map(addr).join(',')],
      { timeoutMs: 30_000 },
    );
    if (init.code !== 0) throw new Error(`strata auth init: exit ${init.code}: ${init.stderr}`);
    tlsClientDir = join(authDir, 'nbd-client');
    // This test process (and the CLI it runs) is the operator: admin.
    Object.assign(process.env, userEnv('admin'));
    const admin = clientSecurityFromEnv(process.env);
    const tls = { caFile: join(authDir, 'ca.pem'), certFile: join(authDir, 'server.pem'), keyFile: join(authDir, 'server-key.pem') };
    servers = planHostNatsServers(hosts, join(dir, 'nats'), { tls, authorization: readFileSync(join(authDir, 'users.conf'), 'utf8'), probe: admin });
    survivorsUrl = ['h2', 'h3'].map(natsUrl).join(',');
    await Promise.all(servers.map((s) => s.start()));
    await waitForJetStream(servers.map((s) => s.url).join(','), 30_000, admin);
    for (const h of HOSTS) mkdirSync(join(dir, h, 'disks', 'd1'), { recursive: true });
    await Promise.all(HOSTS.map((h) => startInHost(h, `config-${h.slice(1)}`, ['config', 'run', '--replica', `config-${h.slice(1)}`], /^ready: config replica/m)));
    await Promise.all(
      HOSTS.map((h) => {
        const node = nodeOf(h);
        const args = ['node', 'run', '--node', node, '--address', addr(h), '--disk', `${join(dir, h, 'disks', 'd1')}:4G`, '--shard', `md-${h.slice(1)}`, '--nbd-host', addr(h), '--nbd-port', String(NBD_PORT), '--nbd-tls-dir', join(dir, 'auth', 'nbd-server'), '--host-cpus', '2', '--host-memory', '1G'];
        return startInHost(h, node, args, new RegExp(`^ready: node ${node}$`, 'm'));
      }),
    );
  }, 90_000);

  afterAll(async () => {
    const namespaces = hosts?.hosts.map((h) => h.ns) ?? [];
    const pids = hosts?.hosts.flatMap((h) => hosts.pids(h.name)) ?? [];
    // Stops the strata runs (SIGTERM: each stops its processes), then kills by PID
    // whatever still runs in the hosts (the nats-servers), and removes the hosts.
    await hosts?.destroy();
    await Promise.all(servers?.map((s) => s.stop()) ?? []);
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(namespaces.filter((ns) => left.includes(ns))).toEqual([]);
    // Every process that ran in the hosts is gone (a zombie not yet reaped by its parent counts as gone).
    const deadline = Date.now() + 10_000;
    while (pids.some(isRunning) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(pids.filter(isRunning)).toEqual([]);
    if (passed && process.env.MULTIHOST_KEEP !== "1") rmSync(dir, { recursive: true, force: true });
    else if (dir !== undefined) console.warn(`multihost: the failed test's data and logs are kept in ${dir}`);
  }, 60_000);

  test("h1's links cut under a verifying writer: its vDisk fails over, I/O resumes, nothing acknowledged is lost; restored, h1 rejoins and serves", async () => {
    // Every process of a host runs in its namespace: h1's node-host is among h1's PIDs.
    const inH1 = hosts.pids('h1').map((pid) => execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).trim());
    expect(inH1.some((c) => /node-host\/dist\/main\.js --node n1\b/.test(c))).toBe(true);
    const listed = (await strata(['node', 'ls'])).split('\n').flatMap((l) => /^(n\d)\s+\d+\s+(\S+)/.exec(l)?.slice(1, 3).join(' ') ?? []);
    expect(listed.sort()).toEqual(['n1 alive', 'n2 alive', 'n3 alive']);

    await strata(['container', 'create', 'c2', '--rf', '2']);
    const vol = createdId(await strata(['vdisk', 'create', 'vol', '--size', '64M', '--container', 'c2', '--shared']));
    // n1 opens it first and so owns it; then n2's gateway serves it, forwarding to n1.
    await qemuIo(nbdUri('h1'), ['write -P 0x5a 0 64k', 'read -P 0x5a 0 64k'], 60_000, false, tlsClientDir);
    const writer = new AckedWriter({ uri: nbdUri('h2'), tlsClientDir, base: 1 << 20, strideBytes: 64 << 10, blockBytes: 64 << 10, perRound: 8, blocks: 800, verifyPrevious: true, attemptTimeoutMs: 40_000, deadlineMs: 120_000 }).start();
    try {
      await writer.waitForAcked(24, 30_000);
      const before = await readOwnership(survivorsUrl, vol);
      expect({ owner: before?.owner, volunteers: [...(before?.volunteers ?? [])].sort() }).toEqual({ owner: 'n1', volunteers: ['n1', 'n2'] });
      const leader = (await ConfigClient.connect(survivorsUrl).then((c) => c.status().finally(() => c.close()))).leader;

      const cutAt = Date.now();
      if (cutIsReal) hosts.cut('h1');
      await waitFor('n1 to be marked dead', 30_000, async () => ((await livenessOf('n1')) === 'dead' ? true : false), { intervalMs: 250, retryIf: retryable });
      const after = await waitFor('the vDisk to move off n1', 30_000, async () => {
        const own = await readOwnership(survivorsUrl, vol);
        return own !== undefined && own.owner !== 'n1' ? own : false;
      }, { intervalMs: 250, retryIf: retryable });
      // To the next live volunteer, n2, whose gateway opened it; another live node only
      // when the move's event says why n2 was passed over (not alive when chosen, or
      // not answering while it took over).
      expect(after.epoch).toBeGreaterThan(before!.epoch);
      // The record names the target as the takeover starts; one passed over (it did not
      // answer) is followed by another at the next epoch. The move is done when the
      // record's current epoch has its owner.changed event.
      const { own: done, event: moved } = await waitFor('the move to be in the events', 30_000, async () => {
        const own = await readOwnership(survivorsUrl, vol);
        const events = JSON.parse(await strata(['--json', 'events', '--vdisk', 'vol', '--type', 'owner.changed'])) as Array<{ owner?: string; ownerEpoch?: number; message?: string }>;
        const event = events.find((e) => e.ownerEpoch === own?.epoch);
        return own !== undefined && event !== undefined ? { own, event } : false;
      }, { intervalMs: 500, retryIf: () => true });
      expect(moved.owner).toBe(done.owner);
      if (done.owner !== 'n2') expect({ owner: done.owner, message: moved.message }).toEqual({ owner: 'n3', message: expect.stringMatching(/volunteer n2 (dead|unknown)|after n2 could not/) });
      const movedAt = Date.now();
      // I/O resumes: writes issued after the move are acknowledged.
      await writer.waitForAckedSince(movedAt, 24, 30_000);
      await writer.stop();
      const pauseMs = longestAckGap(writer.acked, cutAt);
      console.log(
        `multihost: config leader before the cut ${leader}; n1 marked dead and its vDisk on ${done.owner} (epoch ${before!.epoch} -> ${done.epoch}) ${movedAt - cutAt} ms after the cut; ` +
          `longest pause between acknowledged writes ${pauseMs} ms; ${writer.acked.length} writes acknowledged, ${writer.failures.length} failed rounds`,
      );
      // Nothing acknowledged is lost: all of it reads back through h2's gateway.
      await readBackAcked(nbdUri('h2'), writer.acked, tlsClientDir);
      await qemuIo(nbdUri('h2'), ['read -P 0x5a 0 64k'], 60_000, false, tlsClientDir);
    } finally {
      await writer.stop();
    }

    // Restored: h1's server routes again, n1 is alive again, and h1's gateway serves the data.
    hosts.restore('h1');
    const restoredAt = Date.now();
    await waitFor("h1's nats-server to route to h2 and h3 again", 30_000, async () => JSON.stringify(await routesOf('h1')) === JSON.stringify([addr('h2'), addr('h3')].sort()), { intervalMs: 250, retryIf: () => true });
    await waitFor('n1 to be alive again', 30_000, async () => ((await livenessOf('n1')) === 'alive' ? true : false), { intervalMs: 250, retryIf: retryable });
    console.log(`multihost: h1 routed again and n1 alive again ${Date.now() - restoredAt} ms after the links were restored`);
    await readBackAcked(nbdUri('h1'), writer.acked, tlsClientDir);
    await qemuIo(nbdUri('h1'), ['read -P 0x5a 0 64k'], 60_000, false, tlsClientDir);
    passed = true;
  }, 180_000);
});
