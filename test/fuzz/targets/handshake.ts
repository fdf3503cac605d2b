// Fuzz target: the NBD fixed-newstyle handshake. A client's flags and a list of options
// (NBD_OPT_GO, INFO, LIST, EXPORT_NAME, STRUCTURED_REPLY, STARTTLS, ABORT, unknown ones, lengths
// that lie, oversized data, names too long or not UTF-8, bad magic, garbage), possibly
// followed by transmission requests, possibly mutated, cut into arbitrary chunks and
// served by a real NbdConnection. A model written from the spec (doc/proto.md) reads
// the same bytes and says which replies the server owes, in order; the server must send
// exactly those (error replies for unknown or bad options, NBD_REP_INFO with the export's
// size before the ACK of GO and INFO) and close, without a reply, on a hard violation.
// The connection has no TLS configured, so NBD_OPT_STARTTLS is refused by policy and
// the plain session goes on (FORCEDTLS is proved by the gateway's nbd-tls unit test
// and test/e2e/nbd-tls.test.ts with real clients).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { splitAt } from '../fake-socket';
import { EXPORT_NAME, EXPORT_SIZE_BYTES, fuzzLimits, runConnection, type ConnectionRun } from '../nbd-harness';
import { IHAVEOPT, OPT, OutputReader, REP, decodeRequests, encodeRequests, readGreeting, readOptionReply, type Decoded, type Request } from '../nbd-wire';
import { at, mutate, mutationArb, type Mutation } from '../mutation';
import { checkRunInvariants, checkTransmission, requestsArb, skipUnlessHandlesDistinct } from './nbd-parser';
import { cutsArbitrary, type FuzzTarget } from './target';

const NBD_STRING_MAX_BYTES = 4096;
const MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;
/** Transmission flags of the memory export: HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES, CAN_MULTI_CONN. */
const EXPORT_TRANSMISSION_FLAGS = 0x1 | 0x4 | 0x8 | 0x20 | 0x40 | 0x100;
const INFO = { EXPORT: 0, BLOCK_SIZE: 3 } as const;
const KNOWN_CLIENT_FLAGS = 0x3;
const NO_ZEROES = 0x2;

// ---- Inputs ----------------------------------------------------------------------------------

const nameArb: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: fc.constant(Buffer.from(EXPORT_NAME)), weight: 8 },
  { arbitrary: fc.string({ maxLength: 12 }).map((s) => Buffer.from(s)), weight: 2 },
  { arbitrary: fc.constantFrom(NBD_STRING_MAX_BYTES, NBD_STRING_MAX_BYTES + 1).map((n) => Buffer.alloc(n, 0x61)), weight: 1 },
  { arbitrary: fc.constantFrom(Buffer.from('di\0sk'), Buffer.from([0x64, 0xff, 0xfe]), Buffer.from([0xc3])), weight: 1 },
);

/** Everything an option can be; `lengthDelta` makes the header's length lie about the data. */
type OptionSpec =
  | { kind: 'info' | 'go'; name: Buffer; infoTypes: number[]; countDelta: number; lengthDelta: number }
  | { kind: 'export-name'; name: Buffer; lengthDelta: number }
  | { kind: 'plain'; option: number; data: Uint8Array; lengthDelta: number }
  | { kind: 'oversized'; option: number; declaredBytes: number; sendData: boolean }
  | { kind: 'repeat-list'; times: number }
  | { kind: 'bad-magic'; option: number }
  | { kind: 'garbage'; bytes: Uint8Array };

const lengthDeltaArb = fc.oneof({ arbitrary: fc.constant(0), weight: 12 }, { arbitrary: fc.integer({ min: -8, max: 8 }), weight: 1 });
const infoTypesArb = fc.array(fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: 0, max: 0xffff })), { maxLength: 4 });

