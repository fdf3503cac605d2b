// One copy of a replica, the executor of a plan's CopyAction: read the source replica
// in pieces, write them to the target disk (the next piece read while one is written),
// check that the source did not change meanwhile, then record the new replica in the extent-group map by compare-and-set.
// After a CONFLICT the entry is read again and the extent group planned again (the
// caller's `replan`), so a replica is never recorded on a wrong or duplicate disk.
//
// The race between the last check and the record: a vDisk's owner writes every
// replica its cached entry names, so a write that reaches the source after the copy's
// last stat, or after the record while the owner still knows the old entry, is on the
// source and not on the new replica. So when the vDisk has an owner, the owner records
// the copy (`strata.vdc.<owner>.record-copy`): between two of its writes of the extent
// group it asks the source for the version the copy read, records the entry only if
// it is unchanged, and writes the new replicas from then on (the vdisk-controller's
// ExtentGroups.recordCopy). CONFLICT there (the source was written, or the entry
// changed) plans the extent group again. A vDisk without an ownership record has no
// writer: it was deleted while a snapshot still names its extent groups (a vDisk
// never opened has none, and a deleted one is never claimed again). The copy is then
// recorded here by compare-and-set, and the source is asked once more after, as a
// guard; if it moved on, the record is rolled back (the entry as it was, and the new
// file deleted) and the next scan copies again.
// Only once the copy is recorded does a move (`drop`) delete the replica it replaced.
import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import type { Logger } from '@strata/log';
import type { MdMaps } from '@strata/md-client';
import { EstoreOp, VdcOp, egDeleteReply, egReadReply, egStatReply, egWriteReply, keys, subjects, vdcRecordCopyReply, type EgroupEntry, type vdiskOwnership } from '@strata/proto';
import { withCopy, withoutCopy, type CopyAction, type EgroupRow } from './plan';

/** A replica's version and size, as a stat answers them. */
interface Stat {
  version: number;
  sizeBytes: number;
}

/** Compare-and-sets of one extent group's entry (each after a fresh read and plan) before the copy is given up until the next scan. */
const RECORD_ATTEMPTS = 3;
/** Owners asked to record one copy: a second after NOT_OWNER (the vDisk moved between reading `own` and asking). */
const OWNER_ATTEMPTS = 2;

export interface CopierDeps {
  bus: Bus;
  md: MdMaps;
  own: TypedBucket<typeof vdiskOwnership>;
  log: Logger;
  chunkBytes: number;
  timeoutMs: number;
  /** Waits until `bytes` may move within the copy budget (rate.ts). */
  pace: (bytes: number) => Promise<void>;
  /** Whether this process still leads: a deposed master records nothing. */
  leading: () => boolean;
  /** The extent group planned again from its current entry: the next copy it needs, or undefined. */
  replan: (row: EgroupRow) => Promise<CopyAction | undefined>;
}

export interface CopyDone {
  action: CopyAction;
  /** Bytes moved. */
  bytes: number;
  /** The entry as recorded. */
  row: EgroupRow;
}

export class Copier {
  constructor(private readonly d: CopierDeps) {}

  /**
   * Copies and records `action`; after a CONFLICT, whatever copy the fresh entry
   * needs instead. Resolves undefined when the extent group needs no copy any more.
   */
  async run(first: CopyAction): Promise<CopyDone | undefined> {
    let action: CopyAction | undefined = first;
    for (let attempt = 1; action !== undefined; attempt++) {
      const copied = await this.copyBytes(action);
      if (!this.d.leading()) throw new StrataError(ErrorCode.FENCED, `egroup ${action.egroup}: this curator is no longer the master; the copy is not recorded`);
      const current = await this.d.md.get('egroup', keys.egroup(action.egroup));
      if (current === null) return undefined;
      const next = withCopy(current.value, action);
      if (next.ok && current.revision === action.revision) {
        const done = await this.record(action, copied, next.entry);
        if (done !== undefined) return done;
      }
      // The entry changed since the plan read it: plan this extent group again from what it is now.
      if (attempt >= RECORD_ATTEMPTS) throw new StrataError(ErrorCode.CONFLICT, `egroup ${action.egroup}: the entry kept changing over ${RECORD_ATTEMPTS} copies; the next scan plans it again`);
      const fresh = await this.d.md.get('egroup', keys.egroup(action.egroup));
      if (fresh === null) return undefined;
      this.d.log.info({ egroup: String(action.egroup), why: next.ok ? 'revision changed' : next.why }, 'extent-group entry changed under a copy; planning it again');
      action = await this.d.replan({ egroup: action.egroup, revision: fresh.revision, entry: fresh.value });
    }
    return undefined;
  }

