// The sidecar of an extent-group replica (`<egroup>.meta` beside `<egroup>.eg`): its
// owner vDisk, the highest epoch seen, its version and its extent table, in CBOR.
// It is replaced atomically (temporary file, fsync, rename, fsync of the directory),
// so after a crash it is either the old one or the new one, never a mix.
import { open, rename, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { decode, encode, u64, uint } from '@strata/codec';
import { tableEnd, tableProblem, type Extent } from './extents';

/** Bumped when the layout changes; a store refuses a sidecar of a format it does not know. */
export const SIDECAR_FORMAT = 1;

export const DATA_SUFFIX = '.eg';
export const SIDECAR_SUFFIX = '.meta';
/** A sidecar being written; one found at start-up is left over from a crash. */
export const TEMP_SUFFIX = '.tmp';

const extentRecord = z.strictObject({ offset: uint, length: uint, crc32c: uint });

export const sidecarSchema = z
  .strictObject({
    format: z.literal(SIDECAR_FORMAT),
    /** The only vDisk allowed to write this extent group. */
    vdisk: u64,
    /** The highest ownership epoch of that vDisk seen by this replica: lower ones are FENCED. */
    epoch: uint,
    /** The replica's version: the number of writes applied. */
    version: uint.refine((v) => v >= 1, 'must be at least 1'),
    /** End of the last extent: the bytes of the data file that mean something. */
    sizeBytes: uint,
    /** Sorted by offset, disjoint. */
    extents: z.array(extentRecord),
    /** The write that produced `version`, to recognise its retry. */
    last: extentRecord,
  })
  .superRefine((s, ctx) => {
    const problem = tableProblem(s.extents);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['extents'], message: problem });
    if (tableEnd(s.extents) !== s.sizeBytes) ctx.addIssue({ code: 'custom', path: ['sizeBytes'], message: `is ${s.sizeBytes} but the extents end at ${tableEnd(s.extents)}` });
    if (!s.extents.some((e) => e.offset === s.last.offset && e.length === s.last.length && e.crc32c === s.last.crc32c)) {
      ctx.addIssue({ code: 'custom', path: ['last'], message: 'is not in the extent table' });
    }
  });

export interface Sidecar {
  format: typeof SIDECAR_FORMAT;
  vdisk: bigint;
  epoch: number;
  version: number;
  sizeBytes: number;
  extents: Extent[];
  last: Extent;
}

export function dataPath(dir: string, egroup: bigint): string {
  return join(dir, `${egroup}${DATA_SUFFIX}`);
}

export function sidecarPath(dir: string, egroup: bigint): string {
  return join(dir, `${egroup}${SIDECAR_SUFFIX}`);
}

/** Reads and checks a sidecar; throws (StrataError INVALID from the codec) if it is damaged. */
export async function readSidecar(path: string): Promise<Sidecar> {
  return decode(await readFile(path), sidecarSchema) as Sidecar;
}

/** fsync of a directory: makes the creations, renames and removals inside it durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces the sidecar of `egroup` in `dir` atomically and durably. The caller holds
 * the extent group's lock, so one temporary name per extent group is enough.
 */
export async function writeSidecar(dir: string, egroup: bigint, sidecar: Sidecar): Promise<void> {
  const path = sidecarPath(dir, egroup);
  const temp = `${path}${TEMP_SUFFIX}`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(encode(sidecar));
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  await rename(temp, path);
  await syncDirectory(dir);
}
