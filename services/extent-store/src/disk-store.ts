// The storage engine of one disk: extent-group replicas as `<path>/egroups/<id>.eg`
// (data) plus `<id>.meta` (sidecar), versioned writes fenced by epoch, a CRC32C per
// extent checked on every read, capacity accounting, and recovery at open.
//
// Durability order of a write: data pwrite, fsync of the data file, then the sidecar
// replaced atomically (temp, fsync, rename, fsync of the directory), then the reply.
// So an acknowledged write is on disk with the sidecar that describes it, and a crash
// at any point leaves the replica at its previous version or the new one.
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, rename, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, StrataError, assert } from '@strata/errors';
import { KeyedMutex, Semaphore } from './concurrency';
import { extentEnd, findExtent, placeExtent, sameExtent, withExtent, type Extent } from './extents';
import { DATA_SUFFIX, SIDECAR_FORMAT, SIDECAR_SUFFIX, TEMP_SUFFIX, dataPath, readSidecar, sidecarPath, syncDirectory, writeSidecar, type Sidecar } from './sidecar';

const MiB = 1024 * 1024;

/** The structural subset of a pino logger the engine uses. */
export interface DiskStoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface DiskStoreOptions {
  /** The disk's id in the config service; named in every error. */
  diskId: bigint;
  /** The disk's directory; `egroups/` and `quarantine/` are created inside. */
  path: string;
  /** Bytes of extent-group data this disk may hold. */
  capacityBytes: number;
  /** Largest extent-group file: a write ending beyond it is INVALID (design: 16-64 MiB). */
  egroupSizeMaxBytes?: number;
  /** Most extents in one extent group: bounds each sidecar and its rewrite cost. */
  extentsPerEgroupMax?: number;
  /** Operations that do file I/O at once. */
  opsInFlightMax?: number;
  /** Operations admitted (waiting or running); beyond it a request gets QUEUE_FULL. */
  opsPendingMax?: number;
  /** Sidecars kept decoded in memory (least recently used are dropped). */
  sidecarCacheMax?: number;
  /** Sidecars read at once during recovery. */
  recoveryReadsInFlightMax?: number;
  log?: DiskStoreLogger;
}

/** An extent-group write, as egWriteRequest carries it (the disk is already chosen). */
export interface EgroupWrite {
  egroup: bigint;
  vdisk: bigint;
  epoch: number;
  version: number;
  offset: number;
  data: Uint8Array;
}

export interface EgroupRead {
  egroup: bigint;
  offset: number;
  length: number;
}

/** What recovery found and did, for the log and for tests. */
export interface RecoveryReport {
  egroups: number;
  usedBytes: number;
  /** Temporary sidecars of writes cut short by a crash; removed. */
  removedTempFiles: string[];
  /** Data files without a sidecar: a first write that was never acknowledged, or a delete cut short; removed. */
  removedOrphans: string[];
  /** Data files longer than their sidecar says (an unacknowledged write); cut back. */
  truncated: string[];
  /** Damaged replicas moved to quarantine/ (their bytes still count as used). */
  quarantined: string[];
}

interface Summary {
  version: number;
  sizeBytes: number;
}

const defaults = {
  egroupSizeMaxBytes: 64 * MiB,
  extentsPerEgroupMax: 4096,
  opsInFlightMax: 16,
  opsPendingMax: 1024,
  sidecarCacheMax: 1024,
  recoveryReadsInFlightMax: 16,
};

const EGROUP_FILE = /^(\d{1,20})\.(eg|meta)$/;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function positiveInteger(name: string, value: number): number {
  assert(Number.isSafeInteger(value) && value > 0, `${name} must be a positive whole number, not ${value}`);
  return value;
}

export class DiskStore {
  readonly diskId: bigint;
  /** The disk's directory as configured. */
  readonly path: string;
  private readonly dir: string;
  private readonly quarantineDir: string;
  private capacity: number;
  private readonly limits: typeof defaults;
  private readonly log: DiskStoreLogger | undefined;

