// The sidecar of an extent-group replica (`<egroup>.meta` beside `<egroup>.eg`): its
// owner vDisk, the highest epoch seen, its version and size, its slice size, one
// CRC32C per slice, and the digest of the write that made its version, in CBOR.
// It is replaced atomically (temporary file, fsync, rename, fsync of the directory),
// so after a crash it is either the old one or the new one, never a mix.
import { open, rename, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { bytes, decodeUntyped, encode, u64, uint, validate } from '@strata/codec';
import { DIGEST_BYTES, sliceBytesProblem, sliceCount } from './slices';

/**
 * Bumped when the layout changes; a store refuses a sidecar of a format it does not
 * know. Format 1 kept an extent table with one CRC32C per whole extent; format 2 keeps
 * one per slice, for in-place writes of pieces and reads of any range.
 */
export const SIDECAR_FORMAT = 2;

export const DATA_SUFFIX = '.eg';
export const SIDECAR_SUFFIX = '.meta';
/** A sidecar being written; one found at start-up is left over from a crash. */
export const TEMP_SUFFIX = '.tmp';

export const sidecarSchema = z
  .strictObject({
    format: z.literal(SIDECAR_FORMAT),
    /** The only vDisk allowed to write this extent group. */
    vdisk: u64,
    /** The highest ownership epoch of that vDisk seen by this replica: lower ones are FENCED. */
    epoch: uint,
    /** The replica's version: that of the last write applied (versions need not be contiguous). */
    version: uint.refine((v) => v >= 1, 'must be at least 1'),
    /** The replica's size: bytes past the data file's end, up to here, read as zeros. */
    sizeBytes: uint,
    /** The slice size the replica was made with; it keeps it for life. */
    sliceBytes: uint.superRefine((v, ctx) => {
      const problem = sliceBytesProblem(v);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    }),
    /** One little-endian uint32 CRC32C per slice (see slices.ts). */
    crcs: bytes,
    /** SHA-256 of the write that made `version`, to recognise its retry. */
    digest: bytes.refine((d) => d.length === DIGEST_BYTES, `must be ${DIGEST_BYTES} bytes`),
  })
  .superRefine((s, ctx) => {
    const slices = sliceCount(s.sizeBytes, s.sliceBytes);
    if (s.crcs.length !== slices * 4) {
      ctx.addIssue({ code: 'custom', path: ['crcs'], message: `holds ${s.crcs.length} bytes but ${slices} slices of ${s.sliceBytes} bytes need ${slices * 4}` });
    }
  });

export interface Sidecar {
  format: typeof SIDECAR_FORMAT;
  vdisk: bigint;
  epoch: number;
  version: number;
  sizeBytes: number;
  sliceBytes: number;
  crcs: Uint8Array;
  digest: Uint8Array;
}

/** A sidecar of another format than this store's: quarantined at open with this reason. */
export class SidecarFormatError extends Error {
  override readonly name = 'SidecarFormatError';
  constructor(readonly format: unknown) {
    super(
      format === 1
        ? 'its sidecar is format 1 (one CRC32C per whole extent), which this store no longer reads; no format-1 replica ever held deployed data, so there is nothing to migrate'
        : `its sidecar has format ${JSON.stringify(format)}; this store reads format ${SIDECAR_FORMAT} only`,
    );
  }
}

export function dataPath(dir: string, egroup: bigint): string {
  return join(dir, `${egroup}${DATA_SUFFIX}`);
}

export function sidecarPath(dir: string, egroup: bigint): string {
  return join(dir, `${egroup}${SIDECAR_SUFFIX}`);
}

/**
 * Reads and checks a sidecar. Throws SidecarFormatError for another format, and a
 * StrataError INVALID from the codec if it is damaged. Its byte strings are views
 * into the file's bytes, which nothing else holds.
 */
export async function readSidecar(path: string): Promise<Sidecar> {
  const raw = decodeUntyped(await readFile(path));
  const format = typeof raw === 'object' && raw !== null ? (raw as { format?: unknown }).format : undefined;
  if (format !== SIDECAR_FORMAT) throw new SidecarFormatError(format);
  return validate(raw, sidecarSchema) as Sidecar;
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
