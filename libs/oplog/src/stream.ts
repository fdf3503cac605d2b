// The OPLOG stream and what is read or removed of one vDisk's subject in it: the
// stream itself (created when missing), the subject's last message and entry, the
// takeover marker a new owner's fence is, and the purge of drained entries.
import { RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { decode, encode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { defaultReplicas, ensureStream, isWrongLastSequence } from '@strata/kv';
import { oplogEntry, streams, subjects, type OplogEntry } from '@strata/proto';

/** Creates the OPLOG stream if missing (subjects oplog.<vdisk>, file storage, replicated like the cluster). */
export async function ensureOplogStream(nc: NatsConnection): Promise<void> {
  await ensureStream(nc, {
    name: streams.oplog,
    subjects: ['oplog.>'],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: defaultReplicas(nc),
    // Two minutes of duplicate detection: a retried append is recognised.
    duplicate_window: 120 * 1e9,
  });
}

/** A subject's last stored message. */
export interface LastMessage {
  seq: number;
  /** Its Nats-Msg-Id (undefined when it has none). */
  msgId: string | undefined;
  data: Uint8Array;
}

/** The last message of the vDisk's oplog subject, or undefined when it has none. */
export async function lastMessage(jsm: JetStreamManager, vdisk: bigint): Promise<LastMessage | undefined> {
  try {
    const m = await jsm.streams.getMessage(streams.oplog, { last_by_subj: subjects.oplog(vdisk) });
    return m === null ? undefined : { seq: m.seq, msgId: m.header?.get('Nats-Msg-Id') || undefined, data: m.data };
  } catch (err) {
    if (/no message found/i.test((err as Error).message ?? '')) return undefined;
    throw err;
  }
}

/** The vDisk's last oplog entry, decoded, with its sequence; undefined when the subject is empty. */
export async function lastEntry(jsm: JetStreamManager, vdisk: bigint): Promise<{ seq: number; entry: OplogEntry } | undefined> {
  const m = await lastMessage(jsm, vdisk);
  return m === undefined ? undefined : { seq: m.seq, entry: decode(m.data, oplogEntry) };
}

export interface MarkerAppend {
  vdisk: bigint;
  epoch: number;
  /** The node that owns the vDisk from this epoch on. */
  owner: string;
  /** The subject's last sequence the marker must follow (0: the subject is empty). */
  expectLastSeq: number;
  timeoutMs: number;
}

/**
 * Appends a takeover marker after `expectLastSeq` (the config leader's fence step of
 * a failover): from then on the old owner's appends fail their expectation. FENCED
 * when something else was appended after `expectLastSeq`; the message id makes a
 * retry of the same epoch's marker a duplicate, not a second marker.
 */
export async function appendMarker(js: JetStreamClient, m: MarkerAppend): Promise<number> {
  const subject = subjects.oplog(m.vdisk);
  const marker: OplogEntry = { kind: 'marker', epoch: m.epoch, owner: m.owner };
  try {
    const ack = await js.publish(subject, encode(marker), { msgID: `${subject}:takeover:${m.epoch}`, expect: { lastSubjectSequence: m.expectLastSeq }, timeout: m.timeoutMs });
    return ack.seq;
  } catch (err) {
    if (isWrongLastSequence(err)) throw new StrataError(ErrorCode.FENCED, `${subject}: appended to after sequence ${m.expectLastSeq}; the marker of epoch ${m.epoch} was not written`, { cause: err });
    throw err;
  }
}

/**
 * Purges the vDisk's oplog entries below `seq` (drained), never its newest message:
 * purging that would reset the subject's last sequence to 0 and break the owner's
 * next append's expectation.
 */
export async function purgeBelow(jsm: JetStreamManager, vdisk: bigint, seq: number, lastSeq: number): Promise<void> {
  const below = Math.min(seq, lastSeq);
  if (below <= 1) return;
  await jsm.streams.purge(streams.oplog, { filter: subjects.oplog(vdisk), seq: below });
}