  /** Every replica on the disk: enough for stat and for accounting without reading sidecars. */
  private readonly index = new Map<bigint, Summary>();
  /** Decoded sidecars, least recently used first. */
  private readonly cache = new Map<bigint, Sidecar>();
  private readonly locks = new KeyedMutex();
  private readonly io: Semaphore;

  /** Sum of the replicas' sizeBytes plus quarantined bytes. */
  private used = 0;
  /** Growth promised to writes in progress, so parallel writes cannot overshoot capacity together. */
  private reserved = 0;
  private pending = 0;
  private closed: Promise<void> | undefined;
  private idle: (() => void) | undefined;
  /** Set after a failed fsync: the kernel may have dropped the dirty pages, so nothing here is trusted. */
  private broken: string | undefined;
  private report!: RecoveryReport;

  private constructor(options: DiskStoreOptions) {
    this.diskId = options.diskId;
    this.path = options.path;
    this.dir = join(options.path, 'egroups');
    this.quarantineDir = join(options.path, 'quarantine');
    this.capacity = positiveInteger('capacityBytes', options.capacityBytes);
    this.limits = {
      egroupSizeMaxBytes: positiveInteger('egroupSizeMaxBytes', options.egroupSizeMaxBytes ?? defaults.egroupSizeMaxBytes),
      extentsPerEgroupMax: positiveInteger('extentsPerEgroupMax', options.extentsPerEgroupMax ?? defaults.extentsPerEgroupMax),
      opsInFlightMax: positiveInteger('opsInFlightMax', options.opsInFlightMax ?? defaults.opsInFlightMax),
      opsPendingMax: positiveInteger('opsPendingMax', options.opsPendingMax ?? defaults.opsPendingMax),
      sidecarCacheMax: positiveInteger('sidecarCacheMax', options.sidecarCacheMax ?? defaults.sidecarCacheMax),
      recoveryReadsInFlightMax: positiveInteger('recoveryReadsInFlightMax', options.recoveryReadsInFlightMax ?? defaults.recoveryReadsInFlightMax),
    };
    this.io = new Semaphore(this.limits.opsInFlightMax);
    this.log = options.log;
  }

  /** Opens a disk: creates its directories if missing, then recovers what is on it. */
  static async open(options: DiskStoreOptions): Promise<DiskStore> {
    const store = new DiskStore(options);
    await mkdir(store.dir, { recursive: true });
    await mkdir(store.quarantineDir, { recursive: true });
    store.report = await store.recover();
    return store;
  }

  get capacityBytes(): number {
    return this.capacity;
  }

  /** The operator changed the disk's capacity; writes in progress keep their reservation. */
  setCapacityBytes(capacityBytes: number): void {
    this.capacity = positiveInteger('capacityBytes', capacityBytes);
  }

  get usedBytes(): number {
    return this.used;
  }

  get egroupCount(): number {
    return this.index.size;
  }

  get recovery(): RecoveryReport {
    return this.report;
  }

  // ---- Operations ----------------------------------------------------------------

