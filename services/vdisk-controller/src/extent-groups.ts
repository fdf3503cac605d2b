// The extent groups of one served vDisk, as its drain, direct writes and read path
// see them: allocation of a new extent (a block's home) at the end of an open extent
// group (drain's, or one of the direct writes' lanes), in-place writes of drained
// ranges to every replica, the extent-group map updated by compare-and-set after all
// replicas acknowledged, direct writes of new bytes to every replica (the map learns
// of them when drain records their extents), and reads of a byte range from one
// replica. Writes to one extent group go one at a time: each carries the next version. Reads go to healthy replicas first (the local one first)
// and are hedged: one that has not answered soon is asked of the next replica too,
// and the first good answer wins (see replica-health.ts). Drain writes only extent
// groups whose replicas are all on healthy nodes and undamaged: `writable` tells the
// vDisk, which moves a block of any other extent group to a new one (see vdisk.ts).
// A replica is damaged when it refuses a write with CHECKSUM: a crash of its extent
// store in the middle of an earlier write left a slice that no longer matches its
// checksum, and a write over part of that slice can never succeed (the store will
// not merge new bytes into bytes it cannot trust). Retrying would stall the drain,
// and the oplog behind it, for good; the extent group's other replicas still serve
// reads, and the damaged one is left for repair.
//
// Versions: a replica applies a write only when it is below the write's version. The
// map records the version all replicas reached. A write that failed half way may
// leave some replicas ahead of the map; the next attempt uses a version above every
// one tried (`attempted`), and after a CONFLICT (a replica ahead of what this
// controller knows, e.g. after a restart) it asks the replicas their versions and
// goes past them. The ranges such a failed attempt wrote are still in the oplog
// index, so the retry rewrites them: in-place writes are idempotent.
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers/promises';
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError, assert, isStrataError } from '@strata/errors';
import type { MdMaps } from '@strata/md-client';
import { EG_WRITE_PIECES_MAX, EstoreOp, IO_CHUNK_BYTES, egReadReply, egStatReply, egWriteReply, keys, subjects, type BlockLocation, type EgPiece, type EgroupEntry, type VdcRecordCopyRequest } from '@strata/proto';
import type { Logger } from '@strata/log';
import { SpanAttr, trace, inSpan, type Span } from '@strata/tracing';
import type { ReplicaHealth } from './replica-health';

const tracer = trace.getTracer('@strata/vdisk-controller');

/** A change of the extent table that one drain makes: a new extent for a block, or a block that no longer needs its extent. */
export interface ExtentChanges {
  added: Array<{ block: number; location: BlockLocation }>;
  freed: BlockLocation[];
}

/** Drain's allocations; direct writes allocate in lanes 0, 1, ... (one open extent group each). */
export const DRAIN_LANE = -1;

/** What the vDisk's drain, direct writes and read path need from its extent groups. */
export interface ExtentSpace {
  /**
   * A new extent of `length` bytes for `block`, at the end of the lane's open extent
   * group (in memory until `write` records it).
   */
  allocate(block: number, length: number, lane?: number): Promise<BlockLocation>;
  /** Writes `pieces` (offsets within the extent group) to every replica, and nothing else: a direct write's bytes. */
  put(egroup: bigint, pieces: EgPiece[]): Promise<void>;
  /**
   * Writes `pieces` (offsets within the extent group) to every replica, then records
   * the new version, size and extent changes in the extent-group map.
   */
  write(egroup: bigint, pieces: EgPiece[], changes: ExtentChanges): Promise<void>;
  /** `length` bytes at `offset` within the extent at `location`, from one replica. */
  read(location: BlockLocation, offset: number, length: number): Promise<Uint8Array>;
  /** Whether drain may write to `egroup` now: it is this vDisk's, and every replica is on a healthy node. */
  writable(egroup: bigint): Promise<boolean>;
  /** Whether `egroup` is this vDisk's to write (a clone reads its source's extent groups, never writes them). */
  owns(egroup: bigint): Promise<boolean>;
  /** A snapshot's cut: no new extent is allocated in the extent groups open now (they stay readable and writable in place). */
  seal(): void;
  /**
   * Records the curator's copy of a replica between two writes of the extent group,
   * if the replica it copied from was not written since; returns the entry's revision.
   */
  recordCopy(copy: CopyRecord): Promise<number>;
  /**
   * The curator's release (`strata.vdc.<node>.release`), its first half: of
   * `egroups`, those that are not a lane's open extent group are retired (never
   * opened for allocation, never written by drain: `writable` says no) and returned;
   * the open ones are left as they are. The caller decides which retired ones it
   * gives up (Vdisk.release).
   */
  retire(egroups: readonly bigint[]): bigint[];
  /** Undoes `retire` for extent groups the owner found still in use (it keeps them, as before); not for evacuating ones. */
  unretire(egroups: readonly bigint[]): void;
  /**
   * The curator's compaction (`strata.vdc.<node>.compact`): retires `egroups` as
   * `retire` does (not a lane's open one) and keeps them retired for good, so drain
   * moves the blocks there instead of writing them in place; returns those evacuating.
   */
  evacuate(egroups: readonly bigint[]): bigint[];
}

