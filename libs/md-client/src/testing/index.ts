// An in-memory stand-in for the metadata maps, for unit tests of the actors that use
// them: the same compare-and-set rules, revisions and errors as the shards, and the
// same fencing rule (MdFenceCheck), with ownership epochs set by the test; no bus.
import { z } from 'zod';
import { describeIssues } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { type MdMap, mdValue } from '@strata/proto';
import { mdKeyProblem, type MdEntry, type MdMaps, type MdValue, type MdValueInput, type MdWriteOptions } from '../client';
import { MdFenceCheck } from '../fence';

export class MemoryMd implements MdMaps {
  private readonly entries = new Map<string, { value: unknown; revision: number }>();
  /** Like a KV stream sequence: every write anywhere takes the next one. */
  private sequence = 0;
  /** vDisk -> the epoch of its ownership record, as a shard's watch of `own` would have it. */
  private readonly ownership = new Map<bigint, number>();
  private readonly fences = new MdFenceCheck((vdisk) => this.ownership.get(vdisk));

  constructor(private readonly entriesMax = 100_000) {}

  private static id(map: MdMap, key: string): string {
    const problem = mdKeyProblem(key);
    if (problem !== undefined) throw new StrataError(ErrorCode.INVALID, `key "${key}" ${problem}`);
    return `${map}\u0000${key}`;
  }

  async get<M extends MdMap>(map: M, key: string): Promise<MdEntry<M> | null> {
    const e = this.entries.get(MemoryMd.id(map, key));
    return e === undefined ? null : { value: e.value as MdValue<M>, revision: e.revision };
  }

  /** Sets the epoch of a vDisk's ownership record (undefined: it has none), as a takeover would. */
  setOwnershipEpoch(vdisk: bigint, epoch: number | undefined): void {
    if (epoch === undefined) this.ownership.delete(vdisk);
    else this.ownership.set(vdisk, epoch);
    this.fences.ownershipChanged(vdisk, epoch);
  }

  async put<M extends MdMap>(map: M, key: string, value: MdValueInput<M>, revision: number, options: MdWriteOptions = {}): Promise<number> {
    const parsed = z.strictObject({ value: mdValue[map] as z.ZodType }).safeParse({ value });
    if (!parsed.success) throw new StrataError(ErrorCode.INVALID, `${map} map: ${describeIssues(parsed.error)}`);
    const id = MemoryMd.id(map, key);
    if (options.fence !== undefined) this.fences.admit(options.fence);
    const current = this.entries.get(id);
    if (revision === 0 && current !== undefined) throw new StrataError(ErrorCode.CONFLICT, `${map}/${key} already exists`);
    if (revision !== 0 && current?.revision !== revision) throw new StrataError(ErrorCode.CONFLICT, `${map}/${key} changed since revision ${revision}`);
    if (current === undefined && this.entries.size >= this.entriesMax) throw new StrataError(ErrorCode.NO_SPACE, `MemoryMd holds ${this.entriesMax} entries`);
    this.sequence++;
    this.entries.set(id, { value: (parsed.data as { value: unknown }).value, revision: this.sequence });
    return this.sequence;
  }

  async delete(map: MdMap, key: string, revision?: number, options: MdWriteOptions = {}): Promise<void> {
    const id = MemoryMd.id(map, key);
    if (options.fence !== undefined) this.fences.admit(options.fence);
    const current = this.entries.get(id);
    if (revision !== undefined && current?.revision !== revision) throw new StrataError(ErrorCode.CONFLICT, `${map}/${key} changed since revision ${revision}`);
    this.sequence++;
    this.entries.delete(id);
  }

  /** Every key of a map, for assertions. */
  keys(map: MdMap): string[] {
    const prefix = `${map}\u0000`;
    return [...this.entries.keys()].filter((id) => id.startsWith(prefix)).map((id) => id.slice(prefix.length));
  }
}