  /**
   * Applies a write as the replica's version `version`: the replica must be at
   * version - 1 (absent counts as 0), or already at `version` after this very write
   * (a retry, answered without writing again). Returns the extent's CRC32C.
   */
  async write(w: EgroupWrite): Promise<{ version: number; crc32c: number }> {
    const length = w.data.length;
    if (length === 0) throw this.error(ErrorCode.INVALID, `egroup ${w.egroup}: a write needs at least one byte of data`);
    if (w.version < 1) throw this.error(ErrorCode.INVALID, `egroup ${w.egroup}: version must be at least 1, not ${w.version}`);
    if (w.offset + length > this.limits.egroupSizeMaxBytes) {
      throw this.error(ErrorCode.INVALID, `egroup ${w.egroup}: a write of ${length} bytes at offset ${w.offset} ends beyond the largest extent group (${this.limits.egroupSizeMaxBytes} bytes)`);
    }
    // Computed before taking the lock: it depends on the request alone.
    const extent: Extent = { offset: w.offset, length, crc32c: crc32c(w.data) };
    return this.operation(w.egroup, async () => {
      const current = await this.sidecar(w.egroup);
      if (current !== undefined) {
        if (current.vdisk !== w.vdisk) {
          throw this.error(ErrorCode.CONFLICT, `egroup ${w.egroup} belongs to vdisk ${current.vdisk}; vdisk ${w.vdisk} may not write it`);
        }
        if (w.epoch < current.epoch) {
          throw this.error(ErrorCode.FENCED, `egroup ${w.egroup}: epoch ${w.epoch} of vdisk ${w.vdisk} is superseded; epoch ${current.epoch} has written here`);
        }
        if (w.version === current.version && sameExtent(current.last, extent)) {
          // A retry of the write that made this version: the data is there already.
          if (w.epoch > current.epoch) await this.store(w.egroup, { ...current, epoch: w.epoch });
          return { version: current.version, crc32c: extent.crc32c };
        }
        if (w.version !== current.version + 1) {
          // A newer owner has shown itself: from now its predecessor is fenced here,
          // whatever becomes of this request.
          if (w.epoch > current.epoch) await this.store(w.egroup, { ...current, epoch: w.epoch });
          const why = w.version === current.version ? ' with other data than the write that made it' : '';
          throw this.error(
            ErrorCode.CONFLICT,
            `egroup ${w.egroup} is at version ${current.version}; a write for version ${w.version}${why} needs it at version ${w.version - 1}`,
          );
        }
      } else if (w.version !== 1) {
        throw this.error(ErrorCode.CONFLICT, `egroup ${w.egroup} is at version 0 (no replica here); a write for version ${w.version} needs it at version ${w.version - 1}`);
      }

      const extents = current?.extents ?? [];
      const placement = placeExtent(extents, extent);
      if (placement.kind === 'overlap') {
        const other = placement.with;
        throw this.error(
          ErrorCode.INVALID,
          `egroup ${w.egroup}: a write of ${length} bytes at offset ${w.offset} overlaps part of the extent at offset ${other.offset} (${other.length} bytes); only a whole extent may be rewritten`,
        );
      }
      if (placement.kind === 'insert' && extents.length >= this.limits.extentsPerEgroupMax) {
        throw this.error(ErrorCode.INVALID, `egroup ${w.egroup} already holds ${extents.length} extents, the most one may hold`);
      }
      const oldSize = current?.sizeBytes ?? 0;
      const newSize = Math.max(oldSize, extentEnd(extent));
      const growth = newSize - oldSize;
      if (this.used + this.reserved + growth > this.capacity) {
        throw this.error(
          ErrorCode.NO_SPACE,
          `egroup ${w.egroup}: ${growth} more bytes would exceed the capacity (${this.used + this.reserved} of ${this.capacity} bytes in use or promised)`,
        );
      }
      this.reserved += growth;
      try {
        await this.writeData(w.egroup, w.offset, w.data);
        const next: Sidecar = {
          format: SIDECAR_FORMAT,
          vdisk: w.vdisk,
          epoch: Math.max(w.epoch, current?.epoch ?? 0),
          version: w.version,
          sizeBytes: newSize,
          extents: withExtent(extents, extent, placement),
          last: extent,
        };
        await this.store(w.egroup, next);
        this.used += growth;
      } finally {
        this.reserved -= growth;
      }
      return { version: w.version, crc32c: extent.crc32c };
    });
  }

