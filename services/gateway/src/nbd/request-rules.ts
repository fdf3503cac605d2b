// What to do with one transmission request, decided from its header and the export's
// size alone: execute it, refuse it with an errno, end the session (DISC), or drop the
// connection because the stream cannot be resynchronised. Pure, so every rule is
// unit-tested; the connection carries the decision out.
import type { RequestHeader } from './codec';
import { MAX_PAYLOAD_BYTES, NbdCmd, NbdCmdFlag, NbdErrno, TransmissionFlag } from './protocol';

export type BlockOp = 'read' | 'write' | 'flush' | 'trim' | 'zero';

export type RequestDecision =
  /** The client broke the framing in a way we cannot skip over: close the connection. */
  | { action: 'close'; reason: string }
  /** NBD_CMD_DISC: answer nothing, finish what is in flight, then close. */
  | { action: 'disconnect' }
  /** Read `payloadBytes` (a WRITE's data, to stay in step), then reply with `errno`. */
  | { action: 'refuse'; errno: NbdErrno; reason: string; payloadBytes: number }
  /** Run `op`; a WRITE's `lengthBytes` of data follow the header. */
  | { action: 'execute'; op: BlockOp; offset: number; lengthBytes: number; fua: boolean; payloadBytes: number };

/** Command flags each command may carry; anything else is EINVAL (the spec's SHOULD). */
const allowedFlags: ReadonlyMap<number, number> = new Map([
  // FUA is valid on every command once SEND_FUA is advertised (clients set it on reads).
  [NbdCmd.READ, NbdCmdFlag.FUA],
  [NbdCmd.WRITE, NbdCmdFlag.FUA],
  [NbdCmd.FLUSH, NbdCmdFlag.FUA],
  [NbdCmd.TRIM, NbdCmdFlag.FUA],
  // NO_HOLE asks for allocated zeros; reading back zeros is all we promise either way.
  [NbdCmd.WRITE_ZEROES, NbdCmdFlag.FUA | NbdCmdFlag.NO_HOLE],
]);

const opOf: ReadonlyMap<number, BlockOp> = new Map([
  [NbdCmd.READ, 'read'],
  [NbdCmd.WRITE, 'write'],
  [NbdCmd.FLUSH, 'flush'],
  [NbdCmd.TRIM, 'trim'],
  [NbdCmd.WRITE_ZEROES, 'zero'],
]);

/** Commands that change the export: refused EPERM on a read-only one (the spec's SHOULD). */
const changes: ReadonlySet<BlockOp> = new Set(['write', 'trim', 'zero']);

export function decideRequest(header: RequestHeader, exportSizeBytes: number, readOnly = false): RequestDecision {
  const { type, flags, lengthBytes } = header;
  const isWrite = type === NbdCmd.WRITE;
  // A WRITE's data follows its header whatever we think of the request, so it must be
  // consumed to find the next header; beyond the maximum we refuse to buffer it.
  if (isWrite && lengthBytes > MAX_PAYLOAD_BYTES) {
    return { action: 'close', reason: `WRITE of ${lengthBytes} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte maximum payload` };
  }
  const payloadBytes = isWrite ? lengthBytes : 0;
  const refuse = (errno: NbdErrno, reason: string): RequestDecision => ({ action: 'refuse', errno, reason, payloadBytes });

  if (type === NbdCmd.DISC) return { action: 'disconnect' };
  const op = opOf.get(type);
  const allowed = allowedFlags.get(type);
  if (op === undefined || allowed === undefined) return refuse(NbdErrno.EINVAL, `unsupported command ${type}`);
  if ((flags & ~allowed) !== 0) return refuse(NbdErrno.EINVAL, `command ${op} does not take flags 0x${(flags & ~allowed).toString(16)}`);
  if (readOnly && changes.has(op)) return refuse(NbdErrno.EPERM, `${op} of a read-only export (a snapshot)`);
  const fua = (flags & NbdCmdFlag.FUA) !== 0;
  // FLUSH's offset and length are reserved; nothing in them changes what a flush does.
  if (op === 'flush') return { action: 'execute', op, offset: 0, lengthBytes: 0, fua, payloadBytes: 0 };

  if (lengthBytes === 0) return refuse(NbdErrno.EINVAL, `${op} of length 0`);
  // Only READ and WRITE carry a payload, so only they are bound by the maximum block
  // size; TRIM and WRITE_ZEROES may cover more (qemu sends discards of up to 2 GiB).
  if (op === 'read' && lengthBytes > MAX_PAYLOAD_BYTES) return refuse(NbdErrno.EINVAL, `read of ${lengthBytes} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte maximum`);
  if (header.offset + BigInt(lengthBytes) > BigInt(exportSizeBytes)) {
    // The spec: ENOSPC for a write beyond the end of the device, EINVAL otherwise.
    const errno = op === 'write' || op === 'zero' ? NbdErrno.ENOSPC : NbdErrno.EINVAL;
    return refuse(errno, `${op} of ${lengthBytes} bytes at ${header.offset} goes beyond the ${exportSizeBytes}-byte export`);
  }
  return { action: 'execute', op, offset: Number(header.offset), lengthBytes, fua, payloadBytes };
}

/**
 * The transmission flags of an export: flush, FUA, trim and write-zeroes always;
 * CAN_MULTI_CONN only when the device says every connection sees the same data;
 * READ_ONLY for a snapshot.
 */
export function transmissionFlags(multiConn: boolean, readOnly = false): number {
  const always = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_WRITE_ZEROES;
  return (multiConn ? always | TransmissionFlag.CAN_MULTI_CONN : always) | (readOnly ? TransmissionFlag.READ_ONLY : 0);
}