  /**
   * Records the copy: by the vDisk's owner when it has one, else here (see the top).
   * Undefined after a CONFLICT: the entry or the source changed, plan it again.
   */
  private async record(action: CopyAction, copied: { bytes: number; at: Stat | undefined }, entry: EgroupEntry): Promise<CopyDone | undefined> {
    for (let attempt = 1; ; attempt++) {
      const own = await this.d.own.get(keys.vdiskOwnership(action.vdisk));
      if (own === null) return this.recordHere(action, copied, entry);
      try {
        const request = {
          vdisk: action.vdisk,
          epoch: own.value.epoch,
          egroup: action.egroup,
          source: { disk: action.source.disk, node: action.source.node },
          sourceVersion: copied.at?.version ?? 0,
          sourceSizeBytes: copied.at?.sizeBytes ?? 0,
          entry,
          revision: action.revision,
        };
        const { revision } = await this.d.bus.request(subjects.controller(own.value.owner, VdcOp.recordCopy), request, vdcRecordCopyReply, { timeoutMs: this.d.timeoutMs });
        return await this.dropReplaced(action, copied, { egroup: action.egroup, revision, entry });
      } catch (err) {
        if (isStrataError(err, ErrorCode.CONFLICT)) {
          this.d.log.info({ egroup: String(action.egroup), owner: own.value.owner, why: err.message }, 'the owner did not record the copy; planning it again');
          return undefined;
        }
        if (!isStrataError(err, ErrorCode.NOT_OWNER) || attempt >= OWNER_ATTEMPTS) throw err;
      }
    }
  }

  /** A vDisk without an owner: the entry by compare-and-set here, then the source asked again (settle). */
  private async recordHere(action: CopyAction, copied: { bytes: number; at: Stat | undefined }, entry: EgroupEntry): Promise<CopyDone | undefined> {
    const revision = await this.d.md.put('egroup', keys.egroup(action.egroup), entry, action.revision).catch((err: unknown) => {
      if (isStrataError(err, ErrorCode.CONFLICT)) return undefined;
      throw err;
    });
    return revision === undefined ? undefined : this.settle(action, copied, { egroup: action.egroup, revision, entry });
  }

  /**
   * After the record: the source asked again (see the top). Unchanged: the copy is
   * whole, and a move deletes the replica it replaced. Changed: the record is rolled
   * back and the copy fails with CONFLICT.
   */
  private async settle(action: CopyAction, copied: { bytes: number; at: Stat | undefined }, row: EgroupRow): Promise<CopyDone> {
    const { egroup, source } = action;
    const now = await this.stat(source.node, source.disk, egroup);
    if (!sameStat(copied.at, now)) {
      await this.rollBack(action, row);
      throw new StrataError(ErrorCode.CONFLICT, `egroup ${egroup}: the replica on disk ${source.disk} was written after the copy's last check (version ${copied.at?.version ?? 0} -> ${now?.version ?? 'gone'}); the copy is rolled back and the next scan copies it again`);
    }
    return this.dropReplaced(action, copied, row);
  }

  /** A move's replaced replica deleted, once the copy is recorded. */
  private async dropReplaced(action: CopyAction, copied: { bytes: number }, row: EgroupRow): Promise<CopyDone> {
    const { egroup } = action;
    if (action.drop && action.lost !== undefined) {
      // The entry no longer names it: a failure here leaves a file the garbage collection deletes.
      await this.request(action.lost.node, EstoreOp.delete, { disk: action.lost.disk, egroup }, egDeleteReply).catch((err: unknown) =>
        this.d.log.warn({ err, egroup: String(egroup), disk: String(action.lost!.disk) }, 'could not delete the replica a move replaced; the garbage collection will'),
      );
    }
    return { action, bytes: copied.bytes, row };
  }

