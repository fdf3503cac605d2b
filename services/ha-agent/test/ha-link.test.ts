// The fault injector of the HA tests: what the faults file says about a host, and the
// storage guard that makes a cut-off agent's bucket operations fail.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bus } from '@strata/bus';
import { ErrorCode, isStrataError } from '@strata/errors';
import { HaLink, faultsOf } from '../src/ha-link';

describe('faultsOf', () => {
  test('the hosts a host cannot reach over the HA network, and whether it is cut off the ha bucket', () => {
    const file = { ha: { n1: ['n3'], n3: ['n1', 'n2'] }, storage: ['n2'] };
    expect(faultsOf(file, 'n1')).toEqual({ unreachable: new Set(['n3']), storageCut: false });
    expect(faultsOf(file, 'n2')).toEqual({ unreachable: new Set(), storageCut: true });
    expect(faultsOf({}, 'n1')).toEqual({ unreachable: new Set(), storageCut: false });
    expect(faultsOf(null, 'n1')).toEqual({ unreachable: new Set(), storageCut: false });
  });
});

describe('guardStorage', () => {
  const bucket = { name: 'ha', get: async (key: string) => `value of ${key}`, watch: () => 'watching' };
  const log = { warn: () => undefined };

  test('passes every operation through while storage is reachable', async () => {
    const guarded = new HaLink({} as Bus, 'n1', undefined, log).guardStorage(bucket);
    await expect(guarded.get('k')).resolves.toBe('value of k');
    expect(guarded.name).toBe('ha');
  });

  test('fails gets and writes with UNAVAILABLE while the faults file cuts it, not the watch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ha-link-'));
    const file = join(dir, 'faults.json');
    writeFileSync(file, JSON.stringify({ storage: ['n1'] }));
    const link = new HaLink({} as Bus, 'n1', file, log);
    try {
      await link.start();
      const guarded = link.guardStorage(bucket);
      const err: unknown = await guarded.get('k').catch((e: unknown) => e);
      expect(isStrataError(err, ErrorCode.UNAVAILABLE)).toBe(true);
      expect((err as Error).message).toMatch(/the ha bucket is unreachable from n1 \(injected fault\)/);
      expect(guarded.watch()).toBe('watching');
      expect(link.reachesStorage()).toBe(false);
    } finally {
      link.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
