// The client's view of the NBD wire, written from the NBD spec (doc/proto.md) and not
// from the gateway's codec: building a handshake and request stream, reading the
// server's replies back, and the spec's rules for which request gets which answer.
// The fuzz targets compare the gateway against this.
import { MAX_PAYLOAD_BYTES } from '@strata/gateway';
import { IHAVEOPT, MAGIC, OPTION_REPLY_MAGIC, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, goData, optionBytes } from '../../services/gateway/test/raw-client';
import type { DeviceCall } from './nbd-harness';

export const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 } as const;
export const REP = { ACK: 1, SERVER: 2, INFO: 3, ERR_UNSUP: 0x80000001, ERR_POLICY: 0x80000002, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006, ERR_TOO_BIG: 0x80000009 } as const;
export const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const;
export const CMD_FLAG = { FUA: 1, NO_HOLE: 2 } as const;
export const ERRNO = { OK: 0, EINVAL: 22, ENOSPC: 28 } as const;
export const GREETING_BYTES = 18;
export const REQUEST_HEADER_BYTES = 28;
export { IHAVEOPT, REQUEST_MAGIC };

/** Client flags FIXED_NEWSTYLE | NO_ZEROES, then NBD_OPT_GO on `name`. */
export function openExportBytes(name: string): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0, 3]), optionBytes(OPT.GO, goData(name))]);
}

// ---- Reading what the server wrote ----------------------------------------------------------

/** A cursor over the server's output that says exactly where it stops making sense. */
export class OutputReader {
  private at = 0;
  constructor(private readonly bytes: Buffer) {}
  get remaining(): number {
    return this.bytes.length - this.at;
  }
  take(lengthBytes: number, what: string): Buffer {
    if (this.remaining < lengthBytes) throw new Error(`server output ends inside ${what}: ${this.remaining} of ${lengthBytes} bytes at offset ${this.at}`);
    const out = this.bytes.subarray(this.at, this.at + lengthBytes);
    this.at += lengthBytes;
    return out;
  }
}

export function readGreeting(out: OutputReader): void {
  const greeting = out.take(GREETING_BYTES, 'the greeting');
  if (!greeting.subarray(0, 8).equals(MAGIC) || !greeting.subarray(8, 16).equals(IHAVEOPT)) throw new Error(`bad greeting ${greeting.toString('hex')}`);
  if (greeting.readUInt16BE(16) !== 3) throw new Error(`greeting flags ${greeting.readUInt16BE(16)}, expected FIXED_NEWSTYLE | NO_ZEROES`);
}

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export function readOptionReply(out: OutputReader): OptionReply {
  const header = out.take(20, 'an option reply header');
  if (!header.subarray(0, 8).equals(OPTION_REPLY_MAGIC)) throw new Error(`bad option reply magic ${header.subarray(0, 8).toString('hex')}`);
  const length = header.readUInt32BE(16);
  return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: out.take(length, 'option reply data') };
}

export interface SimpleReply {
  errno: number;
  handle: bigint;
  data?: Buffer;
}