  /** The entry without the copy's replica (compare-and-set, read again on CONFLICT), then the copy's file deleted. */
  private async rollBack(action: CopyAction, recorded: EgroupRow): Promise<void> {
    let row: EgroupRow | undefined = recorded;
    for (let attempt = 1; row !== undefined && row.entry.replicas.some((r) => r.disk === action.target.disk); attempt++) {
      try {
        await this.d.md.put('egroup', keys.egroup(action.egroup), withoutCopy(row.entry, action), row.revision);
        break;
      } catch (err) {
        if (!isStrataError(err, ErrorCode.CONFLICT) || attempt >= RECORD_ATTEMPTS) throw err;
      }
      const fresh = await this.d.md.get('egroup', keys.egroup(action.egroup));
      row = fresh === null ? undefined : { egroup: action.egroup, revision: fresh.revision, entry: fresh.value };
    }
    await this.request(action.target.node, EstoreOp.delete, { disk: action.target.disk, egroup: action.egroup }, egDeleteReply);
  }

  /**
   * The source replica's bytes on the target disk, at the source's version: the target
   * is cleared first (an interrupted copy may have left part of one), the pieces are
   * written with versions rising to the source's, and the source is asked again at
   * the end: if it changed meanwhile, the copy may miss a write, and is refused.
   */
  private async copyBytes(action: CopyAction): Promise<{ bytes: number; at: Stat | undefined }> {
    const { source, target, egroup } = action;
    const before = await this.stat(source.node, source.disk, egroup);
    await this.request(target.node, EstoreOp.delete, { disk: target.disk, egroup }, egDeleteReply);
    if (before === undefined || before.sizeBytes === 0) {
      if (action.bytes > 0) throw new StrataError(ErrorCode.NOT_FOUND, `egroup ${egroup}: no replica on disk ${source.disk} (${source.node}) to copy from`);
      return { bytes: 0, at: before };
    }
    const epoch = (await this.d.own.get(keys.vdiskOwnership(action.vdisk)))?.value.epoch ?? 0;
    const pieces = Math.ceil(before.sizeBytes / this.d.chunkBytes);
    // Versions only order writes; a replica at a version the map does not know is gone
    // past by the owner's next write (it asks every replica after a CONFLICT).
    const lastVersion = Math.max(before.version, pieces);
    const read = async (i: number): Promise<{ offset: number; data: Uint8Array }> => {
      const offset = i * this.d.chunkBytes;
      const length = Math.min(this.d.chunkBytes, before.sizeBytes - offset);
      await this.d.pace(length);
      const { data } = await this.request(source.node, EstoreOp.read, { disk: source.disk, egroup, offset, length }, egReadReply);
      if (data.length !== length) throw new StrataError(ErrorCode.INTERNAL, `egroup ${egroup}: disk ${source.disk} returned ${data.length} bytes for a read of ${length}`);
      return { offset, data };
    };
    // Pipelined: the next piece is read while this one is written (one read and one
    // write in flight; the writes stay in order, their versions rising).
    let next = read(0);
    for (let i = 0; i < pieces; i++) {
      const { offset, data } = await next;
      if (i + 1 < pieces) {
        next = read(i + 1);
        // A failed write ends the copy before this read is awaited: its failure is moot.
        next.catch(() => undefined);
      }
      const version = lastVersion - (pieces - 1 - i);
      await this.request(target.node, EstoreOp.write, { disk: target.disk, egroup, vdisk: action.vdisk, epoch, version, sizeBytes: before.sizeBytes, pieces: [{ offset, data }] }, egWriteReply);
    }
    const after = await this.stat(source.node, source.disk, egroup);
    if (!sameStat(before, after)) {
      throw new StrataError(ErrorCode.CONFLICT, `egroup ${egroup}: the replica on disk ${source.disk} changed during the copy (version ${before.version} -> ${after?.version ?? 'gone'}); the next scan copies it again`);
    }
    return { bytes: before.sizeBytes, at: before };
  }

  private async stat(node: string, disk: bigint, egroup: bigint): Promise<Stat | undefined> {
    try {
      return await this.request(node, EstoreOp.stat, { disk, egroup }, egStatReply);
    } catch (err) {
      if (isStrataError(err, ErrorCode.NOT_FOUND)) return undefined;
      throw err;
    }
  }

  private request<S extends z.ZodType>(node: string, op: EstoreOp, body: unknown, schema: S): Promise<z.output<S>> {
    return this.d.bus.request(subjects.estore(node, op), body, schema, { timeoutMs: this.d.timeoutMs });
  }
}

/** Whether two stats of one replica show the same version and size (both absent: the same too). */
export function sameStat(a: Stat | undefined, b: Stat | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.version === b.version && a.sizeBytes === b.sizeBytes;
}

/** Waits `ms` (0: not at all). */
export async function pause(ms: number): Promise<void> {
  if (ms > 0) await sleep(ms);
}