/** The curator's copy of a replica, to be recorded by the extent group's writer (`strata.vdc.<node>.record-copy`). */
export type CopyRecord = Omit<VdcRecordCopyRequest, 'vdisk' | 'epoch'>;

export interface ExtentGroupsDeps {
  bus: Bus;
  md: MdMaps;
  log: Logger;
  /** This controller's node: its replica is read first. */
  node: string;
  /** What this controller believes about the replicas' nodes (read order, hedging, writability). */
  health: ReplicaHealth;
  vdisk: bigint;
  /** The ownership epoch every write carries (fencing at the extent stores and the metadata shards). */
  epoch: () => number;
  /** The vDisk's generation (snapshot.ts): an extent group created at an older one is never opened for allocation. */
  generation?: () => number;
  /** A new, empty extent group placed on RF disks, recorded in the map; returns its id, entry and revision. */
  createEgroup: (firstExtentBytes: number) => Promise<{ id: bigint; entry: EgroupEntry; revision: number }>;
  egroupSizeBytes: number;
  /** Most data bytes in one extent-store write request. */
  writeBytesMax: number;
  timeoutMs: number;
  /**
   * Deadline of a direct write's replica write: short, because the client waits for
   * it, and one that fails is written through the oplog instead (see vdisk.ts).
   */
  putTimeoutMs: number;
  /** How long to wait after one extent-store write that took `workMs` (drain pacing; none when absent). */
  pauseAfterWriteMs?: (workMs: number) => number;
}

/** Allocation attempts of a direct write (each may wait for a new extent group). */
const LANE_ALLOCATE_ATTEMPTS = 3;

/** A direct-write lane's new extent group being created. */
interface LaneCreation {
  /** Resolves once it is the lane's open extent group; rejects if it could not be created. */
  done: Promise<void>;
  startedAtMs: number;
}

interface EgroupState {
  entry: EgroupEntry;
  revision: number;
  /** The highest version tried on any replica. */
  attempted: number;
  /** The highest version every replica acknowledged. */
  reached: number;
  /** Size including extents allocated but not yet recorded in the map. */
  allocatedBytes: number;
  /**
   * The map's entry changed under this copy (a compare-and-set failed): it is read
   * again, into this same object, before its next use. One object per extent group,
   * so a write queued with it uses what the last reload or recorded copy put there.
   */
  stale?: boolean;
}

export class ExtentGroups implements ExtentSpace {
  private readonly states = new Map<bigint, EgroupState>();
  /** Extent groups whose state is being loaded from the map. */
  private readonly loading = new Map<bigint, Promise<EgroupState>>();
  /** Extent groups with a replica that refused a write with CHECKSUM: no more drain writes (see the top). */
  private readonly damaged = new Set<bigint>();
  /** The open extent group of each lane. */
  private readonly open = new Map<number, bigint>();
  /** Drain's allocations run one at a time: each takes the next range of its open extent group. */
  private allocating: Promise<unknown> = Promise.resolve();
  /** The extent group being created for each direct-write lane. */
  private readonly creating = new Map<number, LaneCreation>();
  /** The code of the last failure to create a lane's extent group (undefined after a success): warnings on change only. */
  private laneFailure: string | undefined;
  /** The tail of each extent group's queue of replica writes (one at a time: versions). */
  private readonly writing = new Map<bigint, Promise<void>>();
  /** Extent groups given up to the curator's release (or about to be): never allocated in or written by drain again. */
  private readonly retired = new Set<bigint>();
  /** Retired for the curator's compaction: they stay retired whatever a release decides. */
  private readonly evacuating = new Set<bigint>();

  constructor(private readonly deps: ExtentGroupsDeps) {}

