// The I/O path end to end, with real NBD clients against a real local cluster
// started by `strata up` in its default layout (an embedded nats-server, a config
// replica, and per node one node-host process running a metadata shard, an extent
// store, a vdisk-controller, admission, an io-director and a gateway) and its default
// security (TLS on every NATS connection, a NATS user per process with its role's
// permissions, the CLI as admin). It proves that:
//  - qemu-io's patterns written at scattered offsets (unaligned, across block and row
//    boundaries, the last byte) read back, and never-written ranges read as zeros;
//  - one replica corrupted on disk: reads still return the right data, and the
//    bad replica is reported;
//  - nbdcopy copies 64 MiB of random data in and back out byte for byte;
//  - a served vDisk grows (`strata vdisk resize`): its data stays, a new connection
//    sees the new size and writes at the new end; shrinking and resizing a snapshot
//    are refused and change nothing;
//  - fio (nbd engine) random writes with crc32c verification verify on a full read;
//  - SIGTERM of everything and a restart on the same directory keeps all data;
//  - kill -9 of every process during writes, then a restart: every write qemu-io had
//    acknowledged before the kill reads back.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminSecurity } from '../../cli/src/local-auth';
import { ConfigClient, childPids, freePort, qemuIo, run, startNode, waitFor, waitForDrained, type ActorProcess } from '../harness';
import { seedUpAuth } from '../harness/suite-security';

const MiB = 2 ** 20;

interface Cluster {
  up: ActorProcess;
  nbd: string;
}

async function startCluster(dir: string, ports: { nats: number; nbd: number }, nodes = 2): Promise<Cluster> {
  // The suite's admin, so this process's clients (and the CLI) reach the cluster.
  seedUpAuth(dir);
  const up = startNode('cli/dist/main.js', ['--dir', dir, 'up', '--nodes', String(nodes), '--nbd-port', String(ports.nbd), '--nats-port', String(ports.nats), '--config-replicas', '1'], {
    name: 'strata up',
    env: { NATS_URL: '', STRATA_DRAIN_IDLE_MS: '200', STRATA_EGROUP_SIZE_BYTES: String(4 * MiB) },
  });
  await up.waitForOutput(/^ready$/m, 90_000);
  return { up, nbd: `nbd://127.0.0.1:${ports.nbd}` };
}