  /** Reads one extent exactly as it was written, after checking its CRC32C. */
  async read(r: EgroupRead): Promise<Uint8Array> {
    return this.operation(r.egroup, async () => {
      const current = await this.sidecar(r.egroup);
      if (current === undefined) throw this.notFound(r.egroup);
      const i = findExtent(current.extents, r.offset, r.length);
      if (i < 0) {
        throw this.error(ErrorCode.INVALID, `egroup ${r.egroup} has no extent of ${r.length} bytes at offset ${r.offset}; a read names one extent exactly as it was written`);
      }
      const extent = current.extents[i]!;
      const data = Buffer.allocUnsafe(extent.length);
      let got = 0;
      try {
        const handle = await open(dataPath(this.dir, r.egroup), 'r');
        try {
          while (got < data.length) {
            const { bytesRead } = await handle.read(data, got, data.length - got, extent.offset + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
        } finally {
          await handle.close();
        }
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw err;
        throw this.checksumError(r.egroup, extent, 'its data file is missing');
      }
      if (got < extent.length) throw this.checksumError(r.egroup, extent, `the data file ends after ${got} of its ${extent.length} bytes`);
      const actual = crc32c(data);
      if (actual !== extent.crc32c) throw this.checksumError(r.egroup, extent, `stored CRC32C ${hex(extent.crc32c)}, read ${hex(actual)}`);
      return new Uint8Array(data.buffer, data.byteOffset, data.length);
    });
  }

  async stat(egroup: bigint): Promise<{ version: number; sizeBytes: number }> {
    return this.operation(egroup, async () => {
      const summary = this.index.get(egroup);
      if (summary === undefined) throw this.notFound(egroup);
      return { version: summary.version, sizeBytes: summary.sizeBytes };
    });
  }

  /**
   * Removes a replica. Deleting one that is not here succeeds (and says so), so a
   * garbage collector may retry after a lost reply.
   */
  async delete(egroup: bigint): Promise<{ deleted: boolean }> {
    return this.operation(egroup, async () => {
      const summary = this.index.get(egroup);
      if (summary === undefined) return { deleted: false };
      // The sidecar goes first and durably: a crash before the data file is removed
      // leaves an orphan data file, which recovery removes.
      try {
        await unlink(sidecarPath(this.dir, egroup));
        await syncDirectory(this.dir);
        await unlink(dataPath(this.dir, egroup)).catch((err: unknown) => {
          if (errno(err) !== 'ENOENT') throw err;
        });
      } catch (err) {
        // Whether the sidecar is still there is unknown: forget the cached copy.
        this.cache.delete(egroup);
        throw this.ioError(err, `egroup ${egroup}: deleting it`);
      }
      this.index.delete(egroup);
      this.cache.delete(egroup);
      this.used -= summary.sizeBytes;
      return { deleted: true };
    });
  }

  /** Refuses new operations and waits for those in progress. */
  close(): Promise<void> {
    this.closed ??= this.pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.idle = resolve));
    return this.closed;
  }

  // ---- Internals -------------------------------------------------------------------

  /** Admission, then the extent group's lock, then the disk's I/O slots. */
  private async operation<T>(egroup: bigint, fn: () => Promise<T>): Promise<T> {
    if (this.closed !== undefined) throw this.error(ErrorCode.UNAVAILABLE, 'is closing');
    if (this.broken !== undefined) throw this.error(ErrorCode.UNAVAILABLE, `is out of service until its extent store restarts: ${this.broken}`);
    if (this.pending >= this.limits.opsPendingMax) throw this.error(ErrorCode.QUEUE_FULL, `${this.pending} operations already waiting or running`);
    this.pending++;
    try {
      // The lock comes before the I/O slot: waiters on a busy extent group must not
      // hold slots that other extent groups could use.
      return await this.locks.run(egroup.toString(), () => this.io.run(fn));
    } finally {
      this.pending--;
      if (this.pending === 0 && this.idle !== undefined) this.idle();
    }
  }