  allocate(block: number, length: number, lane = DRAIN_LANE): Promise<BlockLocation> {
    if (lane !== DRAIN_LANE) return this.allocateInLane(length, lane);
    const run = this.allocating.then(() => this.allocateForDrain(length));
    this.allocating = run.catch(() => undefined);
    return run;
  }

  /** Drain's allocation: it may wait for a new extent group as long as the metadata service takes. */
  private async allocateForDrain(length: number): Promise<BlockLocation> {
    const location = this.takeRoom(DRAIN_LANE, length);
    if (location !== undefined) return location;
    const created = await this.deps.createEgroup(length);
    // Retired while its creation ran (the sweep saw its entry unnamed): not used; the next drain makes another.
    if (this.retired.has(created.id)) throw new StrataError(ErrorCode.UNAVAILABLE, `egroup ${created.id} was released while being created; drain tries again`);
    return this.takeFrom(this.opened(DRAIN_LANE, created), length);
  }

  /**
   * A direct write's allocation: the client is waiting, so it never waits long for
   * the metadata service. When the lane's open extent group is full, a new one is
   * created (one at a time per lane); writes wait for it only within `putTimeoutMs`
   * of its start, and after that fail UNAVAILABLE at once (the vDisk writes them
   * through the oplog), until it is created. With a metadata shard killed, a
   * creation can take the metadata client's whole budget.
   */
  private async allocateInLane(length: number, lane: number): Promise<BlockLocation> {
    for (let attempt = 0; attempt < LANE_ALLOCATE_ATTEMPTS; attempt++) {
      const location = this.takeRoom(lane, length);
      if (location !== undefined) return location;
      const creation = this.creating.get(lane) ?? this.startCreating(lane, length);
      const waitMs = creation.startedAtMs + this.deps.putTimeoutMs - performance.now();
      if (waitMs <= 0 || !(await settlesWithin(creation.done, waitMs))) break;
    }
    throw new StrataError(ErrorCode.UNAVAILABLE, `direct-write lane ${lane}: no extent group with room within ${this.deps.putTimeoutMs} ms`);
  }

  private startCreating(lane: number, length: number): LaneCreation {
    const done = this.deps.createEgroup(length).then((created) => {
      this.opened(lane, created);
    });
    const creation = { done, startedAtMs: performance.now() };
    this.creating.set(lane, creation);
    done
      .then(() => (this.laneFailure = undefined))
      .catch((err: unknown) => {
        // Warned once per kind of failure, not once per write (a full cluster fails them all).
        const code = err instanceof StrataError ? err.code : 'INTERNAL';
        const fields = { err, vdisk: String(this.deps.vdisk), lane };
        if (code !== this.laneFailure) this.deps.log.warn(fields, 'no new extent group for direct writes');
        else this.deps.log.debug(fields, 'no new extent group for direct writes');
        this.laneFailure = code;
      })
      .finally(() => this.creating.delete(lane));
    return creation;
  }

  /** A new extent group, now the lane's open one. */
  private opened(lane: number, created: { id: bigint; entry: EgroupEntry; revision: number }): { egroup: bigint; state: EgroupState } {
    assert(created.entry.vdisk === this.deps.vdisk, 'a new extent group belongs to its vDisk');
    const state = newState(created.entry, created.revision);
    this.states.set(created.id, state);
    // Created before a snapshot sealed the open extent groups (a direct-write lane's
    // creation still running during the cut): never opened, so it stays sealed. One
    // retired while it was created (the curator saw its entry unnamed) is never opened either.
    if ((created.entry.gen ?? 0) >= (this.deps.generation?.() ?? 0) && !this.retired.has(created.id)) this.open.set(lane, created.id);
    return { egroup: created.id, state };
  }

  seal(): void {
    this.open.clear();
  }

  retire(egroups: readonly bigint[]): bigint[] {
    const opened = new Set(this.open.values());
    const out = egroups.filter((egroup) => !opened.has(egroup));
    for (const egroup of out) this.retired.add(egroup);
    return out;
  }

  unretire(egroups: readonly bigint[]): void {
    for (const egroup of egroups) if (!this.evacuating.has(egroup)) this.retired.delete(egroup);
  }

  evacuate(egroups: readonly bigint[]): bigint[] {
    const out = this.retire(egroups);
    for (const egroup of out) this.evacuating.add(egroup);
    return out;
  }

  async owns(egroup: bigint): Promise<boolean> {
    return (await this.state(egroup)).entry.vdisk === this.deps.vdisk;
  }

