// The extent store's concurrency tools, driven with promises the test resolves by
// hand: the per-key shared/exclusive lock, the semaphore, and the bounded cache of
// open data files (on real temporary files).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { KeyedLock, Semaphore } from '../src/concurrency';
import { OpenFiles } from '../src/open-files';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('KeyedLock', () => {
  it('runs one exclusive holder per key in arrival order, and different keys at once', async () => {
    const lock = new KeyedLock<string>();
    const order: string[] = [];
    const gateA = deferred();
    const a1 = lock.run('a', async () => {
      order.push('a1 start');
      await gateA.promise;
      order.push('a1 end');
    });
    const a2 = lock.run('a', async () => void order.push('a2'));
    // Key b runs while a1 still holds a: it opens a1's gate.
    const b = lock.run('b', async () => {
      order.push('b');
      gateA.resolve();
    });
    await Promise.all([a1, a2, b]);
    expect(order).toEqual(['a1 start', 'b', 'a1 end', 'a2']);
    expect(lock.activeKeys).toBe(0);
  });

  it('lets shared holders run together, and an exclusive one only alone', async () => {
    const lock = new KeyedLock<bigint>();
    const gates = [deferred(), deferred()];
    const running = new Set<string>();
    const seen: string[][] = [];
    const holder = (name: string, gate?: Promise<void>) => async (): Promise<void> => {
      running.add(name);
      seen.push([...running].sort());
      await gate;
      running.delete(name);
    };
    const r1 = lock.runShared(1n, holder('r1', gates[0]!.promise));
    const r2 = lock.runShared(1n, holder('r2', gates[1]!.promise));
    const w = lock.run(1n, holder('w'));
    await tick();
    // Both readers hold the key; the writer waits for both.
    expect([...running].sort()).toEqual(['r1', 'r2']);
    gates[0]!.resolve();
    await r1;
    await tick();
    expect([...running]).toEqual(['r2']);
    gates[1]!.resolve();
    await Promise.all([r2, w]);
    expect(seen).toEqual([['r1'], ['r1', 'r2'], ['w']]);
    expect(lock.activeKeys).toBe(0);
  });

  it('holds back readers that arrive behind a waiting writer, so the writer does not starve', async () => {
    const lock = new KeyedLock<string>();
    const gate = deferred();
    const order: string[] = [];
    const r1 = lock.runShared('k', async () => {
      order.push('r1');
      await gate.promise;
    });
    const w = lock.run('k', async () => void order.push('w'));
    const r2 = lock.runShared('k', async () => void order.push('r2'));
    const r3 = lock.runShared('k', async () => void order.push('r3'));
    await tick();
    expect(order).toEqual(['r1']);
    gate.resolve();
    await Promise.all([r1, w, r2, r3]);
    expect(order).toEqual(['r1', 'w', 'r2', 'r3']);
  });

  it('releases a key when its holder throws', async () => {
    const lock = new KeyedLock<string>();
    await expect(lock.run('k', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(lock.runShared('k', () => Promise.reject(new Error('bang')))).rejects.toThrow('bang');
    await expect(lock.run('k', async () => 7)).resolves.toBe(7);
    expect(lock.activeKeys).toBe(0);
  });
});

describe('Semaphore', () => {
  it('admits at most `limit` holders and hands slots over in arrival order', async () => {
    const semaphore = new Semaphore(2);
    const gates = [deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((gate, i) =>
      semaphore.run(async () => {
        started.push(i);
        await gate.promise;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(semaphore.inUse).toBe(2);
    gates[1]!.resolve();
    await runs[1];
    await tick();
    expect(started).toEqual([0, 1, 2]);
    gates[0]!.resolve();
    gates[2]!.resolve();
    await Promise.all(runs);
    expect(semaphore.inUse).toBe(0);
  });
});

describe('OpenFiles', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-open-files-'));
    for (const name of ['a', 'b', 'c']) await writeFile(join(dir, name), name);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const read = (files: OpenFiles<string>, name: string): Promise<string> =>
    files.use(name, join(dir, name), fsConstants.O_RDONLY, async (h) => (await h.readFile()).toString());

  it('reuses an open file, closes the least recently used idle one beyond its bound, and never one in use', async () => {
    const files = new OpenFiles<string>(2);
    const handles: FileHandle[] = [];
    const grab = (name: string): Promise<void> => files.use(name, join(dir, name), fsConstants.O_RDONLY, async (h) => void handles.push(h));
    await grab('a');
    await grab('a');
    expect(handles[0]).toBe(handles[1]);
    await grab('b');
    await grab('a');
    // c evicts b, the least recently used.
    await grab('c');
    expect(files.size).toBe(2);
    await grab('b');
    expect(handles[4]).not.toBe(handles[2]);
    await files.closeAll();

    // While a holds its file, opening b and c goes beyond the bound instead of closing a.
    const one = new OpenFiles<string>(1);
    const gate = deferred();
    let inUse: FileHandle | undefined;
    const holding = one.use('a', join(dir, 'a'), fsConstants.O_RDONLY, async (h) => {
      inUse = h;
      await gate.promise;
      return (await h.readFile()).toString();
    });
    await tick();
    expect(await read(one, 'b')).toBe('b');
    expect(one.size).toBe(1);
    gate.resolve();
    expect(await holding).toBe('a');
    expect(inUse).toBeDefined();
    await one.closeAll();
    expect(one.size).toBe(0);
  });

  it('shares one open among concurrent users, does not cache a failed open, and drops a file on request', async () => {
    const files = new OpenFiles<string>(4);
    const seen: FileHandle[] = [];
    await Promise.all([1, 2, 3].map(() => files.use('a', join(dir, 'a'), fsConstants.O_RDONLY, async (h) => void seen.push(h))));
    expect(new Set(seen).size).toBe(1);
    await expect(read(files, 'missing')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(files.size).toBe(1);
    await files.drop('a');
    expect(files.size).toBe(0);
    // The dropped handle is closed.
    await expect(seen[0]!.stat()).rejects.toMatchObject({ code: 'EBADF' });
    await files.drop('not there');
    await files.closeAll();
  });
});
