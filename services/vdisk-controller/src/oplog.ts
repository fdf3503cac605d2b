// A vDisk's oplog appender: group commit with one publish in flight. Writes that
// arrive while a publish is in flight wait together and go out as the next message,
// published with Nats-Expected-Last-Subject-Sequence set to the last sequence this
// owner saw, so a deposed owner's next append fails: the oplog itself is the fence.
// Each message has a Nats-Msg-Id; a publish whose outcome is unknown (timeout) is
// retried with the same id and expectation, and JetStream's duplicate detection
// (checked before the expectation, verified on 2.9.10) returns the original ack.
import { headers } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import { encode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { isWrongLastSequence } from '@strata/kv';
import type { OplogEntry, OplogOp } from '@strata/proto';
import { injectTraceContext } from '@strata/tracing';

export interface OplogAppenderOptions {
  js: JetStreamClient;
  subject: string;
  /** The owner epoch written into every entry. */
  epoch: number;
  /** Node name, for msg ids. */
  owner: string;
  /** The last sequence on the subject that this owner has seen. */
  lastSequence: number;
  /** Most payload bytes one message carries. */
  maxBatchBytes: number;
  /** Per-publish timeout and the number of attempts for an unknown outcome. */
  publishTimeoutMs: number;
  publishAttempts: number;
  /** Called, in order, with each stored batch before its writers are told. */
  onStored: (seq: number, ops: readonly OplogOp[]) => void;
}

interface Pending {
  op: OplogOp;
  bytes: number;
  resolve: (seq: number) => void;
  reject: (err: unknown) => void;
}

function opBytes(op: OplogOp): number {
  return op.op === 'write' ? op.data.length + 32 : 32;
}

/** What a vDisk needs of its oplog (OplogAppender; a fake in unit tests). */
export type Oplog = Pick<OplogAppender, 'append' | 'appendMarker' | 'lastSequence' | 'failed'>;

export class OplogAppender {
  private readonly queue: Pending[] = [];
  private inFlight = false;
  private batchNo = 0;
  /**
   * Set once an append failed its fence (FENCED: another owner appended), or its
   * outcome stayed unknown after every attempt (UNAVAILABLE: it may or may not be
   * stored). Either way this appender's view is no longer trustworthy: the vDisk
   * must be reopened from the oplog, or given up.
   */
  failed: StrataError | undefined;

  constructor(private readonly options: OplogAppenderOptions) {}

  get lastSequence(): number {
    return this.options.lastSequence;
  }

  /** Appends one op; resolves with its oplog sequence once JetStream has stored it. */
  append(op: OplogOp): Promise<number> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ op, bytes: opBytes(op), resolve, reject });
      this.kick();
    });
  }

  /** Appends a takeover marker (the first thing a new owner writes). */
  async appendMarker(): Promise<number> {
    return this.publish({ kind: 'marker', epoch: this.options.epoch, owner: this.options.owner });
  }

  private kick(): void {
    if (this.inFlight || this.queue.length === 0) return;
    this.inFlight = true;
    const batch: Pending[] = [];
    let bytes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (batch.length > 0 && bytes + next.bytes > this.options.maxBatchBytes) break;
      batch.push(next);
      bytes += next.bytes;
      this.queue.shift();
    }
    const ops = batch.map((p) => p.op);
    this.publish({ kind: 'ops', epoch: this.options.epoch, ops })
      .then((seq) => {
        this.options.onStored(seq, ops);
        for (const p of batch) p.resolve(seq);
      })
      .catch((err: unknown) => {
        for (const p of batch) p.reject(err);
        if (this.failed !== undefined) for (const p of this.queue.splice(0)) p.reject(this.failed);
      })
      .finally(() => {
        this.inFlight = false;
        this.kick();
      });
  }

  private async publish(entry: OplogEntry): Promise<number> {
    const { js, subject, publishTimeoutMs, publishAttempts } = this.options;
    const msgID = `${subject}:${this.options.owner}:${this.options.epoch}:${++this.batchNo}:${this.options.lastSequence}`;
    const h = headers();
    injectTraceContext(h);
    const body = encode(entry);
    let lastErr: unknown;
    for (let attempt = 1; attempt <= publishAttempts; attempt++) {
      try {
        const ack = await js.publish(subject, body, { msgID, headers: h, timeout: publishTimeoutMs, expect: { lastSubjectSequence: this.options.lastSequence } });
        this.options.lastSequence = ack.seq;
        return ack.seq;
      } catch (err) {
        if (isWrongLastSequence(err)) {
          this.failed = new StrataError(ErrorCode.FENCED, `${subject}: another owner appended after sequence ${this.options.lastSequence}; this node no longer owns the vDisk`, {
            cause: err,
          });
          throw this.failed;
        }
        lastErr = err;
      }
    }
    this.failed = new StrataError(ErrorCode.UNAVAILABLE, `${subject}: the oplog did not acknowledge an append after ${publishAttempts} attempts: ${(lastErr as Error)?.message}`, {
      cause: lastErr,
    });
    throw this.failed;
  }
}
