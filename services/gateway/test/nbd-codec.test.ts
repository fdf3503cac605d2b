// Proves the NBD encoders and parsers produce and accept exactly the bytes of the
// protocol (doc/proto.md of the NBD project), by comparing them with hand-written hex
// fixtures, and that malformed input is reported, never misread; also the pure rules
// that decide what a request does (bounds, lengths, flags, errnos).
import { ErrorCode, StrataError } from '@strata/errors';
import {
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeOptionError,
  encodeOptionReply,
  encodeServerEntry,
  encodeSimpleReplyHeader,
  parseClientFlags,
  parseExportNameData,
  parseInfoRequest,
  parseOptionHeader,
  parseRequestHeader,
  type RequestHeader,
} from '../src/nbd/codec';
import { errnoFor } from '../src/nbd/errno';
import { NbdErrno, NbdRep } from '../src/nbd/protocol';
import { decideRequest, transmissionFlags } from '../src/nbd/request-rules';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const MiB = 1024 * 1024;

describe('handshake encoding', () => {
  test('greeting is NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES', () => {
    expect(toHex(encodeGreeting())).toBe(toHex(hex('4e42444d41474943 49484156454f5054 0003')));
  });

  test('client flags: fixed newstyle and no zeroes', () => {
    expect(parseClientFlags(hex('00000003'))).toEqual({ ok: true, value: { fixedNewstyle: true, noZeroes: true } });
    expect(parseClientFlags(hex('00000001'))).toEqual({ ok: true, value: { fixedNewstyle: true, noZeroes: false } });
    expect(parseClientFlags(hex('00000000'))).toEqual({ ok: true, value: { fixedNewstyle: false, noZeroes: false } });
  });

  test('client flags: an unknown bit is refused', () => {
    const parsed = parseClientFlags(hex('00000007'));
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.reason).toMatch(/unknown client flags 0x7/);
    expect(parseClientFlags(hex('80000001')).ok).toBe(false);
  });

  test('option header: IHAVEOPT, option, length', () => {
    expect(parseOptionHeader(hex('49484156454f5054 00000007 0000000b'))).toEqual({ ok: true, value: { option: 7, lengthBytes: 11 } });
    // The length is unsigned: 0xffffffff is 4 GiB - 1, not -1.
    expect(parseOptionHeader(hex('49484156454f5054 00000003 ffffffff'))).toEqual({ ok: true, value: { option: 3, lengthBytes: 0xffffffff } });
  });

  test('option header with a bad magic is refused', () => {
    const parsed = parseOptionHeader(hex('4e42444d41474943 00000007 00000000'));
    expect(parsed).toEqual({ ok: false, reason: 'bad option magic 0x4e42444d41474943' });
  });

  test('option reply: magic, option, type, length, data', () => {
    expect(toHex(encodeOptionReply(3, NbdRep.ACK))).toBe(toHex(hex('0003e889045565a9 00000003 00000001 00000000')));
    expect(toHex(encodeOptionReply(3, NbdRep.SERVER, encodeServerEntry('alpha')))).toBe(toHex(hex('0003e889045565a9 00000003 00000002 00000009 00000005 616c706861')));
  });

  test('NBD_REP_SERVER carries a description after the name', () => {
    expect(toHex(encodeServerEntry('ab', 'x y'))).toBe(toHex(hex('00000002 6162 782079')));
  });

  test('option errors have bit 31 set and carry a message', () => {
    expect(toHex(encodeOptionError(8, NbdRep.ERR_UNSUP, 'no'))).toBe(toHex(hex('0003e889045565a9 00000008 80000001 00000002 6e6f')));
    expect(toHex(encodeOptionError(7, NbdRep.ERR_UNKNOWN, ''))).toBe(toHex(hex('0003e889045565a9 00000007 80000006 00000000')));
    // A message is cut to the spec's 4096 bytes.
    expect(encodeOptionError(7, NbdRep.ERR_INVALID, 'x'.repeat(5000)).length).toBe(20 + 4096);
    expect(() => encodeOptionError(7, NbdRep.ACK, 'x')).toThrow(/bit 31/);
  });

  test('NBD_INFO_EXPORT: type 0, u64 size, u16 flags', () => {
    expect(toHex(encodeInfoExport(64 * MiB, 0x016d))).toBe(toHex(hex('0000 0000000004000000 016d')));
    // A size above 2^32 keeps all 64 bits.
    expect(toHex(encodeInfoExport(2 ** 40 + 512, 1))).toBe(toHex(hex('0000 0000010000000200 0001')));
  });

  test('NBD_INFO_BLOCK_SIZE: type 3, min, preferred, max', () => {
    expect(toHex(encodeInfoBlockSize(1, 4096, 32 * MiB))).toBe(toHex(hex('0003 00000001 00001000 02000000')));
    expect(() => encodeInfoBlockSize(4096, 512, 32 * MiB)).toThrow(/ordered/);
  });

  test('NBD_OPT_EXPORT_NAME reply: size, flags, 124 zeros unless NO_ZEROES', () => {
    expect(toHex(encodeExportNameReply(8 * MiB, 0x006d, true))).toBe(toHex(hex('0000000000800000 006d')));
    const padded = encodeExportNameReply(8 * MiB, 0x006d, false);
    expect(padded.length).toBe(134);
    expect(toHex(padded.subarray(0, 10))).toBe('0000000000800000006d');
    expect(padded.subarray(10).every((b) => b === 0)).toBe(true);
  });
});

