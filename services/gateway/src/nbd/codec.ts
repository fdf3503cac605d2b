// Pure encoders and parsers of NBD messages: bytes in, values out, and back. No
// sockets and no state, so every message is unit-tested against hand-built bytes
// (test/nbd-codec.test.ts); the connection module only moves these bytes around.
import { assert } from '@strata/errors';
import {
  CLIENT_FLAGS_BYTES,
  CLIENT_FLAGS_KNOWN,
  ClientFlag,
  EXPORT_NAME_PADDING_BYTES,
  GREETING_BYTES,
  HandshakeFlag,
  NBD_IHAVEOPT,
  NBD_MAGIC,
  NBD_OPTION_REPLY_MAGIC,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRING_MAX_BYTES,
  NbdInfo,
  type NbdRep,
  OPTION_HEADER_BYTES,
  OPTION_REPLY_HEADER_BYTES,
  REQUEST_HEADER_BYTES,
  SIMPLE_REPLY_HEADER_BYTES,
} from './protocol';

/** A parse either yields a value or says, for the log, why the bytes are wrong. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

// ---- Handshake --------------------------------------------------------------------------

/** The server's first 18 bytes: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE | NO_ZEROES. */
export function encodeGreeting(): Uint8Array {
  const out = new Uint8Array(GREETING_BYTES);
  const v = view(out);
  v.setBigUint64(0, NBD_MAGIC);
  v.setBigUint64(8, NBD_IHAVEOPT);
  v.setUint16(16, HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES);
  return out;
}

export interface ClientFlags {
  fixedNewstyle: boolean;
  noZeroes: boolean;
}

/** The client's 32-bit flags; an unknown bit means a client we do not understand. */
export function parseClientFlags(bytes: Uint8Array): Parsed<ClientFlags> {
  assert(bytes.length === CLIENT_FLAGS_BYTES, 'client flags are 4 bytes');
  const flags = view(bytes).getUint32(0);
  if ((flags & ~CLIENT_FLAGS_KNOWN) !== 0) return bad(`unknown client flags 0x${flags.toString(16)}`);
  return ok({ fixedNewstyle: (flags & ClientFlag.FIXED_NEWSTYLE) !== 0, noZeroes: (flags & ClientFlag.NO_ZEROES) !== 0 });
}

export interface OptionHeader {
  option: number;
  /** Bytes of option data that follow the header. */
  lengthBytes: number;
}

/** An option's 16-byte header: IHAVEOPT, option, length of its data. */
export function parseOptionHeader(bytes: Uint8Array): Parsed<OptionHeader> {
  assert(bytes.length === OPTION_HEADER_BYTES, 'an option header is 16 bytes');
  const v = view(bytes);
  const magic = v.getBigUint64(0);
  if (magic !== NBD_IHAVEOPT) return bad(`bad option magic 0x${magic.toString(16)}`);
  return ok({ option: v.getUint32(8), lengthBytes: v.getUint32(12) });
}

/** An NBD string: UTF-8, no NUL, at most 4096 bytes. */
function parseString(bytes: Uint8Array, what: string): Parsed<string> {
  if (bytes.length > NBD_STRING_MAX_BYTES) return bad(`${what} is ${bytes.length} bytes, more than ${NBD_STRING_MAX_BYTES}`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return bad(`${what} is not valid UTF-8`);
  }
  if (text.includes('\0')) return bad(`${what} contains a NUL`);
  return ok(text);
}

/** NBD_OPT_EXPORT_NAME's data: the whole of it is the name. */
export function parseExportNameData(data: Uint8Array): Parsed<string> {
  return parseString(data, 'export name');
}

export interface InfoRequest {
  name: string;
  /** The NBD_INFO_* types the client asked for (we may send others too). */
  infoTypes: number[];
}

/** NBD_OPT_INFO and NBD_OPT_GO's data: u32 name length, name, u16 count, count × u16. */
export function parseInfoRequest(data: Uint8Array): Parsed<InfoRequest> {
  if (data.length < 6) return bad(`option data is ${data.length} bytes, less than 6`);
  const v = view(data);
  const nameBytes = v.getUint32(0);
  if (nameBytes > data.length - 6) return bad(`name length ${nameBytes} does not fit in ${data.length} bytes of option data`);
  const name = parseString(data.subarray(4, 4 + nameBytes), 'export name');
  if (!name.ok) return name;
  const count = v.getUint16(4 + nameBytes);
  const rest = data.length - 6 - nameBytes;
  if (rest !== count * 2) return bad(`${count} information requests need ${count * 2} bytes, ${rest} follow`);
  const infoTypes: number[] = [];
  for (let i = 0; i < count; i++) infoTypes.push(v.getUint16(6 + nameBytes + i * 2));
  return ok({ name: name.value, infoTypes });
}