const optionArb: fc.Arbitrary<OptionSpec> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constantFrom('info' as const, 'go' as const), name: nameArb, infoTypes: infoTypesArb, countDelta: fc.oneof({ arbitrary: fc.constant(0), weight: 10 }, { arbitrary: fc.integer({ min: -2, max: 2 }), weight: 1 }), lengthDelta: lengthDeltaArb }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('export-name' as const), name: nameArb, lengthDelta: lengthDeltaArb }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant('plain' as const),
      option: fc.oneof(fc.constantFrom(OPT.LIST, OPT.ABORT, OPT.STRUCTURED_REPLY, OPT.STARTTLS, 4, 9, 10, 11), fc.integer({ min: 0, max: 0xffffffff })),
      data: fc.oneof({ arbitrary: fc.constant(new Uint8Array(0)), weight: 4 }, { arbitrary: fc.uint8Array({ maxLength: 24 }), weight: 1 }),
      lengthDelta: lengthDeltaArb,
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('oversized' as const),
      option: fc.constantFrom(OPT.GO, OPT.INFO, OPT.LIST, OPT.EXPORT_NAME, 12345),
      declaredBytes: fc.oneof(fc.integer({ min: fuzzLimits.optionDataMaxBytes + 1, max: fuzzLimits.optionDataMaxBytes + 20_000 }), fc.integer({ min: 0, max: 0xffffffff })),
      sendData: fc.boolean(),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ kind: fc.constant('repeat-list' as const), times: fc.integer({ min: 1, max: fuzzLimits.optionsMax + 2 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('bad-magic' as const), option: fc.constantFrom(OPT.GO, OPT.LIST) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }), weight: 1 },
);

export interface HandshakeInput {
  clientFlags: number;
  options: OptionSpec[];
  /** Requests sent after the options, read as transmission if the client got that far. */
  requests: Request[];
  mutation: Mutation;
  cuts: number[];
}

export const handshakeInput: fc.Arbitrary<HandshakeInput> = fc.record({
  clientFlags: fc.oneof({ arbitrary: fc.constantFrom(0, 1, 2, 3), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 0xffffffff }).map((n) => n >>> 0), weight: 1 }),
  options: fc.array(optionArb, { maxLength: 8 }),
  requests: requestsArb(4),
  mutation: fc.oneof({ arbitrary: fc.constant({ kind: 'none' as const }), weight: 4 }, { arbitrary: mutationArb, weight: 1 }),
  cuts: cutsArbitrary,
});

// ---- The client's bytes ----------------------------------------------------------------------

function optionHeader(option: number, lengthBytes: number, magic: Buffer = IHAVEOPT): Buffer {
  const header = Buffer.alloc(16);
  magic.copy(header, 0);
  header.writeUInt32BE(option >>> 0, 8);
  header.writeUInt32BE(Math.min(Math.max(lengthBytes, 0), 0xffffffff), 12);
  return header;
}

function withData(option: number, data: Uint8Array, lengthDelta: number): Buffer {
  return Buffer.concat([optionHeader(option, data.length + lengthDelta), data]);
}

function encodeOption(spec: OptionSpec): Buffer {
  switch (spec.kind) {
    case 'info':
    case 'go': {
      const data = Buffer.alloc(4 + spec.name.length + 2 + spec.infoTypes.length * 2);
      data.writeUInt32BE(spec.name.length, 0);
      spec.name.copy(data, 4);
      data.writeUInt16BE(Math.max(0, spec.infoTypes.length + spec.countDelta), 4 + spec.name.length);
      spec.infoTypes.forEach((t, i) => data.writeUInt16BE(t, 6 + spec.name.length + i * 2));
      return withData(spec.kind === 'go' ? OPT.GO : OPT.INFO, data, spec.lengthDelta);
    }
    case 'export-name':
      return withData(OPT.EXPORT_NAME, spec.name, spec.lengthDelta);
    case 'plain':
      return withData(spec.option, spec.data, spec.lengthDelta);
    case 'oversized':
      // Sending the data of a 4 GiB option would take a while: beyond 64 KiB the stream ends inside it.
      return Buffer.concat([optionHeader(spec.option, spec.declaredBytes), spec.sendData ? Buffer.alloc(Math.min(spec.declaredBytes, 64 * 1024), 0x5a) : Buffer.alloc(0)]);
    case 'repeat-list':
      return Buffer.concat(Array.from({ length: spec.times }, () => optionHeader(OPT.LIST, 0)));
    case 'bad-magic':
      return optionHeader(spec.option, 0, Buffer.from('IHAVEOPS'));
    case 'garbage':
      return Buffer.from(spec.bytes);
  }
}

