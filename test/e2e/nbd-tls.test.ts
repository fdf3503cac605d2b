// NBD over TLS with real clients, on one cluster started a role at a time (as
// node-run.test.ts does): a harness nats-server, `strata config run`, `strata shard
// run`, and node n1 with `--nbd-tls-dir` pointing at the nbd-server/ directory that
// `strata auth init --nbd-address` wrote (its HA agent gets nbd-client/ beside it).
// It proves that:
//  - qemu-io (tls-creds-x509, endpoint=client) writes and reads back a pattern, and
//    libnbd's nbdinfo and nbdcopy (nbds://...?tls-certificates=) read and write the
//    same export: what one client wrote, the other reads;
//  - a plain client is refused with a clear error (the gateway's FORCEDTLS reply) and
//    the export is unchanged;
//  - a client without a certificate, or with one from another CA, is refused, and the
//    gateway logs why;
//  - a QEMU guest and a process VM started by n1's HA agent reach their disks over TLS
//    (the agent's --nbd-tls-client-dir: QEMU's tls-creds-x509) and count;
//  - a node whose gateway would listen beyond loopback without TLS refuses to start,
//    naming --nbd-tls-dir and --nbd-insecure, and registers nothing; with
//    --nbd-insecure it starts and serves plain NBD.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { counters } from '../harness/ha';
import { childPids, commandLine, freePortRun, killIfUnchanged, qemuIo, run, startNode, startTopology, waitFor, type ActorProcess, type NatsTopology } from '../harness';

const TIMINGS = { STRATA_HEARTBEAT_INTERVAL_MS: '500', STRATA_FENCE_TIMEOUT_MS: '2000', STRATA_DEAD_TIMEOUT_MS: '3000' };
const CLI = 'cli/dist/main.js';
const MiB = 1024 * 1024;

let topology: NatsTopology;
let dir: string;
let nbdPort: number;
let env: Record<string, string>;
/** nbd-client/ of the cluster's CA: what every client here connects with. */
let clientDir: string;
const runs: ActorProcess[] = [];
/** Every process a run started (PID -> command line), killed after the tests if still there. */
const started = new Map<number, string>();
let passed = 0;

async function startRun(args: string[], ready: RegExp): Promise<ActorProcess> {
  const p = startNode(CLI, ['--dir', dir, ...args], { name: `strata ${args.slice(0, 2).join(' ')}`, env });
  runs.push(p);
  await p.waitForOutput(ready, 60_000);
  for (const pid of await childPids(p.pid())) started.set(pid, commandLine(pid) ?? '');
  return p;
}

const strata = (args: string[], timeoutMs = 30_000): ReturnType<typeof run> => run(process.execPath, [CLI, '--dir', dir, ...args], { env, timeoutMs });
const uri = (port = nbdPort): string => `nbd://127.0.0.1:${port}/vol`;
const nbds = (certificates: string): string => `nbds://127.0.0.1:${nbdPort}/vol?tls-certificates=${certificates}`;
/** What n1's gateway logged (its node-host's log). */
const gatewayLog = (): string => readFileSync(join(dir, 'logs', 'n1-node-host.log'), 'utf8');