  /** The decoded sidecar of a replica, or undefined when the disk has none. */
  private async sidecar(egroup: bigint): Promise<Sidecar | undefined> {
    const cached = this.cache.get(egroup);
    if (cached !== undefined) {
      // Re-inserting moves it to the most recently used end.
      this.cache.delete(egroup);
      this.cache.set(egroup, cached);
      return cached;
    }
    if (!this.index.has(egroup)) return undefined;
    let loaded: Sidecar;
    try {
      loaded = await readSidecar(sidecarPath(this.dir, egroup));
    } catch (err) {
      // It was sound at open and only this store writes it: the medium has failed.
      throw this.error(ErrorCode.CHECKSUM, `egroup ${egroup}: its sidecar is unreadable: ${(err as Error).message}`, err);
    }
    this.remember(egroup, loaded);
    return loaded;
  }

  private remember(egroup: bigint, sidecar: Sidecar): void {
    this.cache.delete(egroup);
    this.cache.set(egroup, sidecar);
    while (this.cache.size > this.limits.sidecarCacheMax) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
  }

  /** Writes the sidecar durably, then makes it the replica's state. */
  private async store(egroup: bigint, next: Sidecar): Promise<void> {
    try {
      await writeSidecar(this.dir, egroup, next);
    } catch (err) {
      // The old sidecar may or may not have been replaced: read it again next time.
      this.cache.delete(egroup);
      throw this.ioError(err, `egroup ${egroup}: writing its sidecar`);
    }
    this.index.set(egroup, { version: next.version, sizeBytes: next.sizeBytes });
    this.remember(egroup, next);
  }