export function encodeClient(input: HandshakeInput): Buffer {
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(input.clientFlags >>> 0);
  return mutate(Buffer.concat([flags, ...input.options.map(encodeOption), encodeRequests(input.requests)]), input.mutation);
}

// ---- The spec's server -------------------------------------------------------------------------

/** The replies a server owes, as comparable lines: option, reply type, data (errors: only that it is one). */
export interface ExpectedHandshake {
  replies: string[];
  /** Where the handshake leaves the connection; 'transmission' carries the requests that follow. */
  end: { phase: 'closed' } | { phase: 'transmission'; decoded: Decoded };
}

const replyLine = (option: number, type: number, data?: Buffer): string =>
  type >= 0x80000000 ? `option ${option} error 0x${type.toString(16)}` : `option ${option} reply ${type} ${(data ?? Buffer.alloc(0)).toString('hex')}`;

/** An NBD string as the spec defines it: UTF-8, no NUL, at most 4096 bytes. */
function stringOf(bytes: Buffer): string | undefined {
  if (bytes.length > NBD_STRING_MAX_BYTES) return undefined;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  return text.includes('\0') ? undefined : text;
}

function infoExport(): Buffer {
  const data = Buffer.alloc(12);
  data.writeUInt16BE(INFO.EXPORT, 0);
  data.writeBigUInt64BE(BigInt(EXPORT_SIZE_BYTES), 2);
  data.writeUInt16BE(EXPORT_TRANSMISSION_FLAGS, 10);
  return data;
}

function infoBlockSize(): Buffer {
  const data = Buffer.alloc(14);
  data.writeUInt16BE(INFO.BLOCK_SIZE, 0);
  data.writeUInt32BE(1, 2);
  data.writeUInt32BE(4096, 6);
  data.writeUInt32BE(MAX_PAYLOAD_BYTES, 10);
  return data;
}

function serverEntry(): Buffer {
  const data = Buffer.alloc(4);
  data.writeUInt32BE(EXPORT_NAME.length);
  return Buffer.concat([data, Buffer.from(EXPORT_NAME), Buffer.from('fuzz')]);
}

/** NBD_OPT_INFO / NBD_OPT_GO data: u32 name length, name, u16 count, count u16 info types, nothing more. */
function infoRequestName(data: Buffer): string | undefined | 'malformed' {
  if (data.length < 6) return 'malformed';
  const nameBytes = data.readUInt32BE(0);
  if (nameBytes > data.length - 6) return 'malformed';
  const name = stringOf(data.subarray(4, 4 + nameBytes));
  if (name === undefined) return 'malformed';
  const count = data.readUInt16BE(4 + nameBytes);
  if (data.length - 6 - nameBytes !== count * 2) return 'malformed';
  return name;
}