describe('NBD over TLS', () => {
  beforeAll(async () => {
    topology = await startTopology('single');
    dir = mkdtempSync(join(tmpdir(), 'strata-nbd-tls-'));
    nbdPort = await freePortRun(2);
    env = { NATS_URL: topology.url, STRATA_NATS_MONITOR_URL: topology.monitorUrls, ...TIMINGS };
    for (const d of ['n1-d1', 'n2-d1']) mkdirSync(join(dir, 'disks', d), { recursive: true });
    // The cluster's certificates, and another CA's (a stranger's client certificate).
    for (const out of ['auth', 'other']) {
      const init = await strata(['auth', 'init', '--out', join(dir, out), '--nodes', 'n1', '--nbd-address', '127.0.0.1']);
      expect({ code: init.code, stderr: init.stderr }).toEqual({ code: 0, stderr: '' });
    }
    expect(readdirSync(join(dir, 'auth', 'nbd-server')).sort()).toEqual(['ca-cert.pem', 'server-cert.pem', 'server-key.pem']);
    clientDir = join(dir, 'auth', 'nbd-client');
    expect(readdirSync(clientDir).sort()).toEqual(['ca-cert.pem', 'client-cert.pem', 'client-key.pem']);
    await startRun(['config', 'run', '--replica', 'config-1'], /^ready: config replica config-1$/m);
    await startRun(['shard', 'run', '--shard', 'md-1'], /^ready: metadata shard md-1$/m);
    await startRun(['node', 'run', '--node', 'n1', '--disk', `${join(dir, 'disks', 'n1-d1')}:4G`, '--nbd-port', String(nbdPort), '--nbd-tls-dir', join(dir, 'auth', 'nbd-server'), '--host-cpus', '2', '--host-memory', '1G'], /^ready: node n1$/m);
    expect((await strata(['container', 'create', 'c1', '--rf', '1'])).code).toBe(0);
    expect((await strata(['vdisk', 'create', 'vol', '--size', '64M', '--container', 'c1'])).code).toBe(0);
  }, 90_000);

  afterAll(async () => {
    for (const p of runs.reverse()) await p.stop(15_000);
    const leftovers = killIfUnchanged(started);
    if (leftovers.length > 0) console.warn(`killed ${leftovers.length} processes left by strata ... run: ${leftovers.join(' ')}`);
    await topology?.stop();
    if (passed === 5) rmSync(dir, { recursive: true, force: true });
    else console.warn(`nbd-tls: the failed test's data and logs are kept in ${dir}`);
  }, 60_000);

  test('qemu-io over TLS and libnbd (nbds://) write and read the same export', async () => {
    await qemuIo(uri(), ['write -P 0x5a 0 1M', 'read -P 0x5a 0 1M'], 30_000, false, clientDir);
    const info = await run('nbdinfo', [nbds(clientDir)], { timeoutMs: 20_000 });
    expect({ code: info.code, stderr: info.stderr }).toEqual({ code: 0, stderr: '' });
    expect(info.stdout).toMatch(/^protocol: newstyle-fixed with TLS/m);
    expect(info.stdout).toMatch(/export-size: 67108864 \(64M\)/);
    // What qemu-io wrote, nbdcopy reads; what nbdcopy writes, qemu-io reads.
    const copy = join(dir, 'vol.bin');
    expect(await run('nbdcopy', [nbds(clientDir), copy], { timeoutMs: 30_000 })).toMatchObject({ code: 0 });
    const bytes = readFileSync(copy);
    expect({ size: bytes.length, patterned: bytes.subarray(0, MiB).every((b) => b === 0x5a), zeroAfter: bytes.subarray(MiB, 2 * MiB).every((b) => b === 0) }).toEqual({ size: 64 * MiB, patterned: true, zeroAfter: true });
    writeFileSync(copy, Buffer.alloc(MiB, 0xc3));
    expect(await run('nbdcopy', [copy, nbds(clientDir)], { timeoutMs: 30_000 })).toMatchObject({ code: 0 });
    await qemuIo(uri(), ['read -P 0xc3 0 1M', 'read -P 0 1M 1M'], 30_000, false, clientDir);
    passed++;
  }, 60_000);

  test('a plain client is refused with a clear error, and the export is unchanged', async () => {
    const plain = await run('qemu-io', ['-f', 'raw', uri(), '-c', 'write -P 0x11 0 64k'], { timeoutMs: 20_000 });
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/TLS negotiation required before option 7 \(go\)/);
    expect(plain.stderr).toMatch(/server reported: this server requires TLS: send NBD_OPT_STARTTLS first/);
    expect(plain.stdout).not.toMatch(/wrote/);
    expect((await run('nbdinfo', [uri()], { timeoutMs: 20_000 })).code).not.toBe(0);
    await qemuIo(uri(), ['read -P 0xc3 0 1M'], 30_000, false, clientDir);
    passed++;
  }, 60_000);

  test('a client without a certificate, or with one from another CA, is refused', async () => {
    // Both trust the gateway (our ca-cert.pem); one has no certificate, one a stranger's.
    const none = join(dir, 'no-cert');
    const stranger = join(dir, 'stranger');
    for (const d of [none, stranger]) {
      mkdirSync(d);
      copyFileSync(join(clientDir, 'ca-cert.pem'), join(d, 'ca-cert.pem'));
    }
    for (const f of ['client-cert.pem', 'client-key.pem']) copyFileSync(join(dir, 'other', 'nbd-client', f), join(stranger, f));
    for (const certificates of [none, stranger]) {
      const refused = await run('nbdinfo', [nbds(certificates)], { timeoutMs: 20_000 });
      expect({ code: refused.code, stdout: refused.stdout }).toEqual({ code: 1, stdout: '' });
    }
    await waitFor('the gateway to log both refusals', 10_000, () => {
      const log = gatewayLog();
      return log.includes('client refused: it sent no certificate') && /client refused: its certificate \(strata nbd client\) does not verify against the gateway's CA/.test(log);
    });
    await qemuIo(uri(), ['read -P 0xc3 0 1M'], 30_000, false, clientDir);
    passed++;
  }, 60_000);

  test("a QEMU guest and a process VM started by the node's HA agent reach their disks over TLS", async () => {
    // The agent passes QEMU -object tls-creds-x509 (endpoint=client) and the workload --nbd-tls-dir: nbd-client/ beside --nbd-tls-dir.
    for (const [vm, driver, memory] of [['q1', 'qemu', '256M'], ['web', 'process', '64M']] as const) {
      expect((await strata(['vdisk', 'create', vm, '--size', '64M', '--container', 'c1'])).code).toBe(0);
      expect((await strata(['vm', 'create', vm, '--host', 'n1', '--cpus', '1', '--memory', memory, '--vdisk', vm, '--driver', driver])).code).toBe(0);
      expect((await strata(['vm', 'start', vm])).code).toBe(0);
    }
    for (const vm of ['q1', 'web']) await waitFor(`vm ${vm} to count past 2`, 30_000, () => counters(dir, vm).printed.some((c) => c >= 2));
    // The guest's QEMU, a child of n1's HA agent, names the client certificates.
    const agent = [...started].find(([, c]) => /ha-agent\/dist\/main\.js --host n1\b/.test(c))?.[0];
    const children = agent === undefined ? [] : (await childPids(agent)).map((pid) => commandLine(pid) ?? '');
    expect(children.filter((c) => c.includes('qemu-system')).map((c) => /tls-creds-x509,id=nbd-tls,endpoint=client,dir=(\S+)/.exec(c)?.[1])).toEqual([clientDir]);
    for (const vm of ['q1', 'web']) expect((await strata(['vm', 'stop', vm])).code).toBe(0);
    passed++;
  }, 90_000);

  test('a gateway beyond loopback without TLS refuses to start unless --nbd-insecure, which serves plain NBD', async () => {
    const node2 = ['node', 'run', '--node', 'n2', '--disk', `${join(dir, 'disks', 'n2-d1')}:4G`, '--nbd-host', '0.0.0.0', '--nbd-port', String(nbdPort + 1), '--host-cpus', '2', '--host-memory', '1G'];
    const refused = await strata(node2, 20_000);
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({
      code: 2,
      stderr: 'strata: node run: --nbd-host 0.0.0.0: plain NBD has no authentication: a gateway listening beyond loopback needs --nbd-tls-dir DIR (TLS with client certificates), or --nbd-insecure to serve plain NBD anyway\n',
    });
    const nodes = await strata(['node', 'ls']);
    expect(nodes.stdout.split('\n').filter((l) => /^n\d /.test(l)).map((l) => l.split(/\s+/)[0])).toEqual(['n1']);
    await startRun([...node2, '--nbd-insecure'], /^ready: node n2$/m);
    await qemuIo(uri(nbdPort + 1), ['read -P 0xc3 0 1M']);
    passed++;
  }, 90_000);
});
