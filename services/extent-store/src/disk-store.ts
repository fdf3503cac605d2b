// The storage engine of one disk: extent-group replicas as `<path>/egroups/<id>.eg`
// (data) plus `<id>.meta` (sidecar), written in place piece by piece, versioned and
// fenced by epoch, with a CRC32C per slice checked on every read of any range;
// capacity accounting; recovery at open.
//
// A replica is a sparse byte array of `sizeBytes` bytes cut into slices (slices.ts).
// The data file holds the bytes at their offsets; bytes past its end read as zeros.
//
// Durability order of a write: for each touched slice, read its old bytes if the
// pieces cover it only in part (and check them against their CRC), merge the pieces,
// pwrite; fdatasync the data file; then store the new version, size, CRCs and digest
// in the sidecar: one pwrite of a record into the slot not holding the current one,
// and an fdatasync of the sidecar file (sidecar.ts; a new replica, or a sidecar that
// outgrew its slots or is of format 2, is replaced atomically instead: temp, fsync,
// rename, fsync of the directory); then reply. So an acknowledged write is on disk
// with the sidecar that describes it. A crash during the sidecar's update tears at
// most the slot being written, which fails its CRC32C: the replica reads at its old
// version.
//
// Crash consistency: writes are in place, so a crash (or a failed pwrite) after some
// slices were written but before the new sidecar is durable leaves the replica at its
// old version with slices whose bytes no longer match their CRC. Reads of those slices
// answer CHECKSUM, and so does a later write that covers such a slice only in part
// (its old bytes cannot be trusted, and merging new bytes into them would launder the
// damage under a fresh checksum); a write that covers the whole slice repairs it. A
// controller whose drain write a replica refuses with CHECKSUM stops writing that
// extent group and moves the blocks it drains to a new one (extent-groups.ts); the
// damaged replica must be repaired from another. Every slice outside the write, and
// every slice of any other extent group, is unaffected.
import { constants as fsConstants, readSync } from 'node:fs';
import { type FileHandle, mkdir, readdir, rename, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, StrataError, assert } from '@strata/errors';
import { EG_READ_BYTES_MAX, EG_WRITE_PIECES_MAX, type EgPiece } from '@strata/proto';
import { KeyedLock, Semaphore } from './concurrency';
import { OpenFiles } from './open-files';
import {
  DATA_SUFFIX,
  SIDECAR_FORMAT,
  SIDECAR_SUFFIX,
  SidecarFormatError,
  TEMP_SUFFIX,
  dataPath,
  readSidecar,
  sidecarPath,
  syncDirectory,
  updateSidecar,
  type Sidecar,
  type StoredSidecar,
} from './sidecar';
import {
  SLICE_BYTES_DEFAULT,
  SLICES_PER_EGROUP_MAX,
  applyPieces,
  crcAt,
  grownCrcs,
  pieceLength,
  piecesCrc,
  planWrite,
  type SliceRun,
  sameDigest,
  setCrc,
  sliceBytesProblem,
  sliceCount,
  slicesOf,
  writeDigest,
} from './slices';

const MiB = 1024 * 1024;

/**
 * Most bytes of slices one write holds in memory at once: the touched slices are
 * merged and written a run at a time, so a zeros piece over a whole extent group
 * does not allocate the extent group.
 */
const WRITE_RUN_BYTES_MAX = MiB;

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
  /** Largest extent-group replica: a write to a larger `sizeBytes` is INVALID (design: 16-64 MiB). */
  egroupSizeMaxBytes?: number;
  /** Slice size of replicas created from now on (each keeps the one it was made with). */
  sliceBytes?: number;
  /** Operations that do file I/O at once. */
  opsInFlightMax?: number;
  /** Operations admitted (waiting or running); beyond it a request gets QUEUE_FULL. */
  opsPendingMax?: number;
  /** Sidecars kept decoded in memory (least recently used are dropped). */
  sidecarCacheMax?: number;
  /** Data files kept open (least recently used idle ones are closed). */
  openFilesMax?: number;
  /** Sidecars read at once during recovery. */
  recoveryReadsInFlightMax?: number;
  /**
   * Reads of at most this many bytes (whole slices) use a synchronous pread on the
   * event loop instead of the libuv threadpool; 0: every read goes to the threadpool.
   * See DEFAULT_SYNC_READ_MAX_BYTES.
   */
  syncReadMaxBytes?: number;
  log?: DiskStoreLogger;
}