describe('option data parsing', () => {
  test('NBD_OPT_GO data: name and information requests', () => {
    expect(parseInfoRequest(hex('00000005 616c706861 0002 0003 0001'))).toEqual({ ok: true, value: { name: 'alpha', infoTypes: [3, 1] } });
    expect(parseInfoRequest(hex('00000000 0000'))).toEqual({ ok: true, value: { name: '', infoTypes: [] } });
  });

  test.each([
    ['too short for a name length and a count', '000000'],
    ['a name longer than the data', '00000009 616c706861 0000'],
    ['a count that does not match the data', '00000005 616c706861 0002 0003'],
    ['trailing bytes after the requests', '00000005 616c706861 0001 0003 00'],
    ['a name that is not UTF-8', '00000002 c328 0000'],
    ['a name with a NUL', '00000002 6100 0000'],
  ])('NBD_OPT_GO data with %s is refused', (_what, bytes) => {
    expect(parseInfoRequest(hex(bytes)).ok).toBe(false);
  });

  test('NBD_OPT_GO data with a 4097-byte name is refused', () => {
    const data = Buffer.alloc(4 + 4097 + 2);
    data.writeUInt32BE(4097, 0);
    data.fill(0x61, 4, 4 + 4097);
    expect(parseInfoRequest(data)).toEqual({ ok: false, reason: 'export name is 4097 bytes, more than 4096' });
  });

  test('NBD_OPT_EXPORT_NAME data is the whole name', () => {
    expect(parseExportNameData(hex('62657461'))).toEqual({ ok: true, value: 'beta' });
    expect(parseExportNameData(hex(''))).toEqual({ ok: true, value: '' });
    expect(parseExportNameData(hex('ff')).ok).toBe(false);
  });
});

describe('transmission encoding', () => {
  test('request header: magic, flags, type, handle, offset, length', () => {
    const bytes = hex('25609513 0001 0001 0102030405060708 0000000100000200 00001000');
    expect(parseRequestHeader(bytes)).toEqual({
      ok: true,
      value: { flags: 1, type: 1, handle: 0x0102030405060708n, offset: 0x100000200n, lengthBytes: 4096 },
    });
  });

  test('an offset of 2^64 - 1 stays exact', () => {
    const parsed = parseRequestHeader(hex('25609513 0000 0000 0000000000000001 ffffffffffffffff 00000001'));
    expect(parsed.ok && parsed.value.offset).toBe(2n ** 64n - 1n);
  });

  test('request header with a bad magic is refused', () => {
    expect(parseRequestHeader(hex('67446698 0000 0000 0000000000000001 0000000000000000 00000001'))).toEqual({ ok: false, reason: 'bad request magic 0x67446698' });
  });

  test('a header of the wrong size is a caller bug', () => {
    expect(() => parseRequestHeader(hex('25609513'))).toThrow(/28 bytes/);
  });

  test('simple reply header: magic, error, handle', () => {
    expect(toHex(encodeSimpleReplyHeader(0, 0xdeadbeefcafef00dn))).toBe(toHex(hex('67446698 00000000 deadbeefcafef00d')));
    expect(toHex(encodeSimpleReplyHeader(NbdErrno.EINVAL, 1n))).toBe(toHex(hex('67446698 00000016 0000000000000001')));
  });
});

