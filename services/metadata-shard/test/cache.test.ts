// The cache rules of cache.ts, each with the interleaving it guards against: results
// of reads and writes are stored; the watch replaces entries only with newer
// revisions; a read that raced with a change (seen by the watch or made by a local
// write or delete) does not put the old value back; a lost partition and a broken
// watch drop their entries and keep operations that began earlier from storing; and
// the LRU never holds more than its bound.
import { MdCache } from '../src/cache';

const v = (n: number) => ({ egroup: BigInt(n) });

describe('MdCache', () => {
  it('stores a read result and answers later reads from it, most recently used last to go', () => {
    const c = new MdCache(2);
    for (const [key, rev] of [['a', 1], ['b', 2]] as const) {
      const t = c.begin('extent', key, 0);
      c.finish(t, { value: v(rev), revision: rev });
    }
    expect(c.lookup('extent', 'a')).toEqual({ value: v(1), revision: 1 });
    const t = c.begin('extent', 'c', 0);
    c.finish(t, { value: v(3), revision: 3 });
    expect(c.size).toBe(2);
    // 'b' was the least recently used.
    expect(c.lookup('extent', 'b')).toBeUndefined();
    expect(c.lookup('extent', 'a')).toBeDefined();
    expect(c.hits).toBe(2);
    expect(c.misses).toBe(1);
  });

  it('caches an absent key as revision 0 and keeps maps apart', () => {
    const c = new MdCache(10);
    c.finish(c.begin('vdisk', 'k', 1), { value: undefined, revision: 0 });
    expect(c.lookup('vdisk', 'k')).toEqual({ value: undefined, revision: 0 });
    expect(c.lookup('egroup', 'k')).toBeUndefined();
  });

  it('the watch replaces an entry with a newer revision, drops it on a delete, and ignores an older one', () => {
    const c = new MdCache(10);
    c.finish(c.begin('extent', 'k', 0), { value: v(5), revision: 5 });
    c.changed('extent', 'k', 4, () => ({ value: v(4), revision: 4 }));
    expect(c.lookup('extent', 'k')?.revision).toBe(5);
    c.changed('extent', 'k', 6, () => ({ value: v(6), revision: 6 }));
    expect(c.lookup('extent', 'k')).toEqual({ value: v(6), revision: 6 });
    c.changed('extent', 'k', 7, () => undefined);
    expect(c.lookup('extent', 'k')).toBeUndefined();
  });

  it('the watch decodes nothing for a key that is not cached', () => {
    const c = new MdCache(10);
    const decode = jest.fn(() => ({ value: v(1), revision: 1 }));
    c.changed('extent', 'k', 1, decode);
    expect(decode).not.toHaveBeenCalled();
    expect(c.lookup('extent', 'k')).toBeUndefined();
  });

  it('a read that began before a change the watch delivered does not put the old value back', () => {
    const c = new MdCache(10);
    const read = c.begin('extent', 'k', 0);
    // KV answered revision 5; before the handler stores it, the watch delivers 6.
    c.changed('extent', 'k', 6, () => ({ value: v(6), revision: 6 }));
    c.finish(read, { value: v(5), revision: 5 });
    expect(c.lookup('extent', 'k')).toBeUndefined();
  });

  it('a read still stores when the watch delivered exactly what it read (our own write arriving)', () => {
    const c = new MdCache(10);
    const write = c.begin('extent', 'k', 0);
    c.changed('extent', 'k', 8, () => ({ value: v(8), revision: 8 }));
    c.finish(write, { value: v(8), revision: 8 });
    expect(c.lookup('extent', 'k')).toEqual({ value: v(8), revision: 8 });
  });

  it('a local delete (revision unknown) keeps every operation in flight on the key from storing', () => {
    const c = new MdCache(10);
    c.finish(c.begin('extent', 'k', 0), { value: v(3), revision: 3 });
    const read = c.begin('extent', 'k', 0);
    c.changed('extent', 'k', Infinity, () => undefined);
    expect(c.lookup('extent', 'k')).toBeUndefined();
    c.finish(read, { value: v(3), revision: 3 });
    expect(c.lookup('extent', 'k')).toBeUndefined();
    // A read that begins after the delete stores again.
    c.finish(c.begin('extent', 'k', 0), { value: undefined, revision: 0 });
    expect(c.lookup('extent', 'k')).toEqual({ value: undefined, revision: 0 });
  });

  it('never replaces a newer entry with an older result, and ignores a failed operation', () => {
    const c = new MdCache(10);
    const slow = c.begin('extent', 'k', 0);
    c.finish(c.begin('extent', 'k', 0), { value: v(9), revision: 9 });
    c.finish(slow, { value: v(7), revision: 7 });
    expect(c.lookup('extent', 'k')?.revision).toBe(9);
    const failed = c.begin('extent', 'x', 0);
    c.finish(failed);
    expect(c.lookup('extent', 'x')).toBeUndefined();
    expect(c.ticketsInFlight).toBe(0);
  });

  it('drops a lost partition, and an operation that began before cannot store into it', () => {
    const c = new MdCache(10);
    c.finish(c.begin('extent', 'a', 1), { value: v(1), revision: 1 });
    c.finish(c.begin('extent', 'b', 2), { value: v(2), revision: 2 });
    const late = c.begin('extent', 'c', 1);
    c.dropPartition(1);
    expect(c.lookup('extent', 'a')).toBeUndefined();
    expect(c.lookup('extent', 'b')).toBeDefined();
    c.finish(late, { value: v(3), revision: 3 });
    expect(c.lookup('extent', 'c')).toBeUndefined();
  });

  it('a broken watch suspends its map: nothing served or stored until it runs again, and nothing begun before', () => {
    const c = new MdCache(10);
    c.finish(c.begin('egroup', 'a', 0), { value: v(1), revision: 1 });
    c.finish(c.begin('extent', 'b', 0), { value: v(2), revision: 2 });
    const before = c.begin('egroup', 'c', 0);
    c.suspend('egroup');
    expect(c.isSuspended('egroup')).toBe(true);
    expect(c.lookup('egroup', 'a')).toBeUndefined();
    expect(c.lookup('extent', 'b')).toBeDefined();
    const during = c.begin('egroup', 'd', 0);
    c.finish(during, { value: v(4), revision: 4 });
    expect(c.lookup('egroup', 'd')).toBeUndefined();
    c.resume('egroup');
    // Both began before the new watch existed: a change may have slipped between watches.
    c.finish(before, { value: v(3), revision: 3 });
    const during2 = c.begin('egroup', 'e', 0);
    c.suspend('egroup');
    c.resume('egroup');
    c.finish(during2, { value: v(5), revision: 5 });
    expect(c.size).toBe(1);
    c.finish(c.begin('egroup', 'f', 0), { value: v(6), revision: 6 });
    expect(c.lookup('egroup', 'f')).toBeDefined();
  });

  it('holds at most its bound under many keys', () => {
    const c = new MdCache(100);
    for (let i = 0; i < 1_000; i++) c.finish(c.begin('vdisk', `k${i}`, i % 16), { value: v(i), revision: i + 1 });
    expect(c.size).toBe(100);
    expect(c.lookup('vdisk', 'k999')).toBeDefined();
    expect(c.lookup('vdisk', 'k0')).toBeUndefined();
    expect(() => new MdCache(0)).toThrow(/assertion/);
  });
});
