// A local copy of (part of) a bucket, fed by a KV watch. `ready` resolves once the
// copy holds everything the bucket held when the watch started; listeners hear of
// every later change. Readers of hot state (ownership, config) read from here.
import type { QueuedIterator } from '@nats-io/transport-node';
import type { KvWatchEntry } from '@nats-io/kv';
import type { z } from 'zod';
import type { Entry, TypedBucket } from './bucket';

export type ChangeListener<T> = (key: string, entry: Entry<T> | undefined) => void;

export interface WatchCacheOptions {
  /** Subject-style key filter (`vdisk.>`); default every key. */
  key?: string;
  /** Called with entries that do not decode against the schema (they are skipped). */
  onBadEntry?: (key: string, err: unknown) => void;
  /** Called when a watch restarted after a reconnect could not be made (it is tried again, a bounded number of times). */
  onResumeError?: (err: unknown, attempt: number) => void;
}

/** Attempts at restarting the watch after a reconnect, one second apart (JetStream may be electing leaders). */
const RESUME_ATTEMPTS = 30;
const RESUME_RETRY_MS = 1_000;

export class WatchCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly listeners = new Set<ChangeListener<T>>();
  private iterator: QueuedIterator<KvWatchEntry> | undefined;
  private markReady: () => void = () => undefined;
  /** Resolves when the initial contents are loaded. */
  readonly ready: Promise<void>;
  /** The highest revision applied so far. */
  revision = 0;
  private stopped = false;

  private constructor(
    private readonly bucket: TypedBucket<z.ZodType>,
    private readonly options: WatchCacheOptions,
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }

  static async start<S extends z.ZodType>(bucket: TypedBucket<S>, options: WatchCacheOptions = {}): Promise<WatchCache<z.output<S>>> {
    const cache = new WatchCache<z.output<S>>(bucket, options);
    const filter = options.key ?? '>';
    // An empty key set yields no initial entry to mark the end of the sync with.
    const initiallyEmpty = (await bucket.keys(filter)).length === 0;
    cache.iterator = await bucket.kv.watch({ key: filter });
    if (initiallyEmpty) cache.markReady();
    void cache.consume(cache.iterator);
    void cache.resumeAfterReconnects();
    return cache;
  }

  /**
   * A connection that lost its server and reconnected to another one has lost the
   * watch with it: its consumer's deliveries went to the dead server, and the client
   * library would notice only after missed heartbeats, if at all (seen under kill -9
   * of a nats-server: a controller's copy of the disks' usage stopped changing, and
   * drain found no live node to write to). So every reconnect restarts the watch
   * from the last revision applied. A watch whose consumer died while the connection
   * stayed up is not covered here: its owner detects the stall (see resume).
   */
  private async resumeAfterReconnects(): Promise<void> {
    for await (const status of this.bucket.nc.status()) {
      if (this.stopped) return;
      if (status.type !== 'reconnect') continue;
      for (let attempt = 1; attempt <= RESUME_ATTEMPTS && !this.stopped; attempt++) {
        try {
          await this.resume();
          break;
        } catch (err) {
          this.options.onResumeError?.(err, attempt);
          await new Promise((resolve) => setTimeout(resolve, RESUME_RETRY_MS));
        }
      }
    }
  }

  /**
   * Restarts the watch just after the last revision applied, keeping what the cache
   * holds. For a watch that has stalled, typically because the server its consumer
   * lived on has died: the client library would notice only after missed heartbeats.
   */
  async resume(): Promise<void> {
    // The new watch first: if it cannot be made (JetStream electing leaders), the old
    // one keeps going, in case it was only slow.
    const iterator = await this.bucket.kv.watch({ key: this.options.key ?? '>', resumeFromRevision: this.revision + 1 });
    const old = this.iterator;
    this.iterator = iterator;
    old?.stop();
    void this.consume(iterator);
  }

  /**
   * `key` as the bucket itself holds it, when that is newer than the copy (the watch
   * is then resumed: it has stalled without a reconnect, its consumer on a server this
   * connection was cut off from, and the client library may not notice), else the
   * copy's. For a reader that must not act on a stale copy (a size, a node's record),
   * and for owners of watches whose keys change rarely, since silence cannot tell
   * them the watch stalled.
   */
  async latest(key: string): Promise<Entry<T> | undefined> {
    const stored = (await this.bucket.get(key)) as Entry<T> | null;
    const held = this.entries.get(key);
    if (stored === null || stored.revision <= (held?.revision ?? 0)) return held;
    await this.resume();
    return stored;
  }

  /** Whether the copy of `key` was behind the bucket (see latest); the watch is resumed if so. */
  async catchUp(key: string): Promise<boolean> {
    const held = this.entries.get(key);
    return (await this.latest(key)) !== held;
  }

  private async consume(iterator: QueuedIterator<KvWatchEntry>): Promise<void> {
    for await (const e of iterator) {
      // A replaced iterator may still deliver what it had queued: ignore it.
      if (iterator !== this.iterator) break;
      // Revisions arrive in increasing order; one applied already (a resumed watch may
      // replay it) changes nothing.
      if (e.revision <= this.revision) continue;
      this.revision = Math.max(this.revision, e.revision);
      let entry: Entry<T> | undefined;
      if (e.operation === 'PUT') {
        try {
          entry = this.bucket.decodeEntry(e) as Entry<T>;
        } catch (err) {
          this.options.onBadEntry?.(e.key, err);
        }
      }
      if (entry === undefined) this.entries.delete(e.key);
      else this.entries.set(e.key, entry);
      for (const listener of this.listeners) listener(e.key, entry);
      // delta is the number of entries still pending behind this one.
      if (e.delta === 0) this.markReady();
    }
  }

  get(key: string): Entry<T> | undefined {
    return this.entries.get(key);
  }

  values(): Entry<T>[] {
    return [...this.entries.values()];
  }

  get size(): number {
    return this.entries.size;
  }

  /** Adds a listener for every change from now on; returns its remover. */
  onChange(listener: ChangeListener<T>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Waits until the cache has applied `revision` (bounded by `timeoutMs`). */
  async waitForRevision(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.revision >= revision) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        remove();
        resolve(false);
      }, timeoutMs);
      const remove = this.onChange(() => {
        if (this.revision >= revision) {
          clearTimeout(timer);
          remove();
          resolve(true);
        }
      });
    });
  }

  stop(): void {
    this.stopped = true;
    this.iterator?.stop();
    this.listeners.clear();
  }
}