describe('request rules', () => {
  const size = 64 * MiB;
  const req = (type: number, offset: bigint | number, lengthBytes: number, flags = 0): RequestHeader => ({ type, flags, handle: 1n, offset: BigInt(offset), lengthBytes });

  test('reads and writes inside the export run', () => {
    expect(decideRequest(req(0, 4096, 8192), size)).toEqual({ action: 'execute', op: 'read', offset: 4096, lengthBytes: 8192, fua: false, payloadBytes: 0 });
    expect(decideRequest(req(1, size - 1, 1, 1), size)).toEqual({ action: 'execute', op: 'write', offset: size - 1, lengthBytes: 1, fua: true, payloadBytes: 1 });
    expect(decideRequest(req(6, 0, 65536, 2), size)).toEqual({ action: 'execute', op: 'zero', offset: 0, lengthBytes: 65536, fua: false, payloadBytes: 0 });
    expect(decideRequest(req(4, 0, 65536), size)).toMatchObject({ action: 'execute', op: 'trim' });
    expect(decideRequest(req(3, 0, 0), size)).toMatchObject({ action: 'execute', op: 'flush' });
  });

  test('a read past the end is EINVAL, a write past the end ENOSPC (the spec)', () => {
    expect(decideRequest(req(0, size - 4, 8), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL, payloadBytes: 0 });
    expect(decideRequest(req(4, size, 1), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL });
    // The payload is still read, so the next request is found.
    expect(decideRequest(req(1, size - 4, 8), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.ENOSPC, payloadBytes: 8 });
    expect(decideRequest(req(6, size, 512), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.ENOSPC });
    expect(decideRequest(req(0, 2n ** 64n - 1n, 1), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL });
  });

  test('length 0 and reads over 32 MiB are EINVAL', () => {
    expect(decideRequest(req(0, 0, 0), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL });
    expect(decideRequest(req(1, 0, 0), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL, payloadBytes: 0 });
    expect(decideRequest(req(0, 0, 32 * MiB + 1), 1024 * MiB)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL });
    expect(decideRequest(req(0, 0, 32 * MiB), 1024 * MiB)).toMatchObject({ action: 'execute', op: 'read' });
  });

  test('a write over 32 MiB closes the connection: its payload cannot be skipped', () => {
    expect(decideRequest(req(1, 0, 32 * MiB + 1), 1024 * MiB)).toMatchObject({ action: 'close' });
  });

  test('trim and write-zeroes carry no payload, so they may exceed 32 MiB', () => {
    expect(decideRequest(req(4, 0, 64 * MiB), size)).toMatchObject({ action: 'execute', op: 'trim', lengthBytes: 64 * MiB });
    expect(decideRequest(req(6, 0, 64 * MiB), size)).toMatchObject({ action: 'execute', op: 'zero' });
  });

  test('unknown commands and flags are EINVAL', () => {
    expect(decideRequest(req(5, 0, 4096), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL }); // CACHE
    expect(decideRequest(req(7, 0, 4096), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL }); // BLOCK_STATUS
    expect(decideRequest(req(99, 0, 4096), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL });
    expect(decideRequest(req(0, 0, 4096, 4), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL }); // DF
    expect(decideRequest(req(1, 0, 4096, 2), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL, payloadBytes: 4096 }); // NO_HOLE on WRITE
    expect(decideRequest(req(6, 0, 4096, 16), size)).toMatchObject({ action: 'refuse', errno: NbdErrno.EINVAL }); // FAST_ZERO
  });

  test('DISC disconnects whatever its fields say', () => {
    expect(decideRequest(req(2, 0, 0), size)).toEqual({ action: 'disconnect' });
  });

  test('transmission flags: CAN_MULTI_CONN only when the device allows it', () => {
    expect(transmissionFlags(false)).toBe(0b0_0110_1101);
    expect(transmissionFlags(true)).toBe(0b1_0110_1101);
  });

  test('a read-only export (a snapshot): READ_ONLY advertised; writes, trims and zeroings EPERM (payload still read), reads and flushes run', () => {
    expect(transmissionFlags(false, true)).toBe(0b0_0110_1111);
    expect(decideRequest(req(1, 0, 8), size, true)).toMatchObject({ action: 'refuse', errno: NbdErrno.EPERM, payloadBytes: 8 });
    expect(decideRequest(req(4, 0, 4096), size, true)).toMatchObject({ action: 'refuse', errno: NbdErrno.EPERM });
    expect(decideRequest(req(6, 0, 4096), size, true)).toMatchObject({ action: 'refuse', errno: NbdErrno.EPERM });
    expect(decideRequest(req(0, 0, 4096), size, true)).toMatchObject({ action: 'execute', op: 'read' });
    expect(decideRequest(req(3, 0, 0), size, true)).toMatchObject({ action: 'execute', op: 'flush' });
  });

  test('backend errors map to NBD errnos, never to success', () => {
    expect(errnoFor(new StrataError(ErrorCode.INVALID, 'x'))).toBe(NbdErrno.EINVAL);
    expect(errnoFor(new StrataError(ErrorCode.NO_SPACE, 'x'))).toBe(NbdErrno.ENOSPC);
    for (const code of [ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.CHECKSUM, ErrorCode.INTERNAL, ErrorCode.NOT_OWNER, ErrorCode.FENCED, ErrorCode.NOT_FOUND]) {
      expect(errnoFor(new StrataError(code, 'x'))).toBe(NbdErrno.EIO);
    }
    expect(errnoFor(new TypeError('bug'))).toBe(NbdErrno.EIO);
    expect(errnoFor(undefined)).toBe(NbdErrno.EIO);
  });
});
