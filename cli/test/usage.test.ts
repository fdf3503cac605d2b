// What the CLI answers before it talks to any cluster, proved by running its entry
// point (run() of cli/src/main.ts) with captured output: every usage mistake is one
// line on stderr naming the command and the argument or flag, exit 2; --help prints
// help on stdout, exit 0; container options that nothing honours are refused, exit 2;
// and with no cluster to be found or reached, one line naming where it looked or the
// URL, exit 1. NATS_URL points at a closed port throughout, so a command that got past
// its checks would fail with exit 1 and "cannot reach": the exit 2 cases prove the
// checks come first.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/main';

/** A loopback port with nothing listening (taken from the OS, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

let cwd: string;
let deadUrl: string;

beforeAll(async () => {
  cwd = mkdtempSync(join(tmpdir(), 'strata-usage-'));
  deadUrl = `nats://127.0.0.1:${await closedPort()}`;
});

afterAll(() => {
  rmSync(cwd, { recursive: true, force: true });
});

async function strata(args: string[], env: Record<string, string | undefined> = { NATS_URL: deadUrl }): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, { out: (s) => (stdout += s), err: (s) => (stderr += s), env, cwd, checkout: undefined });
  return { code, stdout, stderr };
}

describe('usage errors: one line naming the command and the argument or flag, exit 2', () => {
  it.each([
    ['vdisk create', 'strata: vdisk create: missing NAME'],
    ['vdisk create x', 'strata: vdisk create: missing --size'],
    ['vdisk create x --size', 'strata: vdisk create: --size: missing value'],
    ['vdisk create x --size 10X', 'strata: vdisk create: --size: "10X" is not a size (examples: 512, 4K, 512M, 10G, 1T)'],
    ['vdisk create x --size 1000', 'strata: vdisk create: --size: "1000" must be a positive multiple of 512 bytes'],
    ['vdisk create x --size 1G --block-size 3K', 'strata: vdisk create: --block-size: "3K" must be a power of two from 4 KiB to 1 MiB'],
    ['vdisk create Demo --size 1G', 'strata: vdisk create: NAME: "Demo" must be 1-63 characters: lowercase letters, digits, "-" or "_", starting with a letter or digit'],
    ['vdisk create x --size 1G --priority urgent', 'strata: vdisk create: --priority: "urgent" is not one of high, normal, low'],
    ['vdisk create x --size 1G --weight 0', 'strata: vdisk create: --weight: "0" must be between 1 and 1000'],
    ['vdisk create x --size 1G --iops-cap 100 --reserved-iops 200', 'strata: vdisk create: --reserved-iops "200": must not exceed iopsCap (a reservation above the cap could never be met)'],
    ['vdisk create x --size 1G --burst-ms 500', 'strata: vdisk create: --burst-ms "500": applies to caps: set iopsCap or bandwidthCapBytesPerSec too'],
    ['vdisk create a b --size 1G', 'strata: vdisk create: unexpected argument "b" (it takes NAME)'],
    ['vdisk qos x --iops-cap ten', 'strata: vdisk qos: --iops-cap: "ten" is not a whole number'],
    ['vdisk owner', 'strata: vdisk owner: missing NAME'],
    ['vdisk snapshot a', 'strata: vdisk snapshot: missing SNAPSHOT'],
    ['vdisk clone s', 'strata: vdisk clone: missing NAME'],
    ['vdisk crate x', 'strata: vdisk: unknown command "crate" (commands: create, ls, snapshot, clone, snapshots, qos, resize, owner, rm, sweep)'],
    ['vdisk', 'strata: vdisk: missing command (create, ls, snapshot, clone, snapshots, qos, resize, owner, rm, sweep); "strata vdisk --help" says more'],
    ['', 'strata: missing command (up, auth, status, events, node, disk, container, vdisk, host, vm, ha, curator, config, shard, console); "strata --help" says more'],
    ['console --port abc', 'strata: console: --port: "abc" is not a whole number'],
    ['console --port 70000', 'strata: console: --port: 70000 is not a port'],
    ['console --tracing ftp://x', 'strata: console: --tracing: "ftp://x" is not an http(s) URL'],
    ['node add', 'strata: node add: missing NAME'],
    ['disk add d1', 'strata: disk add: missing --node'],
    ['disk add d1 --node n1 --path /srv/d1', 'strata: disk add: missing --capacity'],
    ['disk add d1 --node n1 --path /srv/d1 --capacity 0', 'strata: disk add: --capacity: "0" must be greater than 0'],
    ['disk add d1 --node n1 --path /srv/d1 --capacity 1G --tier tape', 'strata: disk add: --tier: "tape" is not one of ssd, hdd, cloud'],
    ['container create', 'strata: container create: missing NAME'],
    ['container create gold --rf 0', 'strata: container create: --rf: "0" must be between 1 and 5'],
    ['container create gold --rf three', 'strata: container create: --rf: "three" is not a whole number'],
    ['container create gold --tier-order ssd,tape', 'strata: container create: --tier-order: "tape" is not one of ssd, hdd, cloud'],
    ['container create gold --tier-order ssd,ssd', 'strata: container create: --tier-order: "ssd,ssd" must not name a tier twice'],
    ['status --verbose', 'strata: status: unknown option --verbose'],
    ['events --limit 0', 'strata: events: --limit: "0" must be at least 1'],
    ['events --type owner.stolen', 'strata: events: --type: "owner.stolen" is not one of created, updated, deleted, node.dead, node.alive, node.restarted, leader.elected, owner.changed, ha.master.elected, ha.host.failed, ha.host.isolated, ha.vm.started, ha.vm.stopped, ha.vm.listed, ha.vm.waiting, ha.vm.restarted, ha.vm.restart-failed, ha.vm.gave-up, ha.vm.not-restarted, ha.vm.powered-off, ha.vm.set-for-master, curator.master.elected, curator.scan.done, curator.scan.started, curator.scan.resumed, curator.scan.task.reassigned, curator.replica.copied, curator.garbage.deleted, curator.drain.done, curator.rebalance.move, curator.tier.move, curator.rebalance.done, curator.scrub.damaged, curator.scrub.done, space.warning, space.full, space.ok, vdisk.swept, vdisk.snapshot.created, vdisk.clone.created, egroup.reclaimed'],
    ['up --nbd-port x', 'strata: up: --nbd-port: "x" is not a whole number'],
    ['up --separate --colocate', 'strata: up: --separate and --colocate ask for different layouts; pass one'],
    ['vm create', 'strata: vm create: missing NAME'],
    ['vm create web --cpus 1 --memory 256M --vdisk db', 'strata: vm create: missing --host'],
    ['vm create web --host n1 --memory 256M --vdisk db', 'strata: vm create: missing --cpus'],
    ['vm create web --host n1 --cpus 0 --memory 256M --vdisk db', 'strata: vm create: --cpus: "0" must be at least 1'],
    ['vm create web --host n1 --cpus 1 --memory lots --vdisk db', 'strata: vm create: --memory: "lots" is not a size (examples: 512, 4K, 512M, 10G, 1T)'],
    ['vm create web --host n1 --cpus 1 --memory 256M', 'strata: vm create: missing --vdisk'],
    ['vm create web --host n1 --cpus 1 --memory 256M --vdisk db,db', 'strata: vm create: --vdisk: "db,db" names a vDisk twice'],
    ['vm create web --host n1 --cpus 1 --memory 256M --vdisk db --driver kvm', 'strata: vm create: --driver: "kvm" is not one of process, qemu'],
    ['vm create web --host n1 --cpus 1 --memory 256M --vdisk db --restart-priority urgent', 'strata: vm create: --restart-priority: "urgent" is not one of high, medium, low'],
    ['vm start', 'strata: vm start: missing NAME'],
    ['vm why', 'strata: vm why: missing NAME'],
    ['vm reboot web', 'strata: vm: unknown command "reboot" (commands: create, ls, start, stop, rm, why)'],
    ['ha', 'strata: ha: missing command (status); "strata ha --help" says more'],
    ['host add n1', 'strata: host: unknown command "add" (commands: ls, rm)'],
    ['host rm', 'strata: host rm: missing NAME'],
    ['host rm n1 --forse', 'strata: host rm: unknown option --forse (did you mean --force?)'],
    ['curator', 'strata: curator: missing command (status, scan, scrub); "strata curator --help" says more'],
    ['curator scan --fast', 'strata: curator scan: unknown option --fast'],
    ['curator scan full', 'strata: curator scan: unexpected argument "full" (it takes none)'],
    ['curator rebuild', 'strata: curator: unknown command "rebuild" (commands: status, scan, scrub)'],
    ['up --host-cpus 0', 'strata: up: --host-cpus: "0" must be at least 1'],
    ['node run --disk /srv/d1:10G', 'strata: node run: missing --node (e.g. --node n2)'],
    ['node run --node n2 --bogus', 'strata: node run: unknown option --bogus'],
    ['node run --node N2', 'strata: node run: --node: "N2" must be 1-63 characters: lowercase letters, digits, "-" or "_", starting with a letter or digit'],
    ['node run --node n2 --disk /srv/d1', 'strata: node run: --disk: "/srv/d1" is not PATH:CAPACITY[:TIER] (e.g. /srv/strata/d1:100G:ssd)'],
    ['node run --node n2 --disk /srv/d1:10G:nvme', 'strata: node run: --disk: "/srv/d1:10G:nvme": "nvme" is not a capacity nor the path\'s end; the form is PATH:CAPACITY[:TIER] (e.g. /srv/strata/d1:100G:ssd), TIER one of ssd, hdd, cloud'],
    ['node run --node n2 --disk /srv/d1:0', 'strata: node run: --disk: "/srv/d1:0": the capacity must be more than 0'],
    ['node run --node n2 --disk /srv/d1:10G --disk /srv/d1:20G', 'strata: node run: --disk: /srv/d1 is given twice'],
    ['node run --node n2 --nbd-port 70000', 'strata: node run: --nbd-port: "70000" is not a port'],
    ['node run --node n2 --metrics-port 65535', 'strata: node run: --metrics-port: "65535" leaves no room for 3 ports'],
    ['node run --node n2 --connect-timeout 0', 'strata: node run: --connect-timeout: "0" must be at least 1'],
    ['config run', 'strata: config run: missing --replica (e.g. --replica config-1)'],
    ['config', 'strata: config: missing command (run); "strata config --help" says more'],
    ['shard run', 'strata: shard run: missing --shard (e.g. --shard md-4)'],
    ['shard run --shard md-4 --metrics-port x', 'strata: shard run: --metrics-port: "x" is not a whole number'],
    ['auth init --out /nonexistent/x --nodes n1,n1', 'strata: auth init: the name n1 is given twice'],
  ])('strata %s', async (line, message) => {
    expect(await strata(line === '' ? [] : line.split(' '))).toEqual({ code: 2, stdout: '', stderr: `${message}\n` });
  });
});

describe('options for what is not built', () => {
  it.each([
    ['--dedup inline', '--dedup is not built yet; containers store data without dedup'],
    ['--dedup post-process', '--dedup is not built yet; containers store data without dedup'],
    ['--compression inline', '--compression is not built yet; containers store data uncompressed'],
    ['--pool fast', "--pool is not built yet; a container's extent groups go to the disks of every node, whatever their pool"],
    ['--max-capacity 10G', '--max-capacity is not built yet; nothing limits how much data a container holds'],
    ['--reserved-capacity 10G', '--reserved-capacity is not built yet; no capacity is set aside for a container'],
  ])('container create gold %s is refused, exit 2', async (option, message) => {
    expect(await strata(['container', 'create', 'gold', ...option.split(' ')])).toEqual({ code: 2, stdout: '', stderr: `strata: container create: ${message}\n` });
  });

  it('accepts --dedup off and --compression off, which say what happens anyway (and then needs the cluster)', async () => {
    const result = await strata(['container', 'create', 'gold', '--dedup', 'off', '--compression', 'off']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^strata: cannot reach the cluster at /);
  });

  it('does not advertise them in the help', async () => {
    const help = await strata(['container', 'create', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--rf <n>');
    expect(help.stdout).not.toMatch(/dedup|compression|--pool|capacity/);
  });
});

describe('help', () => {
  it.each([['--help'], ['vdisk --help'], ['vdisk create --help'], ['help vdisk']])('strata %s prints help on stdout, exit 0', async (line) => {
    const result = await strata(line.split(' '));
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^Usage: strata/);
  });
});

describe('no cluster: one line, exit 1, never a silent default', () => {
  it('names the URL that could not be reached and where it came from', async () => {
    expect(await strata(['status'])).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(new RegExp(`^strata: cannot reach the cluster at ${deadUrl} \\(from NATS_URL\\): connection refused.*; check NATS_URL\\n$`)) as unknown });
  });

  it.each([['status'], ['events'], ['vdisk', 'ls'], ['vdisk', 'owner', 'demo']])('strata %s with no cluster anywhere says where it looked', async (...args) => {
    const result = await strata(args, {});
    expect(result).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(/^strata: no cluster found: no \.strata\/nats\.url in .* or any parent, and NATS_URL is not set; start one with "npm run up" \(in the checkout\), or set NATS_URL to its NATS servers\n$/) as unknown });
  });

  it('strata --dir DIR (or STRATA_DIR) means that data directory only', async () => {
    const named = await strata(['--dir', 'nowhere', 'status'], {});
    expect(named).toEqual({ code: 1, stdout: '', stderr: `strata: no cluster in ${join(cwd, 'nowhere')}: ${join(cwd, 'nowhere', 'nats.url')} does not exist; start one with "npm run up" (in the checkout), or set NATS_URL to its NATS servers\n` });
    expect(await strata(['status'], { STRATA_DIR: 'nowhere' })).toEqual(named);
  });
});