  /**
   * A new extent at the end of the lane's open extent group; undefined when there is
   * none, it is full, or a replica is damaged or on a node now suspect or dead.
   */
  private takeRoom(lane: number, length: number): BlockLocation | undefined {
    const egroup = this.open.get(lane);
    const state = egroup === undefined ? undefined : this.states.get(egroup);
    if (egroup === undefined || state === undefined || state.stale === true || this.retired.has(egroup) || state.allocatedBytes + length > this.deps.egroupSizeBytes || !this.replicasUsable(state, egroup)) return undefined;
    return this.takeFrom({ egroup, state }, length);
  }

  private takeFrom({ egroup, state }: { egroup: bigint; state: EgroupState }, length: number): BlockLocation {
    const location = { egroup, offset: state.allocatedBytes, length };
    state.allocatedBytes += length;
    return location;
  }

  /** Under an `egroup put` span: the replicas' writes (one request per replica and chunk) are its children. */
  async put(egroup: bigint, pieces: EgPiece[]): Promise<void> {
    const span = tracer.startSpan('egroup put');
    await inSpan(span, async () => {
      const state = await this.state(egroup);
      if (span.isRecording()) span.setAttributes(this.writeAttributes(egroup, state, pieces));
      // A direct write carries at most one I/O message's bytes (IO_CHUNK_BYTES): one
      // replica write, not one per drain-sized chunk (each costs a sidecar update and an fdatasync).
      for (const chunk of chunks(pieces, Math.max(this.deps.writeBytesMax, IO_CHUNK_BYTES))) await this.writeChunk(egroup, state, chunk, this.deps.putTimeoutMs);
    });
  }

  /** The attributes of a span of replica writes of `pieces` to `egroup`. */
  private writeAttributes(egroup: bigint, state: EgroupState, pieces: readonly EgPiece[]): Record<string, string | string[] | number> {
    return {
      [SpanAttr.vdisk]: String(this.deps.vdisk),
      [SpanAttr.egroup]: String(egroup),
      [SpanAttr.disk]: state.entry.replicas.map((r) => String(r.disk)),
      [SpanAttr.pieces]: pieces.length,
      [SpanAttr.bytes]: pieces.reduce((n, p) => n + ('data' in p ? p.data.length : 0), 0),
    };
  }

  /**
   * Under an `egroup write` span (a child of the drain's): the replicas' writes (the
   * bus's request spans, one per replica and chunk) and the map's update are its children.
   */
  async write(egroup: bigint, pieces: EgPiece[], changes: ExtentChanges): Promise<void> {
    const span = tracer.startSpan('egroup write');
    await inSpan(span, () => this.writeNow(egroup, pieces, changes, span));
  }

  private async writeNow(egroup: bigint, pieces: EgPiece[], changes: ExtentChanges, span: Span): Promise<void> {
    // Extents freed in a released extent group (a drain's last step, after its rows
    // stopped naming them): the entry is the curator's to delete, nothing to record.
    if (this.retired.has(egroup) && pieces.length === 0 && changes.added.length === 0) return;
    const state = await this.state(egroup);
    if (span.isRecording()) {
      span.setAttributes({
        ...this.writeAttributes(egroup, state, pieces),
        'strata.extents.added': changes.added.length,
        'strata.extents.freed': changes.freed.length,
      });
    }
    for (const chunk of chunks(pieces, this.deps.writeBytesMax)) {
      const startedMs = performance.now();
      await this.writeChunk(egroup, state, chunk, this.deps.timeoutMs);
      const pauseMs = this.deps.pauseAfterWriteMs?.(performance.now() - startedMs) ?? 0;
      if (pauseMs > 0) await setTimeout(pauseMs);
    }
    assert(state.entry.vdisk === this.deps.vdisk, `egroup ${egroup} belongs to vdisk ${state.entry.vdisk}: only its writer records its extents`);
    // The version every replica reached (direct writes since the last update included).
    const version = Math.max(state.entry.version, state.reached);
    const next = applyChanges(state.entry, this.deps.vdisk, changes, version, state.allocatedBytes);
    span.setAttribute(SpanAttr.egroupVersion, next.version);
    try {
      // Fenced like the replicas' writes: a shard refuses it once the vDisk has a newer owner.
      state.revision = await this.deps.md.put('egroup', keys.egroup(egroup), next, state.revision, { fence: { vdisk: this.deps.vdisk, epoch: this.deps.epoch() } });
    } catch (err) {
      // Our copy may be stale (a previous incarnation wrote it): read it again next time.
      if (isStrataError(err, ErrorCode.CONFLICT)) state.stale = true;
      throw err;
    }
    state.entry = next;
  }

