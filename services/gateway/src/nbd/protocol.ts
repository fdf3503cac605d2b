// The NBD protocol's numbers (the NBD project's doc/proto.md, fixed newstyle
// negotiation, simple replies): magics, flags, options, reply types, commands and
// errnos. Closed sets are `as const` objects; nothing here does I/O.

/** `NBDMAGIC`: the first 8 bytes the server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** `IHAVEOPT`: sent by the server after NBDMAGIC, and by the client before each option. */
export const NBD_IHAVEOPT = 0x49484156454f5054n;
/** Starts every option reply. */
export const NBD_OPTION_REPLY_MAGIC = 0x3e889045565a9n;
/** Starts every transmission request. */
export const NBD_REQUEST_MAGIC = 0x25609513;
/** Starts every simple reply. */
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;

/** Handshake flags the server sends (16 bits). */
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Client flags (32 bits). Any other bit set means the client speaks something else: close. */
export const ClientFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;
export const CLIENT_FLAGS_KNOWN = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES;

/** Transmission flags (16 bits), sent with the export's size. */
export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
} as const;

/** Options a client sends during negotiation. */
export const NbdOpt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

const ERR = 0x80000000;
/** Reply types of option replies; errors have bit 31 set. */
export const NbdRep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: ERR + 1,
  ERR_POLICY: ERR + 2,
  ERR_INVALID: ERR + 3,
  ERR_PLATFORM: ERR + 4,
  ERR_TLS_REQD: ERR + 5,
  ERR_UNKNOWN: ERR + 6,
  ERR_SHUTDOWN: ERR + 7,
  ERR_BLOCK_SIZE_REQD: ERR + 8,
  ERR_TOO_BIG: ERR + 9,
} as const;
export type NbdRep = (typeof NbdRep)[keyof typeof NbdRep];

/** Information types of NBD_REP_INFO (NBD_OPT_INFO and NBD_OPT_GO). */
export const NbdInfo = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Transmission commands. */
export const NbdCmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

/** Command flags (16 bits). */
export const NbdCmdFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

/** The error values a reply may carry (the spec restricts them to this set). */
export const NbdErrno = {
  OK: 0,
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type NbdErrno = (typeof NbdErrno)[keyof typeof NbdErrno];

/** Byte sizes of the fixed-size messages. */
export const GREETING_BYTES = 18;
export const CLIENT_FLAGS_BYTES = 4;
export const OPTION_HEADER_BYTES = 16;
export const OPTION_REPLY_HEADER_BYTES = 20;
export const REQUEST_HEADER_BYTES = 28;
export const SIMPLE_REPLY_HEADER_BYTES = 16;
/** The zero padding after an NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was agreed. */
export const EXPORT_NAME_PADDING_BYTES = 124;

/**
 * The largest payload of one READ or WRITE: the spec's interoperable maximum, and the
 * maximum block size we advertise. A WRITE beyond it cannot be skipped safely.
 */
export const MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;
/** Block size constraints advertised with NBD_INFO_BLOCK_SIZE. */
export const BLOCK_SIZE_MIN_BYTES = 1;
export const BLOCK_SIZE_PREFERRED_BYTES = 4096;
export const BLOCK_SIZE_MAX_BYTES = MAX_PAYLOAD_BYTES;
/** The spec's limit on any string (export names, messages). */
export const NBD_STRING_MAX_BYTES = 4096;