/** Reads the client's bytes as a fixed-newstyle server that exports one device must. */
export function expectHandshake(stream: Buffer): ExpectedHandshake {
  const replies: string[] = [];
  const closed = (): ExpectedHandshake => ({ replies, end: { phase: 'closed' } });
  const transmission = (from: number): ExpectedHandshake => ({ replies, end: { phase: 'transmission', decoded: decodeRequests(stream.subarray(from)) } });
  if (stream.length < 4) return closed();
  const clientFlags = stream.readUInt32BE(0);
  // Unknown client flags: the spec says the server MUST close.
  if ((clientFlags & ~KNOWN_CLIENT_FLAGS) !== 0) return closed();
  let at = 4;
  for (let count = 0; ; count++) {
    if (count >= fuzzLimits.optionsMax || stream.length - at < 16) return closed();
    if (!stream.subarray(at, at + 8).equals(IHAVEOPT)) return closed();
    const option = stream.readUInt32BE(at + 8);
    const lengthBytes = stream.readUInt32BE(at + 12);
    at += 16;
    if (stream.length - at < lengthBytes) return closed();
    const data = stream.subarray(at, at + lengthBytes);
    at += lengthBytes;
    if (lengthBytes > fuzzLimits.optionDataMaxBytes) {
      // NBD_OPT_EXPORT_NAME has no error reply; any other option is answered and skipped.
      if (option === OPT.EXPORT_NAME) return closed();
      replies.push(replyLine(option, REP.ERR_TOO_BIG));
      continue;
    }
    switch (option) {
      case OPT.EXPORT_NAME: {
        if (stringOf(data) !== EXPORT_NAME) return closed();
        const size = Buffer.alloc(10);
        size.writeBigUInt64BE(BigInt(EXPORT_SIZE_BYTES), 0);
        size.writeUInt16BE(EXPORT_TRANSMISSION_FLAGS, 8);
        replies.push(`export-name ${size.toString('hex')} zeroes ${(clientFlags & NO_ZEROES) !== 0 ? 0 : 124}`);
        return transmission(at);
      }
      case OPT.ABORT:
        replies.push(replyLine(option, REP.ACK));
        return closed();
      case OPT.LIST:
        if (lengthBytes !== 0) replies.push(replyLine(option, REP.ERR_INVALID));
        else replies.push(replyLine(option, REP.SERVER, serverEntry()), replyLine(option, REP.ACK));
        break;
      case OPT.INFO:
      case OPT.GO: {
        const name = infoRequestName(data);
        if (name === 'malformed') replies.push(replyLine(option, REP.ERR_INVALID));
        else if (name !== EXPORT_NAME) replies.push(replyLine(option, REP.ERR_UNKNOWN));
        else {
          replies.push(replyLine(option, REP.INFO, infoExport()), replyLine(option, REP.INFO, infoBlockSize()), replyLine(option, REP.ACK));
          if (option === OPT.GO) return transmission(at);
        }
        break;
      }
      case OPT.STARTTLS:
        // A server without TLS may refuse it by policy; the session goes on in plain text.
        replies.push(replyLine(option, REP.ERR_POLICY));
        break;
      default:
        // Structured replies, metadata contexts and anything unknown: not supported.
        replies.push(replyLine(option, REP.ERR_UNSUP));
    }
  }
}

// ---- The check -------------------------------------------------------------------------------

/** Reads `count` option replies (or an NBD_OPT_EXPORT_NAME answer) as lines comparable with the model's. */
function readHandshakeReplies(out: OutputReader, expected: readonly string[]): string[] {
  const lines: string[] = [];
  for (const wanted of expected) {
    if (wanted.startsWith('export-name')) {
      const info = out.take(10, "NBD_OPT_EXPORT_NAME's answer");
      const zeroes = out.remaining >= 124 && wanted.endsWith('zeroes 124') ? out.take(124, 'the 124 zero bytes') : Buffer.alloc(0);
      assert.ok(zeroes.every((b) => b === 0), 'the padding after the export size is zeros');
      lines.push(`export-name ${info.toString('hex')} zeroes ${zeroes.length}`);
      continue;
    }
    if (out.remaining === 0) break;
    const reply = readOptionReply(out);
    if (reply.type >= 0x80000000) {
      // An error's data is a message for a human: an NBD string.
      assert.ok(stringOf(reply.data) !== undefined, `error reply data is not an NBD string: ${reply.data.toString('hex')}`);
      lines.push(replyLine(reply.option, reply.type));
    } else {
      lines.push(replyLine(reply.option, reply.type, reply.data));
    }
  }
  return lines;
}

export async function checkHandshake(input: HandshakeInput): Promise<void> {
  const stream = encodeClient(input);
  const expected = expectHandshake(stream);
  if (expected.end.phase === 'transmission') skipUnlessHandlesDistinct(expected.end.decoded.requests);

  const run: ConnectionRun = await runConnection(splitAt(stream, input.cuts.map((c) => at(c, stream.length))));
  checkRunInvariants(run);
  assert.ok(run.closedByServer, 'the server closed the connection at the end');
  const out = new OutputReader(run.output);
  readGreeting(out);
  assert.deepEqual(readHandshakeReplies(out, expected.replies), expected.replies, `the handshake replies (it should end in ${expected.end.phase})`);
  if (expected.end.phase === 'transmission') checkTransmission(out, expected.end.decoded, run);
  else assert.equal(out.remaining, 0, `the server wrote ${out.remaining} bytes after the handshake ended`);
}

export const handshakeTarget: FuzzTarget<HandshakeInput> = {
  name: 'handshake',
  arbitrary: handshakeInput,
  check: checkHandshake,
};