  /** Queues one replica write of `egroup` behind the ones before it. */
  private writeChunk(egroup: bigint, state: EgroupState, pieces: EgPiece[], timeoutMs: number): Promise<void> {
    return this.inWriteOrder(egroup, () => this.writeChunkNow(egroup, state, pieces, timeoutMs));
  }

  /**
   * The copy race (curator copier.ts, at the top), closed from the writer's side. A
   * copy read the source replica at `sourceVersion`; a write this controller made to
   * the replicas it knew after that read is on the source and not on the new replica.
   * So, between two writes of the extent group (in its write order: none runs
   * meanwhile), the source is asked for its version: unchanged, the entry with the
   * new replica is recorded by compare-and-set (fenced by this owner's epoch) and
   * adopted, and every later write goes to the new replicas; changed, CONFLICT, and
   * the curator copies again. No write can fall between the check and the record.
   */
  async recordCopy(copy: CopyRecord): Promise<number> {
    if (copy.entry.vdisk !== this.deps.vdisk) throw new StrataError(ErrorCode.INVALID, `egroup ${copy.egroup} belongs to vdisk ${copy.entry.vdisk}, not ${this.deps.vdisk}`);
    return this.inWriteOrder(copy.egroup, async () => {
      const state = await this.state(copy.egroup);
      // No file reads as an empty replica, as the copy saw it.
      const now = (await this.statReplica(copy.egroup, copy.source)) ?? { version: 0, sizeBytes: 0 };
      if (now.version !== copy.sourceVersion || now.sizeBytes !== copy.sourceSizeBytes) {
        throw new StrataError(
          ErrorCode.CONFLICT,
          `egroup ${copy.egroup}: the replica on disk ${copy.source.disk} was written after the copy read it (version ${copy.sourceVersion} -> ${now.version}, ${copy.sourceSizeBytes} -> ${now.sizeBytes} bytes); copy it again`,
        );
      }
      const revision = await this.deps.md.put('egroup', keys.egroup(copy.egroup), copy.entry, copy.revision, { fence: { vdisk: this.deps.vdisk, epoch: this.deps.epoch() } });
      this.deps.log.info({ egroup: String(copy.egroup), was: state.entry.replicas.map((r) => r.node), now: copy.entry.replicas.map((r) => r.node) }, 'recorded the curator\'s copy of a replica: writing the new replicas');
      // The entry is the map's now; the versions and allocations this controller holds in memory stay.
      state.entry = copy.entry;
      state.revision = revision;
      state.attempted = Math.max(state.attempted, copy.entry.version);
      state.reached = Math.max(state.reached, copy.entry.version);
      return revision;
    });
  }

  /** The version and size of `egroup`'s replica on `replica`'s disk; undefined when it has none. */
  private async statReplica(egroup: bigint, replica: { disk: bigint; node: string }): Promise<{ version: number; sizeBytes: number } | undefined> {
    try {
      return await this.deps.bus.request(subjects.estore(replica.node, EstoreOp.stat), { disk: replica.disk, egroup }, egStatReply, { timeoutMs: this.deps.timeoutMs });
    } catch (err) {
      if (isStrataError(err, ErrorCode.NOT_FOUND)) return undefined;
      throw err;
    }
  }