describe('the I/O path with real NBD clients', () => {
  let dir: string;
  let ports: { nats: number; nbd: number };
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-e2e-'));
    ports = { nats: await freePort(), nbd: await freePort() };
    cluster = await startCluster(dir, ports);
  });

  afterAll(async () => {
    await cluster?.up.stop(15_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads back qemu-io patterns at scattered offsets, and zeros where nothing was written', async () => {
    const demo = `${cluster!.nbd}/demo`;
    const last = 2 ** 30 - 1;
    const writes: Array<[number, number, number]> = [
      // [pattern, offset, length]
      [0x11, 0, 4096],
      [0x22, 1000, 3000], // unaligned, inside the first block
      [0x33, MiB - 512, 1024], // across a block boundary
      [0x44, 16 * MiB - 100, 200], // across a row boundary (16 blocks of 1 MiB)
      [0x55, 300 * MiB + 7, 65_536],
      [0x66, last, 1], // the last byte of the disk
    ];
    await qemuIo(
      demo,
      writes.map(([p, o, l]) => `write -P ${p} ${o} ${l}`),
    );
    await qemuIo(demo, [
      'read -P 0x11 0 1000',
      'read -P 0x22 1000 3000',
      'read -P 0x11 4000 96',
      'read -P 0x33 1048064 1024',
      'read -P 0x44 16777116 200',
      'read -P 0x55 314572807 65536',
      `read -P 0x66 ${last} 1`,
      // Never written: zeros.
      'read -P 0 8192 65536',
      `read -P 0 ${512 * MiB} 1048576`,
    ]);
  });

  it('returns the right data when the owner replica is corrupted on disk, and reports the bad replica', async () => {
    // The writes above drain within moments (drain runs after 200 ms idle). Wait for
    // the drain to finish: until it has written the vDisk map, reads are served from
    // the oplog index and never touch a replica.
    const natsUrl = readFileSync(join(dir, 'nats.url'), 'utf8').trim();
    // `strata up` runs with TLS and a user per process by default: look as its admin.
    const admin = adminSecurity(dir);
    expect(admin).toBeDefined();
    const client = await ConfigClient.connect(natsUrl, undefined, admin);
    let demoId: bigint;
    try {
      demoId = (await client.get({ kind: 'vdisk', name: 'demo' })).id;
    } finally {
      await client.close();
    }
    await waitForDrained(natsUrl, demoId, 30_000, admin);
    const egroupsDir = join(dir, 'disks', 'n1-d1', 'egroups');
    const files = readdirSync(egroupsDir).filter((f) => f.endsWith('.eg'));
    expect(files.length).toBeGreaterThan(0);
    // Flip the first byte of every extent group on n1, the owner, whose replica is read first.
    for (const f of files) {
      const path = join(egroupsDir, f);
      const data = readFileSync(path);
      data[0] = data[0]! ^ 0xff;
      writeFileSync(path, data);
    }
    await qemuIo(`${cluster!.nbd}/demo`, ['read -P 0x11 0 1000', 'read -P 0x22 1000 3000']);
    // Node 1's actors log to its node-host's file.
    await waitFor('the controller to report the bad replica', 10_000, () => /bad replica: checksum mismatch/.test(readFileSync(join(dir, 'logs', 'n1-node-host.log'), 'utf8')));
  });

  it('copies 64 MiB of random data in and out byte for byte with nbdcopy, on a vDisk created while running', async () => {
    const created = await run(process.execPath, ['cli/dist/main.js', '--dir', dir, 'vdisk', 'create', 'copy64', '--size', '64M'], { timeoutMs: 30_000 });
    expect(created.stdout + created.stderr).toMatch(/vdisk copy64 created/);
    const src = join(dir, 'random.img');
    const back = join(dir, 'back.img');
    writeFileSync(src, randomBytes(64 * MiB));
    const uri = `${cluster!.nbd}/copy64`;
    const copyIn = await run('nbdcopy', [src, uri], { timeoutMs: 180_000 });
    expect(copyIn.stderr).toBe('');
    expect(copyIn.code).toBe(0);
    const copyOut = await run('nbdcopy', [uri, back], { timeoutMs: 180_000 });
    expect(copyOut.code).toBe(0);
    const digest = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
    expect(digest(back)).toBe(digest(src));
  });

  it('grows a vDisk while it is served: the old data stays, a new connection sees and writes the new end; shrinking and resizing a snapshot are refused', async () => {
    const cli = (args: string[]) => run(process.execPath, ['cli/dist/main.js', '--dir', dir, ...args], { timeoutMs: 30_000 });
    expect((await cli(['vdisk', 'create', 'grow', '--size', '8M'])).code).toBe(0);
    const uri = `${cluster!.nbd}/grow`;
    // Served (opened by its owner) before the resize, so its controller knows the old size.
    await qemuIo(uri, ['write -P 0x61 0 1M', 'write -P 0x62 7M 1M']);
    const grown = await cli(['vdisk', 'resize', 'grow', '--size', '16M']);
    expect({ code: grown.code, out: grown.stdout.trim() }).toEqual({ code: 0, out: 'vdisk grow resized from 8 MiB to 16 MiB; a client sees the new size when it reconnects (qemu: block_resize)' });
    const size = await run('nbdinfo', ['--size', uri], { timeoutMs: 30_000 });
    expect(size.stdout.trim()).toBe(String(16 * MiB));
    await qemuIo(uri, ['write -P 0x63 15M 1M', 'read -P 0x61 0 1M', 'read -P 0x62 7M 1M', 'read -P 0x63 15M 1M', 'read -P 0 8M 7M']);
    // Refused, and nothing changed.
    const shrink = await cli(['vdisk', 'resize', 'grow', '--size', '4M']);
    expect({ code: shrink.code, err: shrink.stderr.trim() }).toEqual({ code: 2, err: 'strata: vdisk resize: --size: 4 MiB is smaller than vdisk grow (16 MiB); a vDisk only grows (shrinking would discard the data past the new end)' });
    expect((await cli(['vdisk', 'snapshot', 'grow', 'grow-snap'])).code).toBe(0);
    const snap = await cli(['vdisk', 'resize', 'grow-snap', '--size', '32M']);
    expect({ code: snap.code, err: snap.stderr.trim() }).toEqual({ code: 2, err: "strata: vdisk resize: vdisk grow-snap is a snapshot: its size is its source's at the cut (clone it, then resize the clone)" });
    expect((await run('nbdinfo', ['--size', uri], { timeoutMs: 30_000 })).stdout.trim()).toBe(String(16 * MiB));
    const same = await cli(['vdisk', 'resize', 'grow', '--size', '16M']);
    expect(same.stdout.trim()).toBe('vdisk grow is already 16 MiB; nothing changed');
    await qemuIo(uri, ['read -P 0x63 15M 1M']);
  });

  it('passes a fio random-write workload with crc32c verification, then a full verifying read', async () => {
    const common = ['--ioengine=nbd', `--uri=${cluster!.nbd}/demo`, '--name=verify', '--bs=4k', '--size=8m', '--offset=512m', '--verify=crc32c', '--randrepeat=1', '--randseed=7'];
    const write = await run('fio', [...common, '--rw=randwrite', '--iodepth=16', '--do_verify=0', '--verify_state_save=0'], { timeoutMs: 300_000 });
    expect(write.code).toBe(0);
    const read = await run('fio', [...common, '--rw=randread', '--iodepth=16', '--verify_only', '--verify_state_load=0'], { timeoutMs: 300_000 });
    expect(read.stdout + read.stderr).not.toMatch(/verify: bad|verify failed|err=\s*[1-9]/i);
    expect(read.stdout).toMatch(/err= 0/);
    expect(read.code).toBe(0);
  });

  it('keeps every byte across SIGTERM of everything and a restart on the same directory', async () => {
    const demo = `${cluster!.nbd}/demo`;
    await qemuIo(demo, ['write -P 0x77 700m 2m']);
    await cluster!.up.stop(20_000);
    cluster = await startCluster(dir, ports);
    await qemuIo(`${cluster.nbd}/demo`, ['read -P 0x77 700m 2m', 'read -P 0x11 0 1000', `read -P 0x66 ${2 ** 30 - 1} 1`]);
  });

  it('keeps every acknowledged write when every process is killed -9 during writes', async () => {
    const demo = `${cluster!.nbd}/demo`;
    // Writes acknowledged one by one; each write's success is printed by qemu-io.
    const writer = startNode('test/e2e/fixtures/ack-writer.js', [demo, '400'], { name: 'ack-writer' });
    await writer.waitForOutput(/acked 40\n/, 60_000);
    const upPid = cluster!.up.pid();
    const pids = await childPids(upPid);
    // The nats-server, the config replica and the two nodes' node-hosts.
    expect(pids.length).toBeGreaterThanOrEqual(4);
    for (const pid of [upPid, ...pids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await cluster!.up.exited();
    await writer.exited();
    const acked = [...writer.output().matchAll(/acked (\d+)\n/g)].map((m) => Number(m[1]));
    const nats = (await run('pgrep', ['-f', `${dir}/nats`], { timeoutMs: 5_000 })).stdout.trim();
    for (const pid of nats.split('\n').filter((l) => /^\d+$/.test(l))) process.kill(Number(pid), 'SIGKILL');
    await waitFor('the old processes to be gone', 10_000, async () => (await run('pgrep', ['-f', dir], { timeoutMs: 5_000 })).stdout.trim() === '');
    cluster = await startCluster(dir, ports);
    const highest = Math.max(...acked);
    expect(highest).toBeGreaterThanOrEqual(40);
    const reads = [];
    for (let i = 1; i <= highest; i++) reads.push(`read -P ${i % 250} ${900 * MiB + i * 4096} 4096`);
    await qemuIo(`${cluster.nbd}/demo`, reads, 120_000);
  });
});
