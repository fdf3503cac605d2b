// The power-on lease check: a VM's unshared vDisk is opened only by the instance that
// names the VM's current lease (`db@12360.4`), held by a host of this gateway's node,
// and every later attempt of its I/O is checked again; under its plain name it is
// served only while the VM does not run.
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { LeaseRecord } from '@strata/lease';
import type { ObjectOf } from '@strata/proto';
import { BusCatalog, type IoRequester } from '../src/bus-backend';
import { PowerOnGuard, parseExportName } from '../src/lease-guard';

const vdisk = (id: bigint, name: string, shared = false) => ({ kind: 'vdisk', id, name, createdAtMs: 1, updatedAtMs: 1, epoch: 1, revision: 1, spec: { container: 9n, sizeBytes: 1 << 20, blockSizeBytes: 1 << 20, shared, qos: { priority: 'normal', weight: 1 } } }) as ObjectOf<'vdisk'>;
const vm = (id: bigint, name: string, vdisks: bigint[]) => ({ kind: 'vm', id, name, createdAtMs: 1, updatedAtMs: 1, epoch: 1, revision: 1, spec: { host: 20n, cpuCount: 1, memoryBytes: 1 << 30, vdisks, haProtected: true, driver: 'process', restartPriority: 'medium' } }) as ObjectOf<'vm'>;
const host = (name: string, node: bigint) => ({ kind: 'host', id: 30n, name, createdAtMs: 1, updatedAtMs: 1, epoch: 1, revision: 1, spec: { node, cpuCount: 4, memoryBytes: 1 << 32 } }) as ObjectOf<'host'>;

const db = vdisk(5n, 'db');
const objects = [db, vdisk(6n, 'scratch'), vdisk(7n, 'shared', true), vm(12360n, 'web', [5n]), host('h1', 1n), host('h2', 2n)];

function world() {
  const leases = new Map<string, { value: LeaseRecord; revision: number }>();
  const config = {
    list: async (kind: string) => objects.filter((o) => o.kind === kind),
    get: async (r: { kind: string; name: string }) => {
      if (r.kind === 'node') return { id: r.name === 'n1' ? 1n : 2n };
      const found = objects.find((o) => o.kind === r.kind && o.name === r.name);
      if (found === undefined) throw new StrataError(ErrorCode.NOT_FOUND, `${r.kind} "${r.name}" does not exist`);
      return found;
    },
  };
  const guard = new PowerOnGuard({ leases: { get: (k: string) => leases.get(k) } as never, readLease: async (k) => leases.get(k) ?? null, config: config as never, node: 'n1' });
  const setLease = (holder: string, epoch: number, revision: number): void => void leases.set('poweron.12360', { value: { holder, epoch, renewedAtMs: 0, ttlMs: 4_000 }, revision });
  return { guard, config, setLease };
}

const refusal = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (err) {
    if (isStrataError(err, ErrorCode.FENCED)) return err.message;
    throw err;
  }
  throw new Error('not refused');
};

test('export names: a vDisk, or a vDisk claimed by a VM at an epoch', () => {
  expect(parseExportName('db')).toEqual({ vdisk: 'db' });
  expect(parseExportName('db@12360.4')).toEqual({ vdisk: 'db', claim: { vm: 12360n, epoch: 4 } });
  for (const bad of ['DB', 'db@', 'db@12360', 'db@x.4', 'db@1.2.3', '@1.2']) expect(parseExportName(bad)).toBeUndefined();
});

test('the current instance opens it; a stale epoch, a released lease, another node\'s host or another VM are refused with the reason', async () => {
  const { guard, setLease } = world();
  setLease('h1', 4, 100);
  const check = await guard.admit(db, { vm: 12360n, epoch: 4 });
  expect(check()).toBeUndefined();
  expect(await refusal(guard.admit(db, { vm: 12360n, epoch: 3 }))).toBe('vdisk db: the power-on lease of vm web is at epoch 4, not 3');
  expect(await refusal(guard.admit(db, { vm: 99n, epoch: 4 }))).toBe('vdisk db is not a disk of vm 99');
  setLease('h2', 4, 101);
  expect(await refusal(guard.admit(db, { vm: 12360n, epoch: 4 }))).toBe('vdisk db: the power-on lease of vm web is held by h2, not by a host of node n1');
  setLease('', 4, 102);
  expect(await refusal(guard.admit(db, { vm: 12360n, epoch: 4 }))).toBe('vdisk db: the power-on lease of vm web is not held');
});

test('once the lease moves on, every request of the old connection is refused', async () => {
  const { guard, setLease } = world();
  setLease('h1', 4, 100);
  const check = await guard.admit(db, { vm: 12360n, epoch: 4 });
  setLease('h1', 4, 101);
  expect(check()).toBeUndefined();
  setLease('h2', 5, 102);
  expect(check()).toBe('vdisk db: the power-on lease of vm web is at epoch 5, not 4');
});

test('the plain name of a VM\'s vDisk is served only while the VM does not run; other vDisks as before', async () => {
  const { guard, setLease } = world();
  const check = await guard.admit(db, undefined);
  expect(check()).toBeUndefined();
  setLease('h1', 4, 100);
  expect(check()).toBe('vdisk db belongs to vm web, which runs (power-on lease epoch 4 held by h1): only that instance may open it, as db@12360.4');
  expect(await refusal(guard.admit(db, undefined))).toMatch(/only that instance may open it/);
  expect((await guard.admit(vdisk(6n, 'scratch'), undefined))()).toBeUndefined();
  expect(await refusal(guard.admit(vdisk(6n, 'scratch'), { vm: 12360n, epoch: 4 }))).toBe('vdisk scratch belongs to no VM: open it by its plain name');
  expect(await refusal(guard.admit(vdisk(7n, 'shared', true), { vm: 12360n, epoch: 4 }))).toBe('vdisk shared is shared: open it by its plain name');
});

test('the bus backend checks before every attempt of every piece, and a name with a claim is no export without a guard', async () => {
  const { guard, config, setLease } = world();
  setLease('h1', 4, 100);
  let attempts = 0;
  const bus = {
    request: async (subject: string, _req: unknown, schema: { parse(v: unknown): unknown }, options: { beforeAttempt?: () => void } = {}) => {
      if (subject.endsWith('.attach')) return schema.parse({ owner: 'n1', epoch: 1, volunteers: ['n1'] });
      options.beforeAttempt?.();
      attempts++;
      return schema.parse({ data: new Uint8Array(512) });
    },
  } as unknown as IoRequester;
  const device = (await new BusCatalog({ bus, config: config as never, node: 'n1', guard }).open('db@12360.4'))!;
  await device.read(0, 512);
  expect(attempts).toBe(1);
  setLease('h2', 5, 101);
  await expect(device.read(0, 512)).rejects.toThrow('vdisk db: the power-on lease of vm web is at epoch 5, not 4');
  expect(attempts).toBe(1);
  expect(await new BusCatalog({ bus, config: config as never, node: 'n1' }).open('db@12360.4')).toBeUndefined();
});