/** Simple replies to the end of the output; `readLength` says how much data a successful reply to a handle carries. */
export function readSimpleReplies(out: OutputReader, readLength: (handle: bigint) => number | undefined): SimpleReply[] {
  const replies: SimpleReply[] = [];
  while (out.remaining > 0) {
    const header = out.take(16, 'a simple reply header');
    if (header.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new Error(`bad simple reply magic ${header.toString('hex')}`);
    const errno = header.readUInt32BE(4);
    const handle = header.readBigUInt64BE(8);
    const length = readLength(handle);
    if (length === undefined) throw new Error(`a reply to handle ${handle}, which no complete request carried`);
    replies.push(errno === 0 && length > 0 ? { errno, handle, data: Buffer.from(out.take(length, 'read data')) } : { errno, handle });
  }
  return replies;
}

// ---- The transmission phase by the spec ---------------------------------------------------

export interface Request {
  magic: number;
  flags: number;
  type: number;
  handle: bigint;
  offset: bigint;
  lengthBytes: number;
  /** A WRITE's data (whatever its header claims; a short one is a truncated stream). */
  payload?: Buffer;
}

/** Encodes requests byte by byte: magic, flags, type, handle, offset, length, a WRITE's payload. */
export function encodeRequests(requests: readonly Request[]): Buffer {
  return Buffer.concat(
    requests.map((r) => {
      const header = Buffer.alloc(REQUEST_HEADER_BYTES);
      header.writeUInt32BE(r.magic, 0);
      header.writeUInt16BE(r.flags, 4);
      header.writeUInt16BE(r.type, 6);
      header.writeBigUInt64BE(r.handle, 8);
      header.writeBigUInt64BE(r.offset, 16);
      header.writeUInt32BE(r.lengthBytes, 24);
      return r.payload === undefined ? header : Buffer.concat([header, r.payload]);
    }),
  );
}

/** What a request stream means: the complete requests the server must act on, in order. */
export interface Decoded {
  requests: Request[];
  /** Why the server stops reading: end of bytes, DISC, or a framing error it must close on. */
  stop: 'end' | 'disconnect' | 'bad-magic' | 'oversized-write';
}

/**
 * Reads a transmission stream the way the spec frames it. A WRITE's payload is part
 * of its request; a request cut short by the end of the stream is no request at all.
 */
export function decodeRequests(stream: Buffer): Decoded {
  const requests: Request[] = [];
  let at = 0;
  while (stream.length - at >= REQUEST_HEADER_BYTES) {
    const magic = stream.readUInt32BE(at);
    if (magic !== REQUEST_MAGIC) return { requests, stop: 'bad-magic' };
    const type = stream.readUInt16BE(at + 6);
    const lengthBytes = stream.readUInt32BE(at + 24);
    if (type === CMD.WRITE && lengthBytes > MAX_PAYLOAD_BYTES) return { requests, stop: 'oversized-write' };
    if (type === CMD.DISC) return { requests, stop: 'disconnect' };
    const payloadBytes = type === CMD.WRITE ? lengthBytes : 0;
    if (stream.length - at - REQUEST_HEADER_BYTES < payloadBytes) break;
    const request: Request = {
      magic,
      flags: stream.readUInt16BE(at + 4),
      type,
      handle: stream.readBigUInt64BE(at + 8),
      offset: stream.readBigUInt64BE(at + 16),
      lengthBytes,
    };
    if (type === CMD.WRITE) request.payload = stream.subarray(at + REQUEST_HEADER_BYTES, at + REQUEST_HEADER_BYTES + payloadBytes);
    requests.push(request);
    at += REQUEST_HEADER_BYTES + payloadBytes;
  }
  return { requests, stop: 'end' };
}

const allowedFlags: ReadonlyMap<number, number> = new Map([
  [CMD.READ, CMD_FLAG.FUA],
  [CMD.WRITE, CMD_FLAG.FUA],
  [CMD.FLUSH, CMD_FLAG.FUA],
  [CMD.TRIM, CMD_FLAG.FUA],
  [CMD.WRITE_ZEROES, CMD_FLAG.FUA | CMD_FLAG.NO_HOLE],
]);

/**
 * The errno a request must get from a server that advertises flush, FUA, trim and
 * write-zeroes and nothing else: EINVAL for a command or flag it did not advertise,
 * a zero length or a read beyond the maximum payload; ENOSPC for a write or zeroing
 * past the end, EINVAL for anything else past the end; 0 otherwise.
 */
export function errnoFor(r: Request, exportSizeBytes: number): number {
  const allowed = allowedFlags.get(r.type);
  if (allowed === undefined || (r.flags & ~allowed) !== 0) return ERRNO.EINVAL;
  if (r.type === CMD.FLUSH) return ERRNO.OK;
  if (r.lengthBytes === 0) return ERRNO.EINVAL;
  if (r.type === CMD.READ && r.lengthBytes > MAX_PAYLOAD_BYTES) return ERRNO.EINVAL;
  if (r.offset + BigInt(r.lengthBytes) > BigInt(exportSizeBytes)) return r.type === CMD.WRITE || r.type === CMD.WRITE_ZEROES ? ERRNO.ENOSPC : ERRNO.EINVAL;
  return ERRNO.OK;
}

/** The device call an accepted request makes. */
export function deviceCallFor(r: Request): DeviceCall {
  const fua = (r.flags & CMD_FLAG.FUA) !== 0;
  switch (r.type) {
    case CMD.READ:
      return { op: 'read', offset: Number(r.offset), lengthBytes: r.lengthBytes };
    case CMD.WRITE:
      return { op: 'write', offset: Number(r.offset), lengthBytes: r.lengthBytes, fua, data: Buffer.from(r.payload ?? []) };
    case CMD.FLUSH:
      return { op: 'flush', offset: 0, lengthBytes: 0 };
    default:
      return { op: 'zero', offset: Number(r.offset), lengthBytes: r.lengthBytes };
  }
}
