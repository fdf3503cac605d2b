// Proves the gateway's NBD server speaks NBD as real clients expect. The server runs
// in this process on a free loopback port over the in-memory backend ("alpha" 64 MiB
// with multi-conn, "beta" 8 MiB without), wrapped so that every backend call may be
// delayed a little at random: replies then leave out of order, as they will with the
// cluster behind. It is driven by clients this project did not write, each a child
// process with a timeout: nbdinfo (listing, sizes, flags), qemu-io (pattern writes
// and reads at aligned, unaligned, page-crossing and last-byte offsets, checked with
// -P, whose failure the test shows it would notice; discard and write-zeroes),
// nbdcopy (16 MiB of random bytes in and out, compared by hash; several connections
// only where multi-conn is offered) and fio (32 requests in flight, crc32c verify).
// Hand-built clients send what real ones never do (garbage, half handshakes, bad
// magics, reads past the end): each loses only its own connection, and a proper
// client is served right after.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryCatalog, NbdServer, type BlockDevice, type ExportCatalog, type ExportInfo, type NbdLogger } from '@strata/gateway';
import { freePort, run, waitFor } from '../harness';
import { NBD_CMD_READ, RawNbd } from './fixtures/gateway-raw-nbd';

const MiB = 1024 * 1024;
const ALPHA_BYTES = 64 * MiB;
const BETA_BYTES = 8 * MiB;
const EINVAL = 22;

/**
 * Delays about half of the backend calls by 0-2 ms, and counts "overtakes": calls that
 * finish while an earlier one is still running. The server writes each reply as its
 * call finishes, so an overtake is a reply sent out of order.
 */
class ShufflingCatalog implements ExportCatalog {
  overtakes = 0;
  readonly opens = new Map<string, number>();
  private sequence = 0;
  private readonly running = new Set<number>();

  constructor(private readonly inner: ExportCatalog) {}

  list(): Promise<ExportInfo[]> {
    return this.inner.list();
  }

  async open(name: string): Promise<BlockDevice | undefined> {
    const device = await this.inner.open(name);
    if (device === undefined) return undefined;
    this.opens.set(name, (this.opens.get(name) ?? 0) + 1);
    return {
      name: device.name,
      sizeBytes: device.sizeBytes,
      multiConn: device.multiConn,
      read: (offset, length) => this.shuffle(() => device.read(offset, length)),
      write: (offset, data, fua) => this.shuffle(() => device.write(offset, data, fua)),
      zero: (offset, length) => this.shuffle(() => device.zero(offset, length)),
      flush: () => this.shuffle(() => device.flush()),
    };
  }

  private async shuffle<T>(call: () => Promise<T>): Promise<T> {
    const id = this.sequence++;
    this.running.add(id);
    try {
      if (Math.random() < 0.5) await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 3)));
      return await call();
    } finally {
      this.running.delete(id);
      for (const other of this.running) {
        if (other < id) {
          this.overtakes++;
          break;
        }
      }
    }
  }
}