/** An option reply: magic, option, reply type, length, data. */
export function encodeOptionReply(option: number, type: NbdRep, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(OPTION_REPLY_HEADER_BYTES + data.length);
  const v = view(out);
  v.setBigUint64(0, NBD_OPTION_REPLY_MAGIC);
  v.setUint32(8, option);
  v.setUint32(12, type);
  v.setUint32(16, data.length);
  out.set(data, OPTION_REPLY_HEADER_BYTES);
  return out;
}

/** An error reply whose data is a message for a human (cut to the spec's 4096 bytes). */
export function encodeOptionError(option: number, type: NbdRep, message: string): Uint8Array {
  assert(type >= 0x80000000, 'an option error has bit 31 set');
  let bytes = utf8Encoder.encode(message);
  if (bytes.length > NBD_STRING_MAX_BYTES) bytes = bytes.subarray(0, NBD_STRING_MAX_BYTES);
  return encodeOptionReply(option, type, bytes);
}

/** NBD_REP_SERVER's data for NBD_OPT_LIST: u32 name length, name, then an optional description. */
export function encodeServerEntry(name: string, description = ''): Uint8Array {
  const nameBytes = utf8Encoder.encode(name);
  const descriptionBytes = utf8Encoder.encode(description).subarray(0, NBD_STRING_MAX_BYTES);
  const out = new Uint8Array(4 + nameBytes.length + descriptionBytes.length);
  view(out).setUint32(0, nameBytes.length);
  out.set(nameBytes, 4);
  out.set(descriptionBytes, 4 + nameBytes.length);
  return out;
}

/** NBD_REP_INFO data of type NBD_INFO_EXPORT: u16 type, u64 size, u16 transmission flags. */
export function encodeInfoExport(sizeBytes: number, transmissionFlags: number): Uint8Array {
  assert(Number.isSafeInteger(sizeBytes) && sizeBytes >= 0, 'an export size is a non-negative integer');
  const out = new Uint8Array(12);
  const v = view(out);
  v.setUint16(0, NbdInfo.EXPORT);
  v.setBigUint64(2, BigInt(sizeBytes));
  v.setUint16(10, transmissionFlags);
  return out;
}

/** NBD_REP_INFO data of type NBD_INFO_BLOCK_SIZE: u16 type, u32 minimum, preferred, maximum. */
export function encodeInfoBlockSize(minBytes: number, preferredBytes: number, maxBytes: number): Uint8Array {
  assert(minBytes >= 1 && minBytes <= preferredBytes && preferredBytes <= maxBytes, 'block sizes are ordered: min <= preferred <= max');
  const out = new Uint8Array(14);
  const v = view(out);
  v.setUint16(0, NbdInfo.BLOCK_SIZE);
  v.setUint32(2, minBytes);
  v.setUint32(6, preferredBytes);
  v.setUint32(10, maxBytes);
  return out;
}

/** The answer to NBD_OPT_EXPORT_NAME: u64 size, u16 flags, and 124 zeros unless NO_ZEROES. */
export function encodeExportNameReply(sizeBytes: number, transmissionFlags: number, noZeroes: boolean): Uint8Array {
  assert(Number.isSafeInteger(sizeBytes) && sizeBytes >= 0, 'an export size is a non-negative integer');
  const out = new Uint8Array(10 + (noZeroes ? 0 : EXPORT_NAME_PADDING_BYTES));
  const v = view(out);
  v.setBigUint64(0, BigInt(sizeBytes));
  v.setUint16(8, transmissionFlags);
  return out;
}

// ---- Transmission ---------------------------------------------------------------------------

export interface RequestHeader {
  flags: number;
  type: number;
  /** The client's opaque cookie, echoed in the reply. */
  handle: bigint;
  /** 64-bit on the wire: kept as a bigint so a huge offset is caught, not rounded. */
  offset: bigint;
  lengthBytes: number;
}

/** A request's 28-byte header. A bad magic means the stream is lost: the caller closes. */
export function parseRequestHeader(bytes: Uint8Array): Parsed<RequestHeader> {
  assert(bytes.length === REQUEST_HEADER_BYTES, 'a request header is 28 bytes');
  const v = view(bytes);
  const magic = v.getUint32(0);
  if (magic !== NBD_REQUEST_MAGIC) return bad(`bad request magic 0x${magic.toString(16)}`);
  return ok({
    flags: v.getUint16(4),
    type: v.getUint16(6),
    handle: v.getBigUint64(8),
    offset: v.getBigUint64(16),
    lengthBytes: v.getUint32(24),
  });
}

/** A simple reply's 16-byte header; a successful READ's data follows it. */
export function encodeSimpleReplyHeader(errno: number, handle: bigint): Uint8Array {
  const out = new Uint8Array(SIMPLE_REPLY_HEADER_BYTES);
  const v = view(out);
  v.setUint32(0, NBD_SIMPLE_REPLY_MAGIC);
  v.setUint32(4, errno);
  v.setBigUint64(8, handle);
  return out;
}