/** An extent-group write, as egWriteRequest carries it (the disk is already chosen). */
export interface EgroupWrite {
  egroup: bigint;
  vdisk: bigint;
  epoch: number;
  version: number;
  sizeBytes: number;
  pieces: readonly EgPiece[];
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
  /** Data files longer than their sidecar's sizeBytes (growth never acknowledged); cut back. */
  truncated: string[];
  /** Damaged or format-1 replicas moved to quarantine/ (their bytes still count as used). */
  quarantined: string[];
}

interface Summary {
  version: number;
  sizeBytes: number;
  /**
   * Wall-clock time of the replica's last write (after a restart, of its files): the
   * curator's garbage collection leaves a replica younger than its grace period alone,
   * as the work of an operation still in flight.
   */
  mtimeMs: number;
}

/** One replica as `list` returns it. */
export interface ListedReplica {
  egroup: bigint;
  sizeBytes: number;
  version: number;
  mtimeMs: number;
}

/**
 * Small reads are synchronous by default. A pread of a slice that is in the page cache
 * is a copy of a few microseconds; handing it to the libuv threadpool costs the event
 * loop far more (measured with 4 KiB random reads at QD32 on 2 cores: about 30 µs of
 * main-thread time per read through the threadpool against about 7 µs for the pread
 * itself, and 9.5k against 15.6k IOPS end to end). The price: a read that must wait
 * for the device holds up the process for that long, which on an SSD is some tens of
 * microseconds. On slow disks (spinning ones, network block devices), set it to 0.
 */
export const DEFAULT_SYNC_READ_MAX_BYTES = 64 * 1024;

const defaults = {
  egroupSizeMaxBytes: 64 * MiB,
  sliceBytes: SLICE_BYTES_DEFAULT,
  opsInFlightMax: 16,
  opsPendingMax: 1024,
  sidecarCacheMax: 1024,
  openFilesMax: 256,
  recoveryReadsInFlightMax: 16,
  syncReadMaxBytes: DEFAULT_SYNC_READ_MAX_BYTES,
};

const EGROUP_FILE = /^(\d{1,20})\.(eg|meta)$/;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Zeros what a read of `got` bytes at `offset` left of `into`, and the bytes past
 * `sizeBytes` (a failed write may have left bytes there; they are not part of the replica).
 */
