// Fuzz target: the NBD transmission phase. A well-formed request stream, built by the
// spec's encoder, is mutated (bad magic, unknown types and flags, offsets past the end,
// zero and huge lengths, a WRITE's payload cut short, bit flips, garbage) and cut into
// arbitrary chunks, then served by a real NbdConnection after a good NBD_OPT_GO.
// The server must do exactly what the spec says the bytes mean: the same device calls
// in the same order, one reply per complete request with the right errno and data,
// nothing after a framing error; and never crash, hang or buffer past its limits.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_PAYLOAD_BYTES } from '@strata/gateway';
import { splitAt } from '../fake-socket';
import { EXPORT_SIZE_BYTES, runConnection, type ConnectionRun, type DeviceCall } from '../nbd-harness';
import {
  CMD,
  CMD_FLAG,
  OPT,
  OutputReader,
  REP,
  REQUEST_MAGIC,
  decodeRequests,
  deviceCallFor,
  encodeRequests,
  errnoFor,
  openExportBytes,
  readGreeting,
  readOptionReply,
  readSimpleReplies,
  type Decoded,
  type Request,
} from '../nbd-wire';
import { at, mutate, mutationArb, type Mutation } from '../mutation';
import { cutsArbitrary, type FuzzTarget } from './target';

/** Payloads are kept small so that a run does thousands of connections, not a few big ones. */
const SMALL_LENGTH_MAX = 8192;
const U64_MAX = 2n ** 64n - 1n;

const magicArb = fc.oneof({ arbitrary: fc.constant(REQUEST_MAGIC), weight: 30 }, { arbitrary: fc.integer({ min: 0, max: 0xffffffff }), weight: 1 });
const typeArb = fc.oneof(
  { arbitrary: fc.constantFrom(CMD.READ, CMD.WRITE, CMD.FLUSH, CMD.TRIM, CMD.WRITE_ZEROES), weight: 12 },
  { arbitrary: fc.constantFrom(CMD.DISC, CMD.CACHE, CMD.BLOCK_STATUS), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
);
const flagsArb = fc.oneof(
  { arbitrary: fc.constant(0), weight: 6 },
  { arbitrary: fc.constantFrom(CMD_FLAG.FUA, CMD_FLAG.NO_HOLE, CMD_FLAG.FUA | CMD_FLAG.NO_HOLE), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
);
const offsetArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: EXPORT_SIZE_BYTES }).map(BigInt), weight: 8 },
  { arbitrary: fc.integer({ min: 0, max: SMALL_LENGTH_MAX }).map((back) => BigInt(EXPORT_SIZE_BYTES - back)), weight: 2 },
  { arbitrary: fc.bigInt(0n, U64_MAX), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: SMALL_LENGTH_MAX }).map((back) => U64_MAX - BigInt(back)), weight: 1 },
);
const lengthArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: SMALL_LENGTH_MAX }), weight: 12 },
  { arbitrary: fc.constantFrom(0, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1, 0xffffffff), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 0xffffffff }), weight: 1 },
);

/** One request; a WRITE carries its payload when its length is small (a huge one swallows the rest of the stream). */
export const requestArb = (index: number): fc.Arbitrary<Request> =>
  fc.record({ magic: magicArb, flags: flagsArb, type: typeArb, handleHigh: fc.bigInt(0n, U64_MAX >> 16n), offset: offsetArb, lengthBytes: lengthArb, fill: fc.nat(255) }).map((r) => {
    // The low 16 bits number the request, so that every handle is distinct.
    const request: Request = { magic: r.magic, flags: r.flags, type: r.type, handle: (r.handleHigh << 16n) | BigInt(index), offset: r.offset, lengthBytes: r.lengthBytes };
    if (r.type === CMD.WRITE && r.lengthBytes <= SMALL_LENGTH_MAX) request.payload = patterned(r.lengthBytes, r.fill);
    return request;
  });

function patterned(lengthBytes: number, seed: number): Buffer {
  const out = Buffer.alloc(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) out[i] = (seed + i * 7) & 0xff;
  return out;
}

export interface NbdParserInput {
  requests: Request[];
  mutation: Mutation;
  cuts: number[];
}

/** Up to `max` requests, each with a distinct handle. */
export const requestsArb = (max: number): fc.Arbitrary<Request[]> => fc.integer({ min: 0, max }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => requestArb(i))));