  /** Runs `fn` once the writes of `egroup` queued before it are done; the next ones wait for it. */
  private inWriteOrder<T>(egroup: bigint, fn: () => Promise<T>): Promise<T> {
    const run = (this.writing.get(egroup) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.writing.set(egroup, tail);
    void tail.then(() => {
      if (this.writing.get(egroup) === tail) this.writing.delete(egroup);
    });
    return run;
  }

  private async writeChunkNow(egroup: bigint, state: EgroupState, pieces: EgPiece[], timeoutMs: number): Promise<void> {
    assert(state.entry.vdisk === this.deps.vdisk, `egroup ${egroup} belongs to vdisk ${state.entry.vdisk}: only its writer writes it`);
    if (this.damaged.has(egroup)) throw new StrataError(ErrorCode.UNAVAILABLE, `egroup ${egroup} has a damaged replica; its blocks move to another extent group`);
    const unusable = state.entry.replicas.filter((r) => !this.deps.health.usable(r.node));
    if (unusable.length > 0) {
      // Never wait on a hung or dead node: the next drain moves these blocks elsewhere.
      throw new StrataError(ErrorCode.UNAVAILABLE, `egroup ${egroup} has replicas on ${unusable.map((r) => `${r.node} (${this.deps.health.state(r.node)})`).join(', ')}; its blocks move to another extent group`);
    }
    // Pieces may end past what this controller allocated in an extent group it did not
    // create: a previous owner's staging extent, which drain adopts (the map learns a
    // staging extent's size only then).
    state.allocatedBytes = Math.max(state.allocatedBytes, ...pieces.map((p) => p.offset + ('data' in p ? p.data.length : p.zeros)));
    for (let attempt = 0; ; attempt++) {
      const version = Math.max(state.entry.version, state.attempted) + 1;
      state.attempted = version;
      const request = { egroup, vdisk: this.deps.vdisk, epoch: this.deps.epoch(), version, sizeBytes: state.allocatedBytes, pieces };
      const results = await Promise.allSettled(
        state.entry.replicas.map((r) => this.observed(r.node, () => this.deps.bus.request(subjects.estore(r.node, EstoreOp.write), { ...request, disk: r.disk }, egWriteReply, { timeoutMs }))),
      );
      this.noteDamage(egroup, state, results);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed === undefined) {
        state.reached = Math.max(state.reached, version);
        return;
      }
      if (attempt > 0 || !isStrataError(failed.reason, ErrorCode.CONFLICT)) throw failed.reason;
      // A replica is at or past `version`: learn every replica's version and go past them.
      state.attempted = Math.max(state.attempted, ...(await this.replicaVersions(egroup, state)));
      this.deps.log.info({ egroup: String(egroup), attempted: state.attempted }, 'a replica was ahead of this controller; writing past its version');
    }
  }

  /** Marks `egroup` damaged when a replica refused the write with CHECKSUM, and fails the write so its blocks move. */
  private noteDamage(egroup: bigint, state: EgroupState, results: readonly PromiseSettledResult<unknown>[]): void {
    const bad = state.entry.replicas.filter((_, i) => {
      const result = results[i]!;
      return result.status === 'rejected' && isStrataError(result.reason, ErrorCode.CHECKSUM);
    });
    if (bad.length === 0) return;
    this.damaged.add(egroup);
    const where = bad.map((r) => `disk ${r.disk} on ${r.node}`).join(', ');
    this.deps.log.warn({ egroup: String(egroup), vdisk: String(this.deps.vdisk), replicas: bad.map((r) => ({ disk: String(r.disk), node: r.node })) }, `egroup ${egroup}: damaged replica (${where}) refused a drain write with CHECKSUM; its blocks move to another extent group, the replica is left for repair`);
    throw new StrataError(ErrorCode.UNAVAILABLE, `egroup ${egroup} has a damaged replica (${where}); its blocks move to another extent group`);
  }

  private async replicaVersions(egroup: bigint, state: EgroupState): Promise<number[]> {
    return Promise.all(state.entry.replicas.map(async (r) => (await this.statReplica(egroup, r))?.version ?? 0));
  }

  /**
   * Reads from the replicas in the health's order, hedged: the next replica is asked
   * too when the ones asked so far have not answered within the hedge delay, or at
   * once when one fails; the first good answer wins.
   */
  async read(location: BlockLocation, offset: number, length: number): Promise<Uint8Array> {
    assert(offset >= 0 && length > 0 && offset + length <= location.length, 'a read stays within its extent');
    const state = await this.state(location.egroup);
    // The curator may have replaced replicas this controller knows (a node lost for good,
    // its replicas rebuilt elsewhere) without this controller hearing of it. When every
    // known replica is on a dead or suspect node, look at the entry first: a read of a
    // dead node waits out its whole budget before it fails.
    let refreshed = false;
    let replicas = state.entry.replicas;
    if (!replicas.some((r) => this.deps.health.usable(r.node))) {
      refreshed = true;
      replicas = (await this.refreshReplicas(location.egroup, state)) ?? replicas;
    }
    try {
      return await this.readAny(replicas, location, offset, length);
    } catch (err) {
      // Every replica failed: read the entry again (once in all) and try the replicas it names now.
      const fresh = refreshed ? undefined : await this.refreshReplicas(location.egroup, state);
      if (fresh === undefined) throw err;
      return this.readAny(fresh, location, offset, length);
    }
  }