function zeroPastEnd(into: Buffer, got: number, offset: number, sizeBytes: number): void {
  const valid = Math.max(0, Math.min(got, sizeBytes - offset));
  if (valid < into.length) into.fill(0, valid);
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
  /** Decoded sidecars with where their files hold them, least recently used first. */
  private readonly cache = new Map<bigint, StoredSidecar>();
  private readonly files: OpenFiles<bigint>;
  private readonly locks = new KeyedLock<bigint>();
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
  /** Reused by every synchronous read: nothing awaits between its pread and its copy. */
  private scratch: Buffer | undefined;

  private constructor(options: DiskStoreOptions) {
    this.diskId = options.diskId;
    this.path = options.path;
    this.dir = join(options.path, 'egroups');
    this.quarantineDir = join(options.path, 'quarantine');
    this.capacity = positiveInteger('capacityBytes', options.capacityBytes);
    this.limits = {
      egroupSizeMaxBytes: positiveInteger('egroupSizeMaxBytes', options.egroupSizeMaxBytes ?? defaults.egroupSizeMaxBytes),
      sliceBytes: options.sliceBytes ?? defaults.sliceBytes,
      opsInFlightMax: positiveInteger('opsInFlightMax', options.opsInFlightMax ?? defaults.opsInFlightMax),
      opsPendingMax: positiveInteger('opsPendingMax', options.opsPendingMax ?? defaults.opsPendingMax),
      sidecarCacheMax: positiveInteger('sidecarCacheMax', options.sidecarCacheMax ?? defaults.sidecarCacheMax),
      openFilesMax: positiveInteger('openFilesMax', options.openFilesMax ?? defaults.openFilesMax),
      recoveryReadsInFlightMax: positiveInteger('recoveryReadsInFlightMax', options.recoveryReadsInFlightMax ?? defaults.recoveryReadsInFlightMax),
      syncReadMaxBytes: options.syncReadMaxBytes ?? defaults.syncReadMaxBytes,
    };
    assert(Number.isSafeInteger(this.limits.syncReadMaxBytes) && this.limits.syncReadMaxBytes >= 0, `syncReadMaxBytes must be a whole number of bytes, 0 or more, not ${this.limits.syncReadMaxBytes}`);
    const problem = sliceBytesProblem(this.limits.sliceBytes);
    assert(problem === undefined, `sliceBytes ${problem}`);
    assert(
      sliceCount(this.limits.egroupSizeMaxBytes, this.limits.sliceBytes) <= SLICES_PER_EGROUP_MAX,
      `egroupSizeMaxBytes ${this.limits.egroupSizeMaxBytes} over slices of ${this.limits.sliceBytes} bytes makes more than ${SLICES_PER_EGROUP_MAX} slices per extent group`,
    );
    this.io = new Semaphore(this.limits.opsInFlightMax);
    this.files = new OpenFiles(this.limits.openFilesMax, (err) => this.log?.warn({ err, disk: this.diskId.toString() }, 'closing an idle data file failed'));
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

  /** Data files open right now: for tests and diagnostics. */
  get openFileCount(): number {
    return this.files.size;
  }

  get recovery(): RecoveryReport {
    return this.report;
  }

  // ---- Operations ----------------------------------------------------------------

  /**
   * Writes `pieces` in place and makes the replica's version `version` (see
   * egWriteRequest). The replica grows to `sizeBytes` if it is smaller; a smaller
   * `sizeBytes` than the replica has is no growth, not a shrink, because a controller
   * that retries after a partial failure may hold an older view of the size than a
   * replica that took the failed write. Every piece must end within the request's
   * own `sizeBytes`, so whether a write is valid never depends on the replica.
   * Returns the CRC32C of the pieces' bytes in request order.
   */
  async write(w: EgroupWrite): Promise<{ version: number; crc32c: number }> {
    // Validation depends on the request alone and changes nothing.
    const invalid = (why: string): StrataError => this.error(ErrorCode.INVALID, `egroup ${w.egroup}: ${why}`);
    if (w.version < 1) throw invalid(`version must be at least 1, not ${w.version}`);
    if (w.sizeBytes > this.limits.egroupSizeMaxBytes) {
      throw invalid(`sizeBytes ${w.sizeBytes} is beyond the largest extent group (${this.limits.egroupSizeMaxBytes} bytes)`);
    }
    if (w.pieces.length < 1 || w.pieces.length > EG_WRITE_PIECES_MAX) throw invalid(`a write carries 1 to ${EG_WRITE_PIECES_MAX} pieces, not ${w.pieces.length}`);
    for (const [i, piece] of w.pieces.entries()) {
      const length = pieceLength(piece);
      if (length === 0) throw invalid(`piece ${i} at offset ${piece.offset} is empty`);
      if (piece.offset + length > w.sizeBytes) {
        throw invalid(`piece ${i} (${length} bytes at offset ${piece.offset}) ends at ${piece.offset + length}, beyond the extent group's sizeBytes ${w.sizeBytes}`);
      }
    }
    // Computed before taking the lock: they depend on the request alone.
    const replyCrc = piecesCrc(w.pieces);
    const digest = writeDigest(w.sizeBytes, w.pieces);

    return this.operation(w.egroup, 'exclusive', async () => {
      const stored = await this.sidecar(w.egroup);
      const current = stored?.sidecar;
      if (current !== undefined) {
        if (current.vdisk !== w.vdisk) {
          throw this.error(ErrorCode.CONFLICT, `egroup ${w.egroup} belongs to vdisk ${current.vdisk}; vdisk ${w.vdisk} may not write it`);
        }
        if (w.epoch < current.epoch) {
          throw this.error(ErrorCode.FENCED, `egroup ${w.egroup}: epoch ${w.epoch} of vdisk ${w.vdisk} is superseded; epoch ${current.epoch} has written here`);
        }
        if (w.version <= current.version) {
          // A newer owner has shown itself: from now its predecessor is fenced here,
          // whatever becomes of this request.
          if (w.epoch > current.epoch) await this.store(w.egroup, { ...current, epoch: w.epoch }, stored);
          // A retry of the write that made this version: its data is there already.
          if (w.version === current.version && sameDigest(current.digest, digest)) return { version: current.version, crc32c: replyCrc };
          const why = w.version === current.version ? 'is another write than the one that made it' : 'is below it';
          throw this.error(ErrorCode.CONFLICT, `egroup ${w.egroup} is at version ${current.version}; a write for version ${w.version} ${why}`);
        }
      }

      const oldSize = current?.sizeBytes ?? 0;
      const newSize = Math.max(oldSize, w.sizeBytes);
      const growth = newSize - oldSize;
      // Only growth needs room: a write in place must still work on a disk whose
      // capacity was lowered below its use.
      if (growth > 0 && this.used + this.reserved + growth > this.capacity) {
        throw this.error(
          ErrorCode.NO_SPACE,
          `egroup ${w.egroup}: ${growth} more bytes would exceed the capacity (${this.used + this.reserved} of ${this.capacity} bytes in use or promised)`,
        );
      }
      this.reserved += growth;
      try {
        const sliceBytes = current?.sliceBytes ?? this.limits.sliceBytes;
        const crcs = grownCrcs(current?.crcs ?? new Uint8Array(0), sliceCount(newSize, sliceBytes), sliceBytes);
        await this.applyPieces(w, current, newSize, sliceBytes, crcs);
        const next: Sidecar = {
          format: SIDECAR_FORMAT,
          vdisk: w.vdisk,
          epoch: Math.max(w.epoch, current?.epoch ?? 0),
          version: w.version,
          sizeBytes: newSize,
          sliceBytes,
          crcs,
          digest,
        };
        await this.store(w.egroup, next, stored);
        this.used += growth;
      } finally {
        this.reserved -= growth;
      }
      return { version: w.version, crc32c: replyCrc };
    });
  }

  /**
   * Reads any range below the replica's size, checking every slice the range touches
   * against its CRC32C first. One pread of those slices, one CRC32C per slice.
   */
  async read(r: EgroupRead): Promise<Uint8Array> {
    if (r.length < 1 || r.length > EG_READ_BYTES_MAX) {
      throw this.error(ErrorCode.INVALID, `egroup ${r.egroup}: a read is 1 to ${EG_READ_BYTES_MAX} bytes long, not ${r.length}`);
    }
    return this.operation(r.egroup, 'shared', async () => {
      const current = (await this.sidecar(r.egroup))?.sidecar;
      if (current === undefined) throw this.notFound(r.egroup);
      if (r.offset + r.length > current.sizeBytes) {
        throw this.error(ErrorCode.INVALID, `egroup ${r.egroup}: a read of ${r.length} bytes at offset ${r.offset} ends beyond its ${current.sizeBytes} bytes`);
      }
      const S = current.sliceBytes;
      const { first, last } = slicesOf(r.offset, r.length, S);
      // Whole slices, because each CRC covers a whole slice: for a 4 KiB read, one
      // slice (two when it straddles a boundary), never a whole extent.
      const bytes = (last - first + 1) * S;
      const what = `reading ${r.length} bytes at offset ${r.offset}`;
      const check = (slices: Buffer): void => {
        for (let i = first; i <= last; i++) this.checkSlice(r.egroup, current, i, slices.subarray((i - first) * S, (i - first + 1) * S), '');
      };
      const wanted = (slices: Buffer): Buffer => slices.subarray(r.offset - first * S, r.offset - first * S + r.length);
      if (bytes <= this.limits.syncReadMaxBytes) {
        return this.withFile(r.egroup, false, what, async (handle) => {
          // Synchronous from the pread to the copy, so one scratch buffer serves every
          // read of this store: a 4 KiB read allocates its 4 KiB answer, not the 32 KiB
          // of slices (at 15k reads a second those kept the garbage collector busy).
          const slices = this.scratchOf(bytes);
          this.readSlicesSync(handle, slices, first * S, current.sizeBytes);
          check(slices);
          return Buffer.from(wanted(slices));
        });
      }
      const slices = Buffer.allocUnsafe(bytes);
      await this.withFile(r.egroup, false, what, (handle) => this.readSlices(handle, slices, first * S, current.sizeBytes));
      check(slices);
      // A view, not a copy: the slices' buffer belongs to this read alone.
      return wanted(slices);
    });
  }

  /** The first `bytes` of the store's scratch buffer for synchronous reads (at most syncReadMaxBytes). */
  private scratchOf(bytes: number): Buffer {
    this.scratch ??= Buffer.allocUnsafeSlow(this.limits.syncReadMaxBytes);
    return this.scratch.subarray(0, bytes);
  }

  async stat(egroup: bigint): Promise<{ version: number; sizeBytes: number }> {
    return this.operation(egroup, 'shared', async () => {
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
    return this.operation(egroup, 'exclusive', async () => {
      const summary = this.index.get(egroup);
      if (summary === undefined) return { deleted: false };
      // The sidecar goes first and durably: a crash before the data file is removed
      // leaves an orphan data file, which recovery removes.
      try {
        await this.files.drop(egroup);
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

  /**
   * One page of the replicas on the disk, ascending by extent-group id, after `after`
   * (exclusive). From the in-memory index, so no file is read: a replica whose first
   * write is still in progress is not listed yet.
   */
  list(after: bigint | undefined, limit: number): { replicas: ListedReplica[]; more: boolean } {
    assert(Number.isSafeInteger(limit) && limit > 0, `limit must be a positive whole number, not ${limit}`);
    if (this.closed !== undefined) throw this.error(ErrorCode.UNAVAILABLE, 'is closing');
    if (this.broken !== undefined) throw this.error(ErrorCode.UNAVAILABLE, `is out of service until its extent store restarts: ${this.broken}`);
    // Sorting the whole index per page costs O(n log n) for n replicas; a disk holds
    // some thousands (64 MiB each), and the curator lists once per scan.
    const ids = [...this.index.keys()].filter((id) => after === undefined || id > after).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const replicas = ids.slice(0, limit).map((egroup) => {
      const s = this.index.get(egroup)!;
      return { egroup, sizeBytes: s.sizeBytes, version: s.version, mtimeMs: s.mtimeMs };
    });
    return { replicas, more: ids.length > limit };
  }

  /** Refuses new operations, waits for those in progress, then closes the open data files. */
  close(): Promise<void> {
    this.closed ??= (this.pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.idle = resolve))).then(() => this.files.closeAll());
    return this.closed;
  }

  // ---- Internals -------------------------------------------------------------------

  /** Admission, then the extent group's lock, then the disk's I/O slots. */
  private async operation<T>(egroup: bigint, mode: 'shared' | 'exclusive', fn: () => Promise<T>): Promise<T> {
    if (this.closed !== undefined) throw this.error(ErrorCode.UNAVAILABLE, 'is closing');
    if (this.broken !== undefined) throw this.error(ErrorCode.UNAVAILABLE, `is out of service until its extent store restarts: ${this.broken}`);
    if (this.pending >= this.limits.opsPendingMax) throw this.error(ErrorCode.QUEUE_FULL, `${this.pending} operations already waiting or running`);
    this.pending++;
    try {
      // The lock comes before the I/O slot: waiters on a busy extent group must not
      // hold slots that other extent groups could use.
      const run = (): Promise<T> => this.io.run(fn);
      return await (mode === 'shared' ? this.locks.runShared(egroup, run) : this.locks.run(egroup, run));
    } finally {
      this.pending--;
      if (this.pending === 0 && this.idle !== undefined) this.idle();
    }
  }

  /** The decoded sidecar of a replica, or undefined when the disk has none. */
  private async sidecar(egroup: bigint): Promise<StoredSidecar | undefined> {
    const cached = this.cache.get(egroup);
    if (cached !== undefined) {
      // Re-inserting moves it to the most recently used end.
      this.cache.delete(egroup);
      this.cache.set(egroup, cached);
      return cached;
    }
    if (!this.index.has(egroup)) return undefined;
    let loaded: StoredSidecar;
    try {
      loaded = await readSidecar(sidecarPath(this.dir, egroup));
    } catch (err) {
      // It was sound at open and only this store writes it: the medium has failed.
      throw this.error(ErrorCode.CHECKSUM, `egroup ${egroup}: its sidecar is unreadable: ${(err as Error).message}`, err);
    }
    this.remember(egroup, loaded);
    return loaded;
  }

  private remember(egroup: bigint, stored: StoredSidecar): void {
    this.cache.delete(egroup);
    this.cache.set(egroup, stored);
    while (this.cache.size > this.limits.sidecarCacheMax) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
  }

  /** Writes the sidecar durably over `current` (undefined for a new replica), then makes it the replica's state. */
  private async store(egroup: bigint, next: Sidecar, current: StoredSidecar | undefined): Promise<void> {
    let stored: StoredSidecar;
    try {
      stored = await updateSidecar(this.dir, egroup, next, current);
    } catch (err) {
      // The old sidecar may or may not have been replaced: read it again next time.
      this.cache.delete(egroup);
      throw this.ioError(err, `egroup ${egroup}: writing its sidecar`);
    }
    this.index.set(egroup, { version: next.version, sizeBytes: next.sizeBytes, mtimeMs: Date.now() });
    this.remember(egroup, stored);
  }

  /** Runs `fn` with the replica's open data file; a missing file is damage (CHECKSUM). */
  private async withFile<T>(egroup: bigint, create: boolean, what: string, fn: (handle: FileHandle) => Promise<T>): Promise<T> {
    // O_CREAT (never O_TRUNC) only for the first write of a replica: a data file that
    // vanished under an existing replica must not come back as zeros that pass checks.
    const flags = fsConstants.O_RDWR | (create ? fsConstants.O_CREAT : 0);
    try {
      return await this.files.use(egroup, dataPath(this.dir, egroup), flags, fn);
    } catch (err) {
      if (err instanceof StrataError) throw err;
      if (errno(err) === 'ENOENT' && !create) throw this.error(ErrorCode.CHECKSUM, `egroup ${egroup}: its data file is missing`, err);
      throw this.ioError(err, `egroup ${egroup}: ${what}`);
    }
  }

  /**
   * Fills `into` with the replica's bytes from `offset` on: one pread, zeros past the
   * data file's end and past `sizeBytes` (a failed write may have left bytes there;
   * they are not part of the replica). Synchronous up to syncReadMaxBytes.
   */
  private async readSlices(handle: FileHandle, into: Buffer, offset: number, sizeBytes: number): Promise<void> {
    if (into.length <= this.limits.syncReadMaxBytes) {
      this.readSlicesSync(handle, into, offset, sizeBytes);
      return;
    }
    let got = 0;
    while (got < into.length) {
      const { bytesRead } = await handle.read(into, got, into.length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    zeroPastEnd(into, got, offset, sizeBytes);
  }

  /** readSlices as a synchronous pread on the event loop (see DEFAULT_SYNC_READ_MAX_BYTES). */
  private readSlicesSync(handle: FileHandle, into: Buffer, offset: number, sizeBytes: number): void {
    let got = 0;
    while (got < into.length) {
      const bytesRead = readSync(handle.fd, into, got, into.length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    zeroPastEnd(into, got, offset, sizeBytes);
  }


  private checkSlice(egroup: bigint, sidecar: Sidecar, slice: number, bytes: Uint8Array, when: string): void {
    const stored = crcAt(sidecar.crcs, slice);
    const actual = crc32c(bytes);
    if (actual !== stored) {
      const S = sidecar.sliceBytes;
      throw this.error(
        ErrorCode.CHECKSUM,
        `egroup ${egroup}: slice ${slice} (bytes ${slice * S} to ${(slice + 1) * S - 1}) failed its check${when}: stored CRC32C ${hex(stored)}, read ${hex(actual)}`,
      );
    }
  }

  /**
   * Merges the pieces into the touched slices, writes them in place a run at a time,
   * sets their new CRCs in `crcs` (a copy the caller stores afterwards), and
   * fdatasyncs. `old` is the replica's sidecar, undefined for its first write.
   */
  private async applyPieces(w: EgroupWrite, old: Sidecar | undefined, newSize: number, S: number, crcs: Uint8Array): Promise<void> {
    const oldSize = old?.sizeBytes ?? 0;
    const runs = planWrite(w.pieces, S, newSize, Math.max(1, Math.floor(WRITE_RUN_BYTES_MAX / S)));
    await this.withFile(w.egroup, old === undefined, `writing ${w.pieces.length} pieces`, async (handle) => {
      if (newSize > oldSize) {
        // Growth assumes nothing lies past the old end (new slices get the CRC of
        // zeros). A write that failed after growing the file could have left bytes
        // there, and a first write may find the orphan of an earlier one: cut them off.
        const { size } = await handle.stat();
        if (size > oldSize) await handle.truncate(oldSize);
      }
      for (const run of runs) {
        const runStart = run.first * S;
        const buffer = Buffer.allocUnsafe(run.count * S);
        await this.readPartialSlices(w.egroup, handle, old, S, run, buffer);
        // Every other byte of the run is covered by the pieces, except past the
        // replica's end, which is zeros.
        if ((run.first + run.count) * S > newSize) buffer.fill(0, Math.max(0, newSize - runStart));
        applyPieces(buffer, runStart, w.pieces, run.pieces);
        for (let s = run.first; s < run.first + run.count; s++) setCrc(crcs, s, crc32c(buffer.subarray((s - run.first) * S, (s - run.first + 1) * S)));
        // Never past the replica's end: the data file stays at most sizeBytes long.
        const length = Math.min(buffer.length, newSize - runStart);
        let written = 0;
        while (written < length) {
          const { bytesWritten } = await handle.write(buffer, written, length - written, runStart + written);
          assert(bytesWritten > 0, 'a file write made no progress');
          written += bytesWritten;
        }
      }
      await handle.datasync();
    });
  }

  /**
   * Fills the run's partially covered slices in `buffer` with their old bytes, a group
   * of consecutive ones per pread, and checks each against its CRC before new bytes
   * are merged in: a damaged slice must answer CHECKSUM, not get a fresh checksum.
   * Slices at or past the old end are zeros: nothing to read or check.
   */
  private async readPartialSlices(egroup: bigint, handle: FileHandle, old: Sidecar | undefined, S: number, run: SliceRun, buffer: Buffer): Promise<void> {
    const oldSize = old?.sizeBytes ?? 0;
    for (let p = 0; p < run.partial.length; ) {
      let q = p + 1;
      while (q < run.partial.length && run.partial[q] === run.partial[q - 1]! + 1) q++;
      const from = run.partial[p]!;
      const to = run.partial[q - 1]! + 1;
      const part = buffer.subarray((from - run.first) * S, (to - run.first) * S);
      if (old === undefined || from * S >= oldSize) {
        part.fill(0);
      } else {
        await this.readSlices(handle, part, from * S, oldSize);
        for (let s = from; s < to && s * S < oldSize; s++) this.checkSlice(egroup, old, s, part.subarray((s - from) * S, (s - from + 1) * S), ' before a write over part of it');
      }
      p = q;
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

  // ---- Recovery ------------------------------------------------------------------

  /**
   * Rebuilds the index from the sidecars. A temporary sidecar is a write cut short
   * (never acknowledged): removed. A data file without a sidecar is a first write
   * cut short or a delete cut short: removed. A data file longer than its sidecar's
   * sizeBytes holds growth never acknowledged: cut back (a shorter one is normal: the
   * rest reads as zeros). A sidecar that does not decode, is of format 1, or whose
   * data file is missing is moved to quarantine/ with the reason.
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
          ({ sidecar } = await readSidecar(sidecarPath(this.dir, egroup)));
        } catch (err) {
          const why = err instanceof SidecarFormatError ? err.message : `its sidecar is unreadable: ${(err as Error).message}`;
          await this.quarantine(egroup, hasData, why, report);
          continue;
        }
        if (!hasData) {
          await this.quarantine(egroup, false, 'its data file is missing', report);
          continue;
        }
        const data = await stat(dataPath(this.dir, egroup));
        if (data.size > sidecar.sizeBytes) {
          await truncate(dataPath(this.dir, egroup), sidecar.sizeBytes);
          report.truncated.push(`${key}${DATA_SUFFIX}`);
        }
        // The later of the two files: a write changes the data file, then the sidecar.
        const mtimeMs = Math.max(data.mtimeMs, (await stat(sidecarPath(this.dir, egroup))).mtimeMs);
        this.index.set(egroup, { version: sidecar.version, sizeBytes: sidecar.sizeBytes, mtimeMs: Math.floor(mtimeMs) });
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
    this.log?.error({ disk: this.diskId.toString(), egroup: egroup.toString(), why }, 'extent-group replica moved to quarantine');
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
