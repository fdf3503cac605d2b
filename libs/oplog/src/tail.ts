// Reading a vDisk's undrained oplog tail when its controller opens it (a restart, a
// takeover): every message of `oplog.<vdisk>` after the drained sequence, up to the
// subject's last sequence, with nothing missing.
//
// A replay that stops short is silent data loss: the controller serves without the
// missing writes, its next drain records a drained sequence past them, and the purge
// removes them from the oplog for good. That is how 54 MiB of an nbdcopy went to zeros
// after a controller kill: one fetch asked for 256 messages of up to 768 KiB with no
// byte bound, the server found the client a slow consumer and cut its connection, the
// fetch ended early, the next came back empty, and the replay took the 20 entries it
// had for the whole tail. So here: every fetch is bounded in bytes, a fetch that ends
// early is followed by another from the next sequence wanted, sequences must grow, and
// the replay either reaches the last sequence or fails (UNAVAILABLE) before its
// deadline. It never returns a partial tail.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { decode } from '@strata/codec';
import { ErrorCode, StrataError, assert } from '@strata/errors';
import { oplogEntry, streams, subjects, type OplogOp } from '@strata/proto';
import { lastMessage } from './stream';

/** One stored oplog message. */
export interface TailMessage {
  seq: number;
  data: Uint8Array;
}

/**
 * Reads the subject's messages from stream sequence `from` on, in order: one bounded
 * fetch. It may end before the subject's end (or deliver nothing); the replay then
 * asks again from the next sequence it still needs.
 */
export type FetchFrom = (from: number) => AsyncIterable<TailMessage>;

export interface ReplayPlan {
  /** The drained sequence: the replay starts after it. */
  drained: number;
  /** The subject's last sequence, read before the replay: the replay ends there. */
  lastSeq: number;
  /** How long the whole replay may take. */
  timeoutMs: number;
  /** Fetches that bring nothing new in a row before the replay gives up, even with time left. */
  emptyFetchesMax?: number;
}

/**
 * Every message of the tail (drained, lastSeq], in sequence order; throws UNAVAILABLE
 * when the tail cannot be read whole within the plan's bounds.
 */
export async function readTail(plan: ReplayPlan, fetchFrom: FetchFrom): Promise<TailMessage[]> {
  const { drained, lastSeq, timeoutMs } = plan;
  const emptyFetchesMax = plan.emptyFetchesMax ?? 20;
  const out: TailMessage[] = [];
  if (lastSeq <= drained) return out;
  const deadline = performance.now() + timeoutMs;
  let next = drained + 1;
  let emptyInARow = 0;
  while (next <= lastSeq) {
    const before = next;
    for await (const m of fetchFrom(next)) {
      // A redelivery of something already read (a consumer recreated from an older point).
      if (m.seq < next) continue;
      assert(Number.isInteger(m.seq), 'an oplog message has an integer sequence');
      out.push({ seq: m.seq, data: m.data });
      next = m.seq + 1;
      if (m.seq >= lastSeq) break;
    }
    if (next > lastSeq) break;
    emptyInARow = next === before ? emptyInARow + 1 : 0;
    if (performance.now() >= deadline || emptyInARow >= emptyFetchesMax) {
      throw new StrataError(
        ErrorCode.UNAVAILABLE,
        `the oplog tail could not be read whole: reached sequence ${next - 1} of ${lastSeq} (drained ${drained}) ` +
          `after ${Math.round(timeoutMs - (deadline - performance.now()))} ms; not serving a vDisk without all its acknowledged writes`,
      );
    }
  }
  return out;
}

/** One replay fetch brings at most this many bytes of messages: well below a connection's 64 MiB pending limit. */
export const REPLAY_FETCH_BYTES = 16 * 2 ** 20;

/**
 * Fetches of `subject` in `stream`, each through a new ordered consumer from the
 * sequence asked for, bounded in bytes, and the consumer deleted after.
 */
export function oplogFetcher(js: JetStreamClient, stream: string, subject: string): FetchFrom {
  return async function* fetchFrom(from: number): AsyncIterable<TailMessage> {
    // One subject as a string: a single filter.
    const consumer = await js.consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
    const batch = await consumer.fetch({ max_bytes: REPLAY_FETCH_BYTES, expires: 2_000 });
    try {
      for await (const m of batch) yield { seq: m.seq, data: m.data };
    } catch (err) {
      // A status that ends the pull ("batch completed": its bytes are used up; "message
      // size exceeds maxbytes": the next message does not fit them) ends this fetch,
      // not the replay: readTail asks again from the next sequence it needs. So does
      // "no responders" (503): the consumer just made is not yet known to the server
      // this connection reached (a cluster still settling after an election); after a
      // pause the next fetch makes a new one.
      if (isNoResponders(err)) await sleep(NO_RESPONDERS_PAUSE_MS);
      else if (!isPullStatus(err)) throw err;
    } finally {
      batch.stop();
      await consumer.delete().catch(() => undefined);
    }
  };
}

/** A JetStream pull status (408 request timeout, 409 batch completed, exceeds max bytes, ...): the end of one pull. */
function isPullStatus(err: unknown): boolean {
  const e = err as { name?: string; code?: number };
  return e?.name === 'JetStreamStatusError' && (e.code === 408 || e.code === 409);
}

/** A pull that no server answered (status 503): the consumer is not reachable yet. */
function isNoResponders(err: unknown): boolean {
  const e = err as { name?: string; code?: number };
  return e?.name === 'JetStreamStatusError' && e.code === 503;
}

/** The pause after a fetch no server answered: with readTail's 20 empty fetches, 4 s for a cluster to settle. */
const NO_RESPONDERS_PAUSE_MS = 200;

/** A stored entry of ops, with its sequence. */
export interface StoredOps {
  seq: number;
  ops: OplogOp[];
}

/**
 * The vDisk's undrained tail: every entry of ops after `drained`, and the subject's
 * last sequence (markers count for it, but carry no ops). The whole tail or an error
 * (UNAVAILABLE: the open can be tried again), within `timeoutMs`.
 */
export async function readOpsTail(js: JetStreamClient, jsm: JetStreamManager, vdisk: bigint, drained: number, timeoutMs: number): Promise<{ lastSeq: number; entries: StoredOps[] }> {
  try {
    const lastSeq = (await lastMessage(jsm, vdisk))?.seq ?? 0;
    const messages = await readTail({ drained, lastSeq, timeoutMs }, oplogFetcher(js, streams.oplog, subjects.oplog(vdisk)));
    const entries: StoredOps[] = [];
    for (const m of messages) {
      const entry = decode(m.data, oplogEntry);
      if (entry.kind === 'ops') entries.push({ seq: m.seq, ops: entry.ops });
    }
    return { lastSeq, entries };
  } catch (err) {
    throw err instanceof StrataError ? err : new StrataError(ErrorCode.UNAVAILABLE, `vdisk ${vdisk}: cannot read its oplog tail: ${(err as Error).message}`, { cause: err });
  }
}