  private async readAny(replicas: readonly { disk: bigint; node: string }[], location: BlockLocation, offset: number, length: number): Promise<Uint8Array> {
    try {
      return await hedged(this.deps.health.order(replicas), this.deps.health.hedgeDelayMs(), (r) => this.readReplica(r, location, offset, length));
    } catch (err) {
      throw err instanceof StrataError ? err : new StrataError(ErrorCode.UNAVAILABLE, `no replica of egroup ${location.egroup} could be read`, { cause: err });
    }
  }

  /**
   * The replicas of `egroup` as the map has them now, adopted into the cached state
   * (only the replicas and the revision: the curator changes nothing else, and the
   * allocations and versions this controller holds in memory stay); undefined when
   * they are the ones it knew.
   */
  private async refreshReplicas(egroup: bigint, state: EgroupState): Promise<EgroupEntry['replicas'] | undefined> {
    const got = await this.deps.md.get('egroup', keys.egroup(egroup));
    if (got === null || got.value.vdisk !== state.entry.vdisk) return undefined;
    const same = got.value.replicas.length === state.entry.replicas.length && got.value.replicas.every((r, i) => r.disk === state.entry.replicas[i]!.disk);
    if (same) return undefined;
    this.deps.log.info({ egroup: String(egroup), was: state.entry.replicas.map((r) => r.node), now: got.value.replicas.map((r) => r.node) }, 'the extent group has new replicas (re-replicated): reading those');
    state.entry = { ...state.entry, replicas: got.value.replicas };
    state.revision = Math.max(state.revision, got.revision);
    return got.value.replicas;
  }

  private async readReplica(r: { disk: bigint; node: string }, location: BlockLocation, offset: number, length: number): Promise<Uint8Array> {
    try {
      const { data } = await this.observed(r.node, () =>
        this.deps.bus.request(subjects.estore(r.node, EstoreOp.read), { disk: r.disk, egroup: location.egroup, offset: location.offset + offset, length }, egReadReply, { timeoutMs: this.deps.timeoutMs }),
      );
      if (data.length !== length) throw new StrataError(ErrorCode.INTERNAL, `disk ${r.disk} returned ${data.length} bytes of egroup ${location.egroup} for a read of ${length}`);
      return data;
    } catch (err) {
      const bad = isStrataError(err, ErrorCode.CHECKSUM);
      this.deps.log.warn({ err, egroup: String(location.egroup), disk: String(r.disk), node: r.node }, bad ? 'bad replica: checksum mismatch; reading another' : 'replica read failed; trying another');
      throw err;
    }
  }

  /**
   * Runs one request to `node` and tells the health how it went: a timeout or an
   * unreachable node makes it suspect, an answer (even a refusal) shows it alive.
   */
  private async observed<T>(node: string, request: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await request();
      this.deps.health.succeeded(node, performance.now() - started);
      return result;
    } catch (err) {
      if (isStrataError(err, ErrorCode.TIMEOUT) || isStrataError(err, ErrorCode.UNAVAILABLE)) this.deps.health.failed(node);
      else this.deps.health.succeeded(node);
      throw err;
    }
  }

  async writable(egroup: bigint): Promise<boolean> {
    if (this.retired.has(egroup)) return false;
    return this.replicasUsable(await this.state(egroup), egroup);
  }

  private replicasUsable(state: EgroupState, egroup: bigint): boolean {
    return state.entry.vdisk === this.deps.vdisk && !this.damaged.has(egroup) && state.entry.replicas.every((r) => this.deps.health.usable(r.node));
  }

  /**
   * The extent group's state, loaded from the map on first use: once, however many
   * ask at the same time (each write's version comes from the one state).
   */
  private state(egroup: bigint): Promise<EgroupState> {
    const known = this.states.get(egroup);
    if (known !== undefined && known.stale !== true) return Promise.resolve(known);
    let loading = this.loading.get(egroup);
    if (loading === undefined) {
      loading = this.load(egroup).finally(() => this.loading.delete(egroup));
      this.loading.set(egroup, loading);
    }
    return loading;
  }

  private async load(egroup: bigint): Promise<EgroupState> {
    const got = await this.deps.md.get('egroup', keys.egroup(egroup));
    if (got === null) throw new StrataError(ErrorCode.NOT_FOUND, `egroup ${egroup} has no metadata`);
    // Another vDisk's extent group (a clone's blocks shared with its snapshot) is
    // loaded for reads only: owns() and writable() say no, and a write asserts.
    const state = newState(got.value, got.revision);
    const known = this.states.get(egroup);
    if (known === undefined) this.states.set(egroup, state);
    else Object.assign(known, state, { stale: false });
    return known ?? state;
  }
}