export const nbdParserInput: fc.Arbitrary<NbdParserInput> = fc.record({
  requests: requestsArb(12),
  mutation: mutationArb,
  cuts: cutsArbitrary,
});

export interface ExpectedTransmission {
  calls: DeviceCall[];
  replies: string[];
  readLengths: Map<bigint, number>;
}

/** What the spec says the server does with the decoded requests, with a shadow copy of the export for read data. */
export function expectTransmission(requests: readonly Request[]): ExpectedTransmission {
  const disk = Buffer.alloc(EXPORT_SIZE_BYTES);
  const calls: DeviceCall[] = [];
  const replies: string[] = [];
  const readLengths = new Map<bigint, number>();
  for (const request of requests) {
    const errno = errnoFor(request, EXPORT_SIZE_BYTES);
    if (errno !== 0) {
      replies.push(replyKey(request.handle, errno));
      continue;
    }
    const call = deviceCallFor(request);
    calls.push(call);
    if (call.op === 'read') {
      readLengths.set(request.handle, call.lengthBytes);
      replies.push(replyKey(request.handle, 0, disk.subarray(call.offset, call.offset + call.lengthBytes)));
    } else {
      if (call.op === 'write') call.data!.copy(disk, call.offset);
      if (call.op === 'zero') disk.fill(0, call.offset, call.offset + call.lengthBytes);
      replies.push(replyKey(request.handle, 0));
    }
  }
  return { calls, replies: replies.sort(), readLengths };
}

export function replyKey(handle: bigint, errno: number, data?: Buffer): string {
  return `handle ${handle} errno ${errno}${data === undefined ? '' : ` data ${data.toString('hex')}`}`;
}

/** The greeting and NBD_OPT_GO's answer: NBD_REP_INFO replies, then NBD_REP_ACK. */
function readOpenedExport(out: OutputReader): void {
  readGreeting(out);
  for (;;) {
    const reply = readOptionReply(out);
    assert.equal(reply.option, OPT.GO, 'a reply to NBD_OPT_GO');
    if (reply.type === REP.ACK) return;
    assert.equal(reply.type, REP.INFO, `NBD_OPT_GO on the export answered with 0x${reply.type.toString(16)}`);
  }
}

/** Requests are told apart by their handle; an input whose mutation makes two equal is skipped. */
export function skipUnlessHandlesDistinct(requests: readonly Request[]): void {
  fc.pre(new Set(requests.map((r) => r.handle)).size === requests.length);
}

/** The checks every run must pass, whatever its input: no unexpected error, no call outside the export, bounded buffering. */
export function checkRunInvariants(run: ConnectionRun): void {
  assert.deepEqual(run.errors, [], 'the connection failed with an unexpected error');
  assert.deepEqual(run.outOfRange, [], 'the device was asked for bytes outside the export');
  assert.ok(run.excessBufferedBytes <= 0, `the reader buffered ${run.excessBufferedBytes} bytes beyond its high-water mark`);
}

/** The simple replies left in `out` and the device calls are what the spec says `decoded` means. */
export function checkTransmission(out: OutputReader, decoded: Decoded, run: ConnectionRun): void {
  const expected = expectTransmission(decoded.requests);
  const replies = readSimpleReplies(out, (handle) => expected.readLengths.get(handle) ?? (decoded.requests.some((r) => r.handle === handle) ? 0 : undefined));
  assert.deepEqual(replies.map((r) => replyKey(r.handle, r.errno, r.data)).sort(), expected.replies, `replies to ${decoded.requests.length} requests (stream stops on: ${decoded.stop})`);
  assert.deepEqual(run.calls, expected.calls, 'the device calls');
}

export async function checkNbdParser(input: NbdParserInput): Promise<void> {
  const stream = mutate(encodeRequests(input.requests), input.mutation);
  const decoded = decodeRequests(stream);
  skipUnlessHandlesDistinct(decoded.requests);
  const run = await runConnection(splitAt(Buffer.concat([openExportBytes('disk'), stream]), input.cuts.map((c) => at(c, stream.length + 40))));
  checkRunInvariants(run);
  const out = new OutputReader(run.output);
  readOpenedExport(out);
  checkTransmission(out, decoded, run);
}

export const nbdParserTarget: FuzzTarget<NbdParserInput> = {
  name: 'nbd-parser',
  arbitrary: nbdParserInput,
  check: checkNbdParser,
};
