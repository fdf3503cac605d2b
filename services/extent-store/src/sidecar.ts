// The sidecar of an extent-group replica (`<egroup>.meta` beside `<egroup>.eg`): its
// owner vDisk, the highest epoch seen, its version and size, its slice size, one
// CRC32C per slice, and the digest of the write that made its version, in CBOR.
//
// Format 3 keeps two fixed-size slots in the file, A and B, so an update is one pwrite
// and one fdatasync instead of a replacement of the file (temporary file, fsync,
// rename, fsync of the directory: a journal commit of its own, paid by every write):
//
//   offset 0            file header: magic "SCAR", format (u32), slot size (u32),
//                       CRC32C of those 12 bytes (u32); the rest of the block is zeros
//   FILE_HEADER_BYTES   slot A, `slotBytes` long
//   + slotBytes         slot B, `slotBytes` long
//
// A slot holds one record: magic "SREC", format (u32), sequence (u64), payload length
// (u32), CRC32C of those 20 bytes and the payload (u32), then the payload: the CBOR
// sidecar, whose own `format` field is 3 too. Integers are little-endian. The record of
// sequence n lives in slot n % 2. The file header and the slots start on 4 KiB
// boundaries, so no device block holds bytes of two of them.
//
// An update writes the record of sequence n + 1 into the slot not holding the current
// record n, then fdatasyncs. A crash during it can tear only that slot, whose CRC32C
// then fails: the reader takes the valid record of the highest sequence, so the file
// reads as the old sidecar or the new one, never a mix. The file's size never changes
// on an update, and its slots were written as zeros (not left as holes) when it was
// made, so fdatasync has no metadata to flush. A new replica, a payload that outgrows
// its slot, and a format-2 file (a bare CBOR map, read for stores made before format
// 3) are replaced whole and atomically as before: temporary file, fsync, rename, fsync
// of the directory.
import { open, rename, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, StrataError } from '@strata/errors';
import { bytes, decodeUntyped, encode, u64, uint, validate } from '@strata/codec';
import { DIGEST_BYTES, SLICES_PER_EGROUP_MAX, sliceBytesProblem, sliceCount } from './slices';

/**
 * Bumped when the layout changes; a store refuses a sidecar of a format it does not
 * know. Format 1 kept an extent table with one CRC32C per whole extent; format 2 keeps
 * one per slice, for in-place writes of pieces and reads of any range, as a bare CBOR
 * map replaced whole on every write; format 3 keeps the same fields in two slots
 * updated in place (see above). Format 2 is still read.
 */
export const SIDECAR_FORMAT = 3;
/** The bare-CBOR format this store still reads; a write rewrites it as SIDECAR_FORMAT. */
const FORMAT_BARE = 2;

export const DATA_SUFFIX = '.eg';
export const SIDECAR_SUFFIX = '.meta';
/** A sidecar being written; one found at start-up is left over from a crash. */
export const TEMP_SUFFIX = '.tmp';

const KiB = 1024;
/** Alignment of the file header and the slots: a page, and a block of any common device. */
const BLOCK_BYTES = 4 * KiB;
/** The file header's region: one block, so slot A starts on a block boundary. */
export const FILE_HEADER_BYTES = BLOCK_BYTES;
const FILE_MAGIC = 0x52414353; // "SCAR" read as a little-endian u32
const FILE_HEADER_USED = 16;
const RECORD_MAGIC = 0x43455253; // "SREC" read as a little-endian u32
export const RECORD_HEADER_BYTES = 24;
/** Smallest slot: one block. */
export const SLOT_BYTES_MIN = BLOCK_BYTES;
/** Largest slot a file may declare: twice what slotBytesFor gives the CRCs of SLICES_PER_EGROUP_MAX slices. */
export const SLOT_BYTES_MAX = 1024 * KiB;
/**
 * A new slot has room for this many times the replica's slices: an extent group grows
 * as its vDisk fills it, and each growth past the slot costs one replacement of the file.
 */
