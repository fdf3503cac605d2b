// An oplog append whose acknowledgement was lost, against a fake stream with the
// current server's rules: the expected last subject sequence is checked before
// duplicate detection (nats-server 2.9 checked duplicates first), so the retry of a
// stored append is refused "wrong last sequence". The appender must then find its own
// message as the subject's last and succeed with its sequence; a refusal caused by
// another owner's message must still be FENCED, and one with nothing appended after
// the expected message (a clustered leader refusing while an attempt is in flight)
// is tried again.
import type { JetStreamClient } from '@nats-io/jetstream';
import { ErrorCode, isStrataError } from '@strata/errors';
import type { OplogOp } from '@strata/proto';
import { OplogAppender } from '../src/append';

interface Stored {
  seq: number;
  msgId: string;
}

/** One subject of a stream: appends with an expectation, the ack of chosen attempts "lost" after storing. */
class FakeStream {
  readonly messages: Stored[] = [];
  /** Attempts (1-based, counting every publish) whose message is stored but whose ack never arrives. */
  readonly loseAckOf = new Set<number>();
  /** Attempts refused "wrong last sequence" although the expectation holds (an earlier attempt in flight at a clustered leader). */
  readonly refuseSpuriously = new Set<number>();
  private publishes = 0;

  get lastSeq(): number {
    return this.messages.at(-1)?.seq ?? 0;
  }

  publish(_subject: string, _body: Uint8Array, options: { msgID: string; expect: { lastSubjectSequence: number } }): Promise<{ seq: number }> {
    const n = ++this.publishes;
    if (this.refuseSpuriously.has(n)) return Promise.reject(new Error(`wrong last sequence: ${this.lastSeq}`));
    if (options.expect.lastSubjectSequence !== this.lastSeq) return Promise.reject(new Error(`wrong last sequence: ${this.lastSeq}`));
    const seq = this.lastSeq + 1;
    this.messages.push({ seq, msgId: options.msgID });
    if (this.loseAckOf.has(n)) return Promise.reject(new Error('TimeoutError: timeout'));
    return Promise.resolve({ seq });
  }

  /** Another owner's append (a takeover marker). */
  appendOther(): void {
    this.messages.push({ seq: this.lastSeq + 1, msgId: 'someone-else' });
  }
}

function appender(stream: FakeStream): OplogAppender {
  return new OplogAppender({
    js: () => stream as unknown as JetStreamClient,
    subject: 'oplog.7',
    vdisk: 7n,
    epoch: 1,
    owner: 'n1',
    lastSequence: 0,
    maxBatchBytes: 1 << 20,
    publishTimeoutMs: 1_000,
    publishAttempts: 4,
    lastMessage: () => Promise.resolve(stream.messages.length === 0 ? undefined : { seq: stream.lastSeq, msgId: stream.messages.at(-1)!.msgId }),
  });
}

const write: OplogOp = { op: 'write', offset: 0, data: new Uint8Array(8) };

describe('oplog append retries', () => {
  it('takes a stored append whose ack was lost as stored when its retry is refused', async () => {
    const stream = new FakeStream();
    stream.loseAckOf.add(2);
    const oplog = appender(stream);
    expect((await oplog.append(write)).seq).toBe(1);
    expect((await oplog.append(write)).seq).toBe(2);
    // The second append was stored once (no duplicate), and the appender carries on after it.
    expect(stream.messages.map((m) => m.seq)).toEqual([1, 2]);
    expect((await oplog.append(write)).seq).toBe(3);
    expect(oplog.failed).toBeUndefined();
  });

  it('tries again after a refusal when nothing was appended after the expected message', async () => {
    const stream = new FakeStream();
    stream.refuseSpuriously.add(2);
    stream.refuseSpuriously.add(3);
    const oplog = appender(stream);
    expect((await oplog.append(write)).seq).toBe(1);
    expect((await oplog.append(write)).seq).toBe(2);
    expect(stream.messages.map((m) => m.seq)).toEqual([1, 2]);
    expect(oplog.failed).toBeUndefined();
  });

  it('is FENCED when the refusal comes from another owner’s message', async () => {
    const stream = new FakeStream();
    const oplog = appender(stream);
    expect((await oplog.append(write)).seq).toBe(1);
    stream.appendOther();
    const err = await oplog.append(write).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.FENCED)).toBe(true);
  });

  it('is FENCED when another owner appended after our lost-ack append', async () => {
    const stream = new FakeStream();
    stream.loseAckOf.add(1);
    const oplog = appender(stream);
    const pending = oplog.append(write);
    // Our append is stored (ack lost); the new owner's marker lands before our retry.
    stream.appendOther();
    const err = await pending.catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.FENCED)).toBe(true);
  });
});
