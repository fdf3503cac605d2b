// SET and GET of protection state: SET is a compare-and-set on the newest revision the
// writer knows (its own SET included, while the watched copy lags), a CONFLICT is set
// again on top of the newer value, and a SET the writer cannot deliver goes through
// other hosts' agents, one after another.
import { ErrorCode, StrataError } from '@strata/errors';
import type { Entry } from '@strata/kv';
import type { VmProtection } from '@strata/proto';
import { ProtectionStore } from '../src/protection';

const value = (reason: string): VmProtection => ({ power: 'on', protected: true, host: 'n1', service: 'ha-master', setBy: 'n1', haEpoch: 3, reason, atMs: 0 });

function world(store: (key: string, revision: number) => number) {
  const watched = new Map<string, Entry<VmProtection>>();
  const cache = { get: (k: string) => watched.get(k), revision: 0, waitForRevision: async () => true };
  const calls: string[] = [];
  const bucket = {
    create: async (key: string) => {
      calls.push(`create ${key}`);
      return store(key, 0);
    },
    update: async (key: string, _v: unknown, revision: number) => {
      calls.push(`update ${key} at ${revision}`);
      return store(key, revision);
    },
  };
  return { watched, cache, bucket, calls };
}

test('GET many from the watched copy; SET creates, then updates on the revision of its own last SET while the copy lags', async () => {
  let next = 10;
  const w = world(() => ++next);
  const helpers: string[] = [];
  const p = new ProtectionStore({ bucket: w.bucket as never, cache: w.cache as never, helpers: () => helpers, setThrough: async () => 0 });
  w.watched.set('vm.2', { key: 'vm.2', value: value('x'), revision: 5 });
  expect([...p.getMany([1n, 2n]).keys()]).toEqual([2n]);
  expect(await p.set(1n, value('start'))).toBe(11);
  expect(p.get(1n)).toEqual({ key: 'vm.1', value: value('start'), revision: 11 });
  expect(await p.set(1n, value('stop'))).toBe(12);
  expect(w.calls).toEqual(['create vm.1', 'update vm.1 at 11']);
  w.watched.set('vm.1', { key: 'vm.1', value: value('someone'), revision: 13 });
  expect(p.get(1n)?.value.reason).toBe('someone');
});

test('a CONFLICT is set again on the newer revision; UNAVAILABLE goes through the helpers in order', async () => {
  let conflicts = 1;
  const w = world((_k, revision) => {
    if (revision === 5 && conflicts-- > 0) {
      w.watched.set('vm.1', { key: 'vm.1', value: value('other'), revision: 6 });
      throw new StrataError(ErrorCode.CONFLICT, 'changed');
    }
    if (revision === 6) throw new StrataError(ErrorCode.UNAVAILABLE, 'unreachable');
    return revision + 1;
  });
  w.watched.set('vm.1', { key: 'vm.1', value: value('x'), revision: 5 });
  const through: string[] = [];
  const p = new ProtectionStore({
    bucket: w.bucket as never,
    cache: w.cache as never,
    helpers: () => ['n2', 'n3', 'n4', 'n5'],
    setThrough: async (host, _vm, _v, revision) => {
      through.push(`${host} at ${revision}`);
      if (host === 'n2') throw new StrataError(ErrorCode.UNAVAILABLE, 'n2 cannot either');
      return 7;
    },
  });
  expect(await p.set(1n, value('stop'))).toBe(7);
  expect(w.calls).toEqual(['update vm.1 at 5', 'update vm.1 at 6']);
  expect(through).toEqual(['n2 at 6', 'n3 at 6']);
  expect(p.get(1n)?.revision).toBe(7);
});

test('no helper can either: UNAVAILABLE that names them', async () => {
  const w = world(() => {
    throw new StrataError(ErrorCode.UNAVAILABLE, 'unreachable');
  });
  const p = new ProtectionStore({ bucket: w.bucket as never, cache: w.cache as never, helpers: () => ['n2'], setThrough: async () => {
    throw new StrataError(ErrorCode.TIMEOUT, 'no reply');
  } });
  await expect(p.set(1n, value('x'))).rejects.toThrow('cannot write the protection state of vm 1: the ha bucket is unreachable here and from n2');
});