function recordingLogger(): NbdLogger & { lines: string[] } {
  const lines: string[] = [];
  const record = (level: string) => (obj: object, msg: string) => lines.push(`${level} ${msg} ${JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v instanceof Error ? v.message : v))}`);
  return { lines, debug: () => {}, info: record('info'), warn: record('warn'), error: record('error') };
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('gateway NBD server against real NBD clients', () => {
  let memory: MemoryCatalog;
  let catalog: ShufflingCatalog;
  let server: NbdServer;
  let log: ReturnType<typeof recordingLogger>;
  let port: number;
  let dir: string;
  const uri = (name = ''): string => `nbd://127.0.0.1:${port}/${name}`;

  /** Runs qemu-io on an export with one -c per command; returns its exit code and output. */
  async function qemuIo(name: string, commands: string[]): Promise<{ code: number | string; out: string }> {
    const result = await run('qemu-io', ['-f', 'raw', uri(name), ...commands.flatMap((c) => ['-c', c])], { timeoutMs: 30_000 });
    return { code: result.code, out: result.stdout + result.stderr };
  }

  /** qemu-io succeeded and every -P check matched. */
  async function qemuIoOk(name: string, commands: string[]): Promise<string> {
    const { code, out } = await qemuIo(name, commands);
    expect(out).not.toMatch(/Pattern verification failed|failed|error/i);
    expect(code).toBe(0);
    return out;
  }

  beforeAll(async () => {
    for (const tool of ['nbdinfo', 'qemu-io', 'nbdcopy', 'fio']) {
      const found = await run('sh', ['-c', `command -v ${tool}`], { timeoutMs: 5_000 });
      if (found.code !== 0) throw new Error(`${tool} is not installed: run infra/scripts/ensure-deps.sh (Debian packages qemu-utils, libnbd-bin, fio)`);
    }
    dir = mkdtempSync(join(tmpdir(), 'strata-gateway-e2e-'));
    memory = new MemoryCatalog([
      { name: 'alpha', sizeBytes: ALPHA_BYTES, multiConn: true },
      { name: 'beta', sizeBytes: BETA_BYTES, multiConn: false },
    ]);
    catalog = new ShufflingCatalog(memory);
    log = recordingLogger();
    server = new NbdServer({ catalog, log });
    port = await freePort();
    await server.listenTcp(port, '127.0.0.1');
  });

  afterAll(async () => {
    await server?.close(1_000);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    // An error-level line is a bug of ours, whatever the client did.
    expect(log.lines.filter((l) => l.startsWith('error'))).toEqual([]);
  });

  test('nbdinfo --list shows both exports with their sizes and flags', async () => {
    const result = await run('nbdinfo', ['--json', '--list', uri()], { timeoutMs: 30_000 });
    expect(result.code).toBe(0);
    const info = JSON.parse(result.stdout) as { protocol: string; exports: { 'export-name': string; 'export-size': number; can_multi_conn: boolean; can_trim: boolean; can_zero: boolean; can_flush: boolean; can_fua: boolean }[] };
    expect(info.protocol).toBe('newstyle-fixed');
    const byName = new Map(info.exports.map((e) => [e['export-name'], e]));
    expect([...byName.keys()].sort()).toEqual(['alpha', 'beta']);
    expect(byName.get('alpha')).toMatchObject({ 'export-size': ALPHA_BYTES, can_multi_conn: true, can_trim: true, can_zero: true, can_flush: true, can_fua: true });
    expect(byName.get('beta')).toMatchObject({ 'export-size': BETA_BYTES, can_multi_conn: false });
  });

  test('nbdinfo on one export: its size, block sizes and simple replies', async () => {
    const result = await run('nbdinfo', ['--json', uri('alpha')], { timeoutMs: 30_000 });
    expect(result.code).toBe(0);
    const info = JSON.parse(result.stdout) as { structured: boolean; exports: Record<string, unknown>[] };
    expect(info.structured).toBe(false);
    expect(info.exports[0]).toMatchObject({ 'export-name': 'alpha', 'export-size': ALPHA_BYTES, block_size_minimum: 1, block_size_preferred: 4096, block_size_maximum: 32 * MiB });

    const missing = await run('nbdinfo', [uri('nope')], { timeoutMs: 30_000 });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/nope/);
  });

  test('qemu-io: aligned, unaligned, 64 KiB-crossing and last-byte writes read back with their patterns', async () => {
    await qemuIoOk('alpha', [
      'write -P 0xab 4096 8192',
      'read -P 0xab 4096 8192',
      'read -P 0 0 4096',
      'read -P 0 12288 4096',
      // Unaligned, and across the backend's 64 KiB pages.
      'write -P 0x11 65531 11',
      'read -P 0 65530 1',
      'read -P 0x11 65531 11',
      'read -P 0 65542 1',
      'write -P 0x22 131000 300000',
      'read -P 0x22 131000 300000',
      // The last byte of the disk, and its neighbour untouched.
      `write -P 0x5a ${ALPHA_BYTES - 1} 1`,
      `read -P 0x5a ${ALPHA_BYTES - 1} 1`,
      `read -P 0 ${ALPHA_BYTES - 2} 1`,
      // A maximum-size request.
      'write -P 0x33 8M 32M',
      'read -P 0x33 8M 32M',
      'flush',
    ]);
    // The bytes really are in the backend, where qemu-io put them.
    const alpha = memory.device('alpha')!;
    expect(Buffer.from(await alpha.read(65530, 13)).toString('hex')).toBe('00' + '11'.repeat(11) + '00');
    expect((await alpha.read(ALPHA_BYTES - 1, 1))[0]).toBe(0x5a);
  });

  test('qemu-io: a wrong pattern is noticed (the -P checks above can fail)', async () => {
    const { code, out } = await qemuIo('alpha', ['read -P 0xcd 4096 8192']);
    expect(out).toMatch(/Pattern verification failed/);
    expect(code).not.toBe(0);
  });

  test('qemu-io: concurrent aio writes land where they were sent', async () => {
    await qemuIoOk('beta', [
      'aio_write -P 0x01 0 64k',
      'aio_write -P 0x02 64k 64k',
      'aio_write -P 0x03 128k 4k',
      'aio_write -P 0x04 1M 1M',
      'aio_flush',
      'read -P 0x01 0 64k',
      'read -P 0x02 64k 64k',
      'read -P 0x03 128k 4k',
      'read -P 0x04 1M 1M',
    ]);
  });

  test('a read past the end is refused with EINVAL, and the server goes on serving', async () => {
    await qemuIoOk('alpha', [`write -P 0x5a ${ALPHA_BYTES - 1} 1`]);
    // qemu-io knows the size and refuses without asking the server.
    const { code } = await qemuIo('alpha', [`read ${ALPHA_BYTES - 4} 8`]);
    expect(code).not.toBe(0);

    // So the request goes out by hand: refused, and the same connection still works.
    const raw = await RawNbd.open(port, 'alpha');
    try {
      raw.write(RawNbd.request(NBD_CMD_READ, 1n, ALPHA_BYTES - 4, 8));
      expect(await raw.reply()).toEqual({ error: EINVAL, handle: 1n });
      raw.write(RawNbd.request(NBD_CMD_READ, 2n, ALPHA_BYTES - 1, 1));
      expect(await raw.reply()).toEqual({ error: 0, handle: 2n });
      expect((await raw.read(1))[0]).toBe(0x5a);
    } finally {
      raw.destroy();
    }
    await qemuIoOk('alpha', [`read -P 0x5a ${ALPHA_BYTES - 1} 1`]);
  });

  test('nbdcopy copies 16 MiB of random bytes in and back out, byte for byte', async () => {
    const source = randomBytes(16 * MiB);
    const inPath = join(dir, 'in.bin');
    const outPath = join(dir, 'out.bin');
    writeFileSync(inPath, source);
    const opensBefore = catalog.opens.get('alpha') ?? 0;
    const copyIn = await run('nbdcopy', ['--connections=2', '--threads=2', inPath, uri('alpha')], { timeoutMs: 60_000 });
    expect(copyIn.code).toBe(0);
    // alpha offers multi-conn, so nbdcopy spread the copy over both connections.
    expect((catalog.opens.get('alpha') ?? 0) - opensBefore).toBe(2);
    expect(sha256(await memory.device('alpha')!.read(0, 16 * MiB))).toBe(sha256(source));

    const copyOut = await run('nbdcopy', [uri('alpha'), outPath], { timeoutMs: 60_000 });
    expect(copyOut.code).toBe(0);
    const copied = readFileSync(outPath);
    expect(copied.length).toBe(ALPHA_BYTES);
    expect(sha256(copied.subarray(0, 16 * MiB))).toBe(sha256(source));
  });

  test('nbdcopy uses one connection where multi-conn is not offered', async () => {
    const source = randomBytes(4 * MiB);
    const inPath = join(dir, 'beta.bin');
    writeFileSync(inPath, source);
    const opensBefore = catalog.opens.get('beta') ?? 0;
    const copy = await run('nbdcopy', ['--connections=2', '--threads=2', inPath, uri('beta')], { timeoutMs: 60_000 });
    expect(copy.code).toBe(0);
    expect((catalog.opens.get('beta') ?? 0) - opensBefore).toBe(1);
    expect(sha256(await memory.device('beta')!.read(0, 4 * MiB))).toBe(sha256(source));
  });

  test('discard and write -z read back as zeros, and free the backend pages', async () => {
    const base = 40 * MiB;
    await qemuIoOk('alpha', [`write -P 0x77 ${base} 512k`, `read -P 0x77 ${base} 512k`]);
    const allocated = memory.device('alpha')!.allocatedBytes();
    await qemuIoOk('alpha', [
      `discard ${base} 65536`,
      `write -z ${base + 131072} 131072`,
      // An unaligned write-zeroes inside a page.
      `write -z ${base + 300001} 999`,
      `read -P 0 ${base} 65536`,
      `read -P 0x77 ${base + 65536} 65536`,
      `read -P 0 ${base + 131072} 131072`,
      `read -P 0x77 ${base + 262144} 37857`,
      `read -P 0 ${base + 300001} 999`,
      `read -P 0x77 ${base + 301000} 1000`,
    ]);
    expect(memory.device('alpha')!.allocatedBytes()).toBe(allocated - 3 * 65536);
  });

  test('garbage, a half handshake and a bad request magic each close only their own connection', async () => {
    // Garbage straight after connecting: unknown client flags and no IHAVEOPT.
    const garbage = await RawNbd.greet(port, false);
    garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await garbage.closedByServer(5_000)).toBe(true);
    garbage.destroy();

    // Valid flags, then an option with a bad magic.
    const badOption = await RawNbd.greet(port);
    badOption.write(RawNbd.option(3, Buffer.alloc(0), 'IHAVEOPX'));
    expect(await badOption.closedByServer(5_000)).toBe(true);
    badOption.destroy();

    // Half the client flags, then the client vanishes.
    const half = await RawNbd.greet(port, false);
    half.write(Buffer.from([0, 0]));
    half.destroy();

    // In transmission, a request whose magic is wrong: the stream cannot be trusted.
    const badRequest = await RawNbd.open(port, 'alpha');
    badRequest.write(RawNbd.request(NBD_CMD_READ, 1n, 0, 512, 0xdeadbeef));
    expect(await badRequest.closedByServer(5_000)).toBe(true);
    badRequest.destroy();

    await qemuIoOk('alpha', ['write -P 0x42 60M 4096', 'read -P 0x42 60M 4096']);
    await waitFor('every connection to be closed', 10_000, () => server.connectionCount === 0);
    const warnings = log.lines.join('\n');
    expect(warnings).toMatch(/unknown client flags/);
    expect(warnings).toMatch(/bad option magic/);
    expect(warnings).toMatch(/bad request magic 0xdeadbeef/);
  });

  test('fio: 32 random writes in flight with crc32c verify, then a verify-only pass; replies went out of order', async () => {
    const overtakesBefore = catalog.overtakes;
    // No verify state file: fio would leave one in its working directory.
    const job = ['--ioengine=nbd', `--uri=${uri('alpha')}`, '--rw=randwrite', '--bs=4k', '--iodepth=32', '--size=8m', '--offset=48m', '--verify=crc32c', '--verify_state_save=0', '--name=gateway'];
    const write = await run('fio', job, { timeoutMs: 120_000, cwd: dir });
    expect(write.stdout + write.stderr).not.toMatch(/verify failed|bad magic/i);
    expect(write.stdout).toMatch(/err= 0/);
    expect(write.code).toBe(0);
    const verify = await run('fio', [...job, '--verify_only'], { timeoutMs: 120_000, cwd: dir });
    expect(verify.stdout + verify.stderr).not.toMatch(/verify failed|bad magic/i);
    expect(verify.stdout).toMatch(/err= 0/);
    expect(verify.code).toBe(0);
    expect(catalog.overtakes - overtakesBefore).toBeGreaterThan(0);
  });
});