const SLOT_GROWTH = 4;

function schemaOf<F extends number>(format: F) {
  return z
    .strictObject({
      format: z.literal(format),
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
}

/** The payload of a format-3 record. */
export const sidecarSchema = schemaOf(SIDECAR_FORMAT);
/** A format-2 file: the same fields as a bare CBOR map. */
const bareSchema = schemaOf(FORMAT_BARE);

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

/** Where a format-3 file holds its current record: what its next update in place needs. */
export interface Slots {
  slotBytes: number;
  /** The current record's sequence; it lives in slot `sequence % 2`. */
  sequence: number;
}

/** A sidecar as its file holds it. `slots` is undefined for a format-2 file, which has none. */
export interface StoredSidecar {
  sidecar: Sidecar;
  slots: Slots | undefined;
}

/** A sidecar of a format this store does not read: quarantined at open with this reason. */
export class SidecarFormatError extends Error {
  override readonly name = 'SidecarFormatError';
  constructor(readonly format: unknown) {
    super(
      format === 1
        ? 'its sidecar is format 1 (one CRC32C per whole extent), which this store no longer reads; no format-1 replica ever held deployed data, so there is nothing to migrate'
        : `its sidecar has format ${JSON.stringify(format)}; this store reads formats ${FORMAT_BARE} and ${SIDECAR_FORMAT} only`,
    );
  }
}

export function dataPath(dir: string, egroup: bigint): string {
  return join(dir, `${egroup}${DATA_SUFFIX}`);
}

export function sidecarPath(dir: string, egroup: bigint): string {
  return join(dir, `${egroup}${SIDECAR_SUFFIX}`);
}

// ---- The format: pure ---------------------------------------------------------------

function invalid(message: string): StrataError {
  return new StrataError(ErrorCode.INVALID, message);
}

/** Byte offset in the file of the slot that holds the record of `sequence`. */
export function slotOffset(slotBytes: number, sequence: number): number {
  return FILE_HEADER_BYTES + (sequence % 2) * slotBytes;
}

/**
 * The slot size for a new file whose first record is `recordBytes` long: room for
 * SLOT_GROWTH times the sidecar's CRCs (at most those of SLICES_PER_EGROUP_MAX
 * slices), rounded up to a power of two, at least one block. Only the record is
 * written on an update, so a roomy slot costs disk space, not time.
 */
export function slotBytesFor(recordBytes: number, crcBytes: number): number {
  const grownCrcBytes = Math.min(SLOT_GROWTH * crcBytes, SLICES_PER_EGROUP_MAX * 4);
  const wanted = recordBytes + Math.max(0, grownCrcBytes - crcBytes);
  let slotBytes = SLOT_BYTES_MIN;
  while (slotBytes < wanted) slotBytes *= 2;
  return slotBytes;
}

/** A record: its header, then the CBOR payload. */
export function encodeRecord(sidecar: Sidecar, sequence: number): Buffer {
  const payload = encode(sidecar);
  const record = Buffer.alloc(RECORD_HEADER_BYTES + payload.length);
  record.writeUInt32LE(RECORD_MAGIC, 0);
  record.writeUInt32LE(SIDECAR_FORMAT, 4);
  record.writeBigUInt64LE(BigInt(sequence), 8);
  record.writeUInt32LE(payload.length, 16);
  record.set(payload, RECORD_HEADER_BYTES);
  record.writeUInt32LE(recordCrc(record.subarray(0, 20), payload), 20);
  return record;
}

function recordCrc(header: Uint8Array, payload: Uint8Array): number {
  return crc32c(payload, crc32c(header));
}

/** A slot's record (its payload still CBOR), or why the slot holds none. */
export type SlotContent = { sequence: number; payload: Buffer } | { problem: string };

/**
 * The record in a slot, or why there is none: a slot never written (zeros), or one
 * whose write a crash cut short. The payload is not decoded here: a record whose
 * CRC32C holds was written whole, and a bad payload in it is damage, not a torn write.
 */
export function decodeRecord(slot: Buffer): SlotContent {
  if (slot.length < RECORD_HEADER_BYTES) return { problem: `only ${slot.length} bytes` };
  if (slot.readUInt32LE(0) !== RECORD_MAGIC) return { problem: 'no record' };
  const length = slot.readUInt32LE(16);
  if (length > slot.length - RECORD_HEADER_BYTES) return { problem: `a payload of ${length} bytes does not fit` };
  const payload = slot.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + length);
  if (recordCrc(slot.subarray(0, 20), payload) !== slot.readUInt32LE(20)) return { problem: 'its CRC32C fails' };
  // Checked after the CRC32C: a record that passes it was written whole by a store
  // that knew its format, so another one here is a record to refuse, not noise.
  const format = slot.readUInt32LE(4);
  if (format !== SIDECAR_FORMAT) throw new SidecarFormatError(format);
  const sequence = slot.readBigUInt64LE(8);
  if (sequence > BigInt(Number.MAX_SAFE_INTEGER)) return { problem: `sequence ${sequence} is beyond 2^53` };
  return { sequence: Number(sequence), payload };
}

/**
 * Which of two slots' decodings holds the current record: the valid one of the higher
 * sequence. The other is the previous record, or a newer one a crash tore.
 */
export function pickRecord(a: SlotContent, b: SlotContent): { sequence: number; payload: Buffer } | undefined {
  if (!('sequence' in a)) return 'sequence' in b ? b : undefined;
  if (!('sequence' in b)) return a;
  return b.sequence > a.sequence ? b : a;
}

/** A whole format-3 file: header, the record of `sequence` in its slot, the other slot zeros. */
export function encodeSidecarFile(sidecar: Sidecar, sequence: number, slotBytes: number): Buffer {
  const record = encodeRecord(sidecar, sequence);
  const file = Buffer.alloc(FILE_HEADER_BYTES + 2 * slotBytes);
  file.writeUInt32LE(FILE_MAGIC, 0);
  file.writeUInt32LE(SIDECAR_FORMAT, 4);
  file.writeUInt32LE(slotBytes, 8);
  file.writeUInt32LE(crc32c(file.subarray(0, 12)), 12);
  file.set(record, slotOffset(slotBytes, sequence));
  return file;
}

/**
 * Decodes a sidecar file of format 3 or 2. Throws SidecarFormatError for another
 * format, and a StrataError INVALID if it is damaged. Its byte strings are views into
 * `file`.
 */
export function decodeSidecarFile(file: Buffer): StoredSidecar {
  if (file.length < 4 || file.readUInt32LE(0) !== FILE_MAGIC) return decodeBare(file);
  if (file.length < FILE_HEADER_USED) throw invalid(`its file header is cut short at ${file.length} bytes`);
  if (crc32c(file.subarray(0, 12)) !== file.readUInt32LE(12)) throw invalid('its file header fails its CRC32C');
  const format = file.readUInt32LE(4);
  if (format !== SIDECAR_FORMAT) throw new SidecarFormatError(format);
  const slotBytes = file.readUInt32LE(8);
  if (slotBytes < SLOT_BYTES_MIN || slotBytes > SLOT_BYTES_MAX || (slotBytes & (slotBytes - 1)) !== 0) {
    throw invalid(`its file header gives a slot size of ${slotBytes} bytes, not a power of two from ${SLOT_BYTES_MIN} to ${SLOT_BYTES_MAX}`);
  }
  const slot = (i: number): Buffer => file.subarray(slotOffset(slotBytes, i), slotOffset(slotBytes, i) + slotBytes);
  const a = decodeRecord(slot(0));
  const b = decodeRecord(slot(1));
  const current = pickRecord(a, b);
  if (current === undefined) {
    const why = (slot: SlotContent): string => ('problem' in slot ? slot.problem : '');
    throw invalid(`neither slot holds a valid record (slot A: ${why(a)}; slot B: ${why(b)})`);
  }
  const sidecar = validate(decodeUntyped(current.payload), sidecarSchema) as Sidecar;
  return { sidecar, slots: { slotBytes, sequence: current.sequence } };
}

/** A format-2 file (or an older one, refused): a bare CBOR map. */
function decodeBare(file: Buffer): StoredSidecar {
  const raw = decodeUntyped(file);
  const format = typeof raw === 'object' && raw !== null ? (raw as { format?: unknown }).format : undefined;
  if (format !== FORMAT_BARE) throw new SidecarFormatError(format);
  const fields = validate(raw, bareSchema);
  return { sidecar: { ...fields, format: SIDECAR_FORMAT }, slots: undefined };
}

/** An update: `record` written at `offset` of the existing file, or `file` replacing it; then the file holds `stored`. */
export type UpdatePlan = { inPlace: true; offset: number; record: Buffer; stored: StoredSidecar } | { inPlace: false; file: Buffer; stored: StoredSidecar };

/**
 * How to store `next` over `current`: in place, as the record of the next sequence
 * in the other slot, when the file has slots and the record fits one; otherwise as a
 * whole new file.
 */
export function planUpdate(next: Sidecar, current: StoredSidecar | undefined): UpdatePlan {
  const sequence = current?.slots === undefined ? 0 : current.slots.sequence + 1;
  const record = encodeRecord(next, sequence);
  if (current?.slots !== undefined && record.length <= current.slots.slotBytes) {
    const { slotBytes } = current.slots;
    return { inPlace: true, offset: slotOffset(slotBytes, sequence), record, stored: { sidecar: next, slots: { slotBytes, sequence } } };
  }
  const slotBytes = slotBytesFor(record.length, next.crcs.length);
  return { inPlace: false, file: encodeSidecarFile(next, sequence, slotBytes), stored: { sidecar: next, slots: { slotBytes, sequence } } };
}

// ---- I/O ----------------------------------------------------------------------------

/**
 * Reads and checks a sidecar. Throws SidecarFormatError for another format, and a
 * StrataError INVALID if it is damaged. Its byte strings are views into the file's
 * bytes, which nothing else holds.
 */
export async function readSidecar(path: string): Promise<StoredSidecar> {
  return decodeSidecarFile(await readFile(path));
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
 * Stores `next` as the sidecar of `egroup` in `dir` durably, over `current` (what
 * the file holds now, undefined for a new replica): in place when it can, else by
 * replacing the file. Returns what the file then holds, for the caller's next update.
 * The caller holds the extent group's lock, so one writer per file is a given.
 */
export async function updateSidecar(dir: string, egroup: bigint, next: Sidecar, current: StoredSidecar | undefined): Promise<StoredSidecar> {
  const plan = planUpdate(next, current);
  if (plan.inPlace) await writeInPlace(sidecarPath(dir, egroup), plan.record, plan.offset);
  else await replaceFile(dir, egroup, plan.file);
  return plan.stored;
}

/** pwrite of a record into its slot of an existing file, then fdatasync. */
async function writeInPlace(path: string, record: Buffer, offset: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    let written = 0;
    while (written < record.length) {
      const { bytesWritten } = await handle.write(record, written, record.length - written, offset + written);
      if (bytesWritten === 0) throw new Error(`writing ${path} made no progress`);
      written += bytesWritten;
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Replaces the file atomically and durably: temporary file, fsync, rename, fsync of the directory. */
async function replaceFile(dir: string, egroup: bigint, file: Buffer): Promise<void> {
  const path = sidecarPath(dir, egroup);
  const temp = `${path}${TEMP_SUFFIX}`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(file);
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
