// Keeps the cache of one metadata map in step with its bucket: a KV watch of updates
// only (never the bucket's contents, which may be huge) replaces or drops cached
// entries. A watch that ends or stalls suspends the map's cache and is started again.
import { performance } from 'node:perf_hooks';
import type { MdMap } from '@strata/proto';
import type { MdCache } from './cache';
import type { MdBucket, MdStore } from './store';

type WatchIterator = Awaited<ReturnType<MdBucket['kv']['watch']>>;

export interface WatchLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class MapWatch {
  private iterator: WatchIterator | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  /** The highest revision the watch has delivered. */
  delivered = 0;
  /** A revision this shard wrote that the watch must deliver, and since when (local ms) it waits for it. */
  private probe: { revision: number; sinceMs: number } | undefined;

  constructor(
    private readonly map: MdMap,
    private readonly store: MdStore,
    private readonly cache: MdCache,
    private readonly log: WatchLogger,
    /** How long a revision written here may stay undelivered before the watch counts as stalled. */
    private readonly stallMs: number,
  ) {}

  /** Starts watching; until this resolves the map's cache serves nothing. */
  async start(): Promise<void> {
    this.cache.suspend(this.map);
    const bucket = this.store.buckets[this.map];
    // Updates only: the watch begins at the stream's end, so it costs nothing at start.
    const iterator = await bucket.kv.watch({ key: '>', include: 'updates' });
    if (this.stopped) {
      iterator.stop();
      return;
    }
    this.iterator = iterator;
    this.probe = undefined;
    this.cache.resume(this.map);
    void this.consume(iterator);
  }

  /** Records a revision this shard wrote: the watch must deliver it within stallMs. */
  wrote(revision: number): void {
    if (revision > this.delivered && this.probe === undefined) this.probe = { revision, sinceMs: performance.now() };
  }

  /** Restarts a watch that has not delivered this shard's own write in time; called every tick. */
  checkStall(nowMs: number): void {
    if (this.probe === undefined || this.iterator === undefined) return;
    if (this.delivered >= this.probe.revision) {
      this.probe = undefined;
      return;
    }
    if (nowMs - this.probe.sinceMs < this.stallMs) return;
    this.log.warn({ map: this.map, delivered: this.delivered, waitingFor: this.probe.revision }, 'metadata watch stalled; restarting it');
    this.broken();
  }

  private async consume(iterator: WatchIterator): Promise<void> {
    try {
      for await (const e of iterator) {
        if (iterator !== this.iterator) break;
        this.delivered = Math.max(this.delivered, e.revision);
        const put = e.operation === 'PUT';
        this.cache.changed(this.map, e.key, e.revision, () => {
          if (!put) return undefined;
          try {
            return { value: this.store.decodeStored(this.map, e.key, e.value), revision: e.revision };
          } catch (err) {
            this.log.warn({ err, map: this.map, key: e.key }, 'unreadable metadata value seen by the watch; dropped from the cache');
            return undefined;
          }
        });
      }
    } catch (err) {
      this.log.warn({ err, map: this.map }, 'metadata watch failed');
    }
    if (iterator === this.iterator && !this.stopped) this.broken();
  }

  /** Suspends the map's cache and starts a new watch shortly. */
  private broken(): void {
    this.cache.suspend(this.map);
    this.iterator?.stop();
    this.iterator = undefined;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => void this.restart(), 250);
  }

  private async restart(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.start();
      this.log.info({ map: this.map }, 'metadata watch restarted');
    } catch (err) {
      this.log.warn({ err, map: this.map }, 'could not restart the metadata watch; trying again');
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => void this.restart(), 1_000);
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.iterator?.stop();
    this.iterator = undefined;
    this.cache.suspend(this.map);
  }
}
