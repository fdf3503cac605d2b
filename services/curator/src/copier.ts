// One copy of a replica, the executor of a plan's CopyAction: read the source replica
// in pieces, write them to the target disk, check that the source did not change
// meanwhile, then record the new replica in the extent-group map by compare-and-set.
// After a CONFLICT the entry is read again and the extent group planned again (the
// caller's `replan`), so a replica is never recorded on a wrong or duplicate disk.
import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import type { Logger } from '@strata/log';
import type { MdMaps } from '@strata/md-client';
import { EstoreOp, egDeleteReply, egReadReply, egStatReply, egWriteReply, keys, subjects, type vdiskOwnership } from '@strata/proto';
import { withCopy, type CopyAction, type EgroupRow } from './plan';

/** Compare-and-sets of one extent group's entry (each after a fresh read and plan) before the copy is given up until the next scan. */
const RECORD_ATTEMPTS = 3;

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
      const bytes = await this.copyBytes(action);
      if (!this.d.leading()) throw new StrataError(ErrorCode.FENCED, `egroup ${action.egroup}: this curator is no longer the master; the copy is not recorded`);
      const current = await this.d.md.get('egroup', keys.egroup(action.egroup));
      if (current === null) return undefined;
      const next = withCopy(current.value, action);
      if (next.ok && current.revision === action.revision) {
        try {
          const revision = await this.d.md.put('egroup', keys.egroup(action.egroup), next.entry, action.revision);
          return { action, bytes, row: { egroup: action.egroup, revision, entry: next.entry } };
        } catch (err) {
          if (!isStrataError(err, ErrorCode.CONFLICT)) throw err;
        }
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
   * The source replica's bytes on the target disk, at the source's version: the target
   * is cleared first (an interrupted copy may have left part of one), the pieces are
   * written with versions rising to the source's, and the source is asked again at
   * the end: if it changed meanwhile, the copy may miss a write, and is refused.
   */
  private async copyBytes(action: CopyAction): Promise<number> {
    const { source, target, egroup } = action;
    const before = await this.stat(source.node, source.disk, egroup);
    await this.request(target.node, EstoreOp.delete, { disk: target.disk, egroup }, egDeleteReply);
    if (before === undefined || before.sizeBytes === 0) {
      if (action.bytes > 0) throw new StrataError(ErrorCode.NOT_FOUND, `egroup ${egroup}: no replica on disk ${source.disk} (${source.node}) to copy from`);
      return 0;
    }
    const epoch = (await this.d.own.get(keys.vdiskOwnership(action.vdisk)))?.value.epoch ?? 0;
    const pieces = Math.ceil(before.sizeBytes / this.d.chunkBytes);
    // Versions only order writes; a replica at a version the map does not know is gone
    // past by the owner's next write (it asks every replica after a CONFLICT).
    const lastVersion = Math.max(before.version, pieces);
    for (let i = 0; i < pieces; i++) {
      const offset = i * this.d.chunkBytes;
      const length = Math.min(this.d.chunkBytes, before.sizeBytes - offset);
      await this.d.pace(length);
      const { data } = await this.request(source.node, EstoreOp.read, { disk: source.disk, egroup, offset, length }, egReadReply);
      if (data.length !== length) throw new StrataError(ErrorCode.INTERNAL, `egroup ${egroup}: disk ${source.disk} returned ${data.length} bytes for a read of ${length}`);
      const version = lastVersion - (pieces - 1 - i);
      await this.request(target.node, EstoreOp.write, { disk: target.disk, egroup, vdisk: action.vdisk, epoch, version, sizeBytes: before.sizeBytes, pieces: [{ offset, data }] }, egWriteReply);
    }
    const after = await this.stat(source.node, source.disk, egroup);
    if (after === undefined || after.version !== before.version || after.sizeBytes !== before.sizeBytes) {
      throw new StrataError(ErrorCode.CONFLICT, `egroup ${egroup}: the replica on disk ${source.disk} changed during the copy (version ${before.version} -> ${after?.version ?? 'gone'}); the next scan copies it again`);
    }
    return before.sizeBytes;
  }

  private async stat(node: string, disk: bigint, egroup: bigint): Promise<{ version: number; sizeBytes: number } | undefined> {
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

/** Waits `ms` (0: not at all). */
export async function pause(ms: number): Promise<void> {
  if (ms > 0) await sleep(ms);
}