  private async writeData(egroup: bigint, offset: number, data: Uint8Array): Promise<void> {
    try {
      // O_CREAT without O_TRUNC: the first write of a new replica creates the file,
      // later ones write into it at their offset (pwrite), never at its end.
      const handle = await open(dataPath(this.dir, egroup), fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
      try {
        let written = 0;
        while (written < data.length) {
          const { bytesWritten } = await handle.write(data, written, data.length - written, offset + written);
          assert(bytesWritten > 0, 'a file write made no progress');
          written += bytesWritten;
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (err) {
      throw this.ioError(err, `egroup ${egroup}: writing ${data.length} bytes at offset ${offset}`);
    }
  }

  /** A file-system failure as the reply should carry it; a failed fsync also puts the disk out of service. */
  private ioError(err: unknown, what: string): unknown {
    if (err instanceof StrataError) return err;
    const syscall = (err as NodeJS.ErrnoException | undefined)?.syscall;
    if ((syscall === 'fsync' || syscall === 'fdatasync') && this.broken === undefined) {
      // After a failed fsync Linux may have dropped the dirty pages and a later fsync
      // reports success, so nothing this process wrote to the disk is trusted any more.
      this.broken = `an fsync failed: ${(err as Error).message}`;
      this.log?.error({ err, disk: this.diskId.toString() }, 'fsync failed; the disk is out of service until the extent store restarts');
    }
    const code = errno(err);
    if (code === 'ENOSPC' || code === 'EDQUOT') return this.error(ErrorCode.NO_SPACE, `${what}: the file system is full`, err);
    return new Error(`disk ${this.diskId} at ${this.path}: ${what}: ${(err as Error).message}`, { cause: err });
  }

  private error(code: ErrorCode, message: string, cause?: unknown): StrataError {
    return new StrataError(code, `disk ${this.diskId}: ${message}`, cause === undefined ? {} : { cause });
  }

  private notFound(egroup: bigint): StrataError {
    return this.error(ErrorCode.NOT_FOUND, `egroup ${egroup} has no replica here`);
  }

  private checksumError(egroup: bigint, extent: Extent, why: string): StrataError {
    return this.error(ErrorCode.CHECKSUM, `egroup ${egroup}: the extent at offset ${extent.offset} (${extent.length} bytes) failed its check: ${why}`);
  }

  // ---- Recovery ------------------------------------------------------------------

  /**
   * Rebuilds the index from the sidecars. A temporary sidecar is a write cut short
   * (never acknowledged): removed. A data file without a sidecar is a first write
   * cut short or a delete cut short: removed. A data file longer than its sidecar
   * says holds an unacknowledged write past the end: cut back. A sidecar that does
   * not decode, or whose data file is missing, is damage: moved to quarantine/.
   */
  private async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { egroups: 0, usedBytes: 0, removedTempFiles: [], removedOrphans: [], truncated: [], quarantined: [] };
    const names = await readdir(this.dir);
    const dataFiles = new Set<string>();
    const sidecars: bigint[] = [];
    for (const name of names) {
      if (name.endsWith(TEMP_SUFFIX)) {
        await unlink(join(this.dir, name));
        report.removedTempFiles.push(name);
        continue;
      }
      const match = EGROUP_FILE.exec(name);
      if (match === null) {
        this.log?.warn({ disk: this.diskId.toString(), file: name }, 'unknown file in the egroups directory left alone');
        continue;
      }
      if (match[2] === 'eg') dataFiles.add(match[1]!);
      else sidecars.push(BigInt(match[1]!));
    }

    // Sidecars are read a few at a time: a disk may hold many thousands.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < sidecars.length) {
        const egroup = sidecars[next++]!;
        const key = egroup.toString();
        const hasData = dataFiles.delete(key);
        let sidecar: Sidecar;
        try {
          sidecar = await readSidecar(sidecarPath(this.dir, egroup));
        } catch (err) {
          await this.quarantine(egroup, hasData, `its sidecar is unreadable: ${(err as Error).message}`, report);
          continue;
        }
        if (!hasData) {
          await this.quarantine(egroup, false, 'its data file is missing', report);
          continue;
        }
        const { size } = await stat(dataPath(this.dir, egroup));
        if (size > sidecar.sizeBytes) {
          await truncate(dataPath(this.dir, egroup), sidecar.sizeBytes);
          report.truncated.push(`${key}${DATA_SUFFIX}`);
        } else if (size < sidecar.sizeBytes) {
          // Reads of the missing tail will fail their checksum; the replica stays so
          // its intact extents remain readable.
          this.log?.error({ disk: this.diskId.toString(), egroup: key, size, sizeBytes: sidecar.sizeBytes }, 'data file shorter than its sidecar says');
        }
        this.index.set(egroup, { version: sidecar.version, sizeBytes: sidecar.sizeBytes });
        this.used += sidecar.sizeBytes;
      }
    };
    await Promise.all(Array.from({ length: this.limits.recoveryReadsInFlightMax }, worker));

    for (const key of dataFiles) {
      await unlink(join(this.dir, `${key}${DATA_SUFFIX}`));
      report.removedOrphans.push(`${key}${DATA_SUFFIX}`);
    }
    if (report.removedTempFiles.length + report.removedOrphans.length + report.quarantined.length > 0) await syncDirectory(this.dir);

    // Quarantined bytes occupy the disk until an operator removes them.
    for (const name of await readdir(this.quarantineDir)) {
      this.used += (await stat(join(this.quarantineDir, name))).size;
    }
    report.egroups = this.index.size;
    report.usedBytes = this.used;
    return report;
  }

  private async quarantine(egroup: bigint, hasData: boolean, why: string, report: RecoveryReport): Promise<void> {
    this.log?.error({ disk: this.diskId.toString(), egroup: egroup.toString(), why }, 'damaged extent-group replica moved to quarantine');
    // A timestamp keeps an earlier quarantined copy of the same extent group.
    const tag = `${Date.now()}`;
    const files = [`${egroup}${SIDECAR_SUFFIX}`, ...(hasData ? [`${egroup}${DATA_SUFFIX}`] : [])];
    for (const file of files) await rename(join(this.dir, file), join(this.quarantineDir, `${file}.${tag}`));
    await syncDirectory(this.quarantineDir);
    report.quarantined.push(`${egroup}: ${why}`);
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
