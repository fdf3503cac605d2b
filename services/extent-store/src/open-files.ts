// A small cache of open data files, so a 4 KiB read costs one pread and no
// open/close pair (two more system calls and a path lookup). Bounded: beyond `max`
// files, the least recently used idle one is closed. A file in use is never closed
// under its user; while every cached file is in use the cache may exceed `max` by the
// number of operations in flight, which the disk's semaphore already bounds.
import { open, type FileHandle } from 'node:fs/promises';
import { assert } from '@strata/errors';

interface Entry {
  /** Shared by concurrent readers of one file while it is being opened. */
  handle: Promise<FileHandle>;
  users: number;
}

export class OpenFiles<K> {
  /** Least recently used first. */
  private readonly entries = new Map<K, Entry>();
  /** Closes started by eviction, awaited by closeAll. */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    readonly max: number,
    /** Told about a failed close of an evicted file (nothing waits for it). */
    private readonly onCloseError: (err: unknown) => void = () => undefined,
  ) {
    assert(Number.isInteger(max) && max > 0, `an open-file cache needs a positive whole size, not ${max}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Runs `fn` with the open file of `key` at `path`, opening it with `flags` if it is
   * not open. A failed open (ENOENT for a missing file) is thrown and not cached.
   */
  async use<T>(key: K, path: string, flags: number, fn: (handle: FileHandle) => Promise<T>): Promise<T> {
    let entry = this.entries.get(key);
    if (entry !== undefined) {
      // Re-inserting moves it to the most recently used end.
      this.entries.delete(key);
    } else {
      entry = { handle: open(path, flags, 0o644), users: 0 };
    }
    this.entries.set(key, entry);
    entry.users++;
    try {
      let handle: FileHandle;
      try {
        handle = await entry.handle;
      } catch (err) {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw err;
      }
      return await fn(handle);
    } finally {
      entry.users--;
      this.evict();
    }
  }

  /**
   * Closes and forgets the file of `key` (before its data file is removed). The
   * caller holds the extent group's exclusive lock, so nobody is using it.
   */
  async drop(key: K): Promise<void> {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    assert(entry.users === 0, `an open file was dropped while ${entry.users} operations used it`);
    this.entries.delete(key);
    await closeEntry(entry);
  }

  /** Closes every file; the caller has stopped all operations. */
  async closeAll(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all([...entries.map(closeEntry), ...this.closing]);
  }

  private evict(): void {
    if (this.entries.size <= this.max) return;
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.max) break;
      if (entry.users > 0) continue;
      this.entries.delete(key);
      const closing = closeEntry(entry).catch(this.onCloseError);
      this.closing.add(closing);
      void closing.finally(() => this.closing.delete(closing));
    }
  }
}

async function closeEntry(entry: Entry): Promise<void> {
  // An entry whose open failed was never cached, but one could fail after a drop.
  const handle = await entry.handle.catch(() => undefined);
  await handle?.close();
}