function newState(entry: EgroupEntry, revision: number): EgroupState {
  return { entry, revision, attempted: entry.version, reached: entry.version, allocatedBytes: entry.sizeBytes };
}

/**
 * The first success of `attempt` over `candidates`, tried in order: the next one
 * starts when those started so far have not answered within `delayMs`, or at once
 * when one fails. Fails with the last error once every candidate has failed. The
 * losers run on to their own deadlines; their outcome is ignored.
 */
export function hedged<C, T>(candidates: readonly C[], delayMs: number, attempt: (candidate: C) => Promise<T>): Promise<T> {
  assert(candidates.length > 0, 'a hedged request has at least one candidate');
  return new Promise<T>((resolve, reject) => {
    let next = 0;
    let running = 0;
    let settled = false;
    let lastErr: unknown;
    let timer: NodeJS.Timeout | undefined;
    const launch = (): void => {
      clearTimeout(timer);
      if (settled) return;
      if (next >= candidates.length) {
        if (running === 0) {
          settled = true;
          reject(lastErr instanceof Error ? lastErr : new Error(String(lastErr)));
        }
        return;
      }
      const candidate = candidates[next++]!;
      running++;
      attempt(candidate).then(
        (value) => {
          running--;
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          running--;
          lastErr = err;
          launch();
        },
      );
      if (next < candidates.length) timer = globalThis.setTimeout(launch, delayMs);
    };
    launch();
  });
}

/**
 * Like Promise.all, but settles only when every promise has: a failure of one
 * replica must not leave another's request running into the next attempt.
 */
/** Whether `promise` resolved within `ms` (false on timeout); its rejection is thrown. */
async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  const timedOut = setTimeout(ms, false, { signal: timer.signal }).catch(() => false);
  try {
    return await Promise.race([promise.then(() => true), timedOut]);
  } finally {
    timer.abort();
  }
}

export async function settleAll<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/**
 * `pieces` cut into requests of at most `maxBytes` data bytes (a longer piece is
 * split; zero pieces carry no data) and at most `maxPieces` pieces (the protocol's
 * EG_WRITE_PIECES_MAX: a drain of many scattered small writes has many pieces).
 */
export function chunks(pieces: readonly EgPiece[], maxBytes: number, maxPieces = EG_WRITE_PIECES_MAX): EgPiece[][] {
  assert(maxBytes > 0 && maxPieces > 0, 'chunks hold at least one byte and one piece');
  const out: EgPiece[][] = [];
  let current: EgPiece[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (current.length > 0) out.push(current);
    current = [];
    bytes = 0;
  };
  for (const piece of pieces) {
    if (!('data' in piece)) {
      if (current.length >= maxPieces) flush();
      current.push(piece);
      continue;
    }
    for (let at = 0; at < piece.data.length; ) {
      if (bytes >= maxBytes || current.length >= maxPieces) flush();
      const take = Math.min(piece.data.length - at, maxBytes - bytes);
      current.push({ offset: piece.offset + at, data: piece.data.subarray(at, at + take) });
      bytes += take;
      at += take;
    }
  }
  flush();
  return out;
}

/** The extent-group map entry after a drain: new version and size (covering every extent added), new extents added, freed ones at refs 0. */
export function applyChanges(entry: EgroupEntry, vdisk: bigint, changes: ExtentChanges, version: number, sizeBytes: number): EgroupEntry {
  const extents = entry.extents.map((e) => ({ ...e }));
  for (const { block, location } of changes.added) {
    const existing = extents.find((e) => e.offset === location.offset);
    if (existing !== undefined) existing.refs = 1;
    else extents.push({ id: `${vdisk}:${block}`, offset: location.offset, length: location.length, refs: 1 });
  }
  for (const location of changes.freed) {
    const existing = extents.find((e) => e.offset === location.offset);
    if (existing !== undefined) existing.refs = 0;
  }
  extents.sort((a, b) => a.offset - b.offset);
  // An added extent lies within the size, also one adopted from a staging extent whose
  // bytes a previous owner wrote (this controller never allocated it, and no piece of
  // this drain reaches it).
  const end = Math.max(entry.sizeBytes, sizeBytes, ...changes.added.map(({ location }) => location.offset + location.length));
  return { ...entry, version, sizeBytes: end, extents };
}
