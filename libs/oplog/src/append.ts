// A vDisk's oplog appender: group commit with one publish in flight. Writes that
// arrive while a publish is in flight wait together and go out as the next message,
// published with Nats-Expected-Last-Subject-Sequence set to the last sequence this
// owner saw, so a deposed owner's next append fails: the oplog itself is the fence.
// Each message has a Nats-Msg-Id; a publish whose outcome is unknown (timeout) is
// retried with the same id and expectation. nats-server 2.9 checked duplicates before
// the expectation and answered the retry with the original ack; current servers check
// the expectation first and refuse the retry of a stored message ("wrong last
// sequence"), and a clustered stream may refuse an append while an earlier attempt is
// still in flight. So a refused append asks what the subject's last message is: ours
// means the append was stored (its sequence is the answer); the one we expected means
// nothing was appended (try again); only a message of another's means this owner was
// fenced.
//
// Spans: each append has an `oplog append` span, a child of the caller's (the
// controller's handler), from the call until its message is stored; it carries the
// message's oplog sequence. Each message has one `oplog publish` span. Many writes share
// that message, and a span has one parent, so the publish is the child of the batch's
// first write's append span and links to the other writes' append spans, each of which
// links back to it. A parent rather than a root of its own: at low queue depth a batch
// is one write, and the publish, where that write's time goes, is then in the write's
// own trace; a larger batch's other writes reach it through their link. The message's
// headers carry the publish span's context, so whatever reads the oplog can link to it.
import { headers } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import { encode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { isWrongLastSequence } from '@strata/kv';
import type { OplogEntry, OplogOp } from '@strata/proto';
import {
  ROOT_CONTEXT,
  SPAN_LINKS_MAX,
  SpanAttr,
  SpanKind,
  context,
  contextWithSpan,
  injectTraceContext,
  recordSpanError,
  trace,
  type Context,
  type Link,
  type Span,
  type SpanContext,
} from '@strata/tracing';

const tracer = trace.getTracer('@strata/vdisk-controller');

export interface OplogAppenderOptions {
  /** The client to publish with, asked at every attempt (the oplog link may have moved to a new stream leader). */
  js: () => JetStreamClient;
  subject: string;
  /** The vDisk whose oplog this is (for spans). */
  vdisk: bigint;
  /** The owner epoch written into every entry. */
  epoch: number;
  /** Node name, for msg ids. */
  owner: string;
  /** The last sequence on the subject that this owner has seen. */
  lastSequence: number;
  /** Most payload bytes one message carries. */
  maxBatchBytes: number;
  /**
   * The subject's last message: its sequence and Nats-Msg-Id (undefined when it has
   * none), to tell a retry of a stored append from another owner's append.
   */
  lastMessage: () => Promise<{ seq: number; msgId: string | undefined } | undefined>;
  /** Per-publish timeout and the number of attempts for an unknown outcome. */
  publishTimeoutMs: number;
  publishAttempts: number;
}

/** A stored append: its oplog sequence, which the caller applies to its index, and its span (undefined when tracing is off). */
export interface Appended {
  seq: number;
  /** The `oplog append` span's context, for whatever later works on the write (drain) to link to. */
  span: SpanContext | undefined;
}

interface Pending {
  /** One caller's ops: they go out in the same message, so they are stored together or not at all. */
  ops: readonly OplogOp[];
  bytes: number;
  resolve: (appended: Appended) => void;
  reject: (err: unknown) => void;
  /** The `oplog append` span, ended when the op is stored or failed. */
  span: Span;
}

function opBytes(op: OplogOp): number {
  return op.op === 'write' ? op.data.length + 32 : 48;
}

function opLength(op: OplogOp): number {
  return op.op === 'write' ? op.data.length : op.length;
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

  /**
   * Appends `ops` (one or more, stored in one message: all or none); resolves with
   * their oplog sequence once JetStream has stored them. The caller applies them at
   * that sequence: the appends of one message resolve one after another, in the
   * order they were made, and each message's before the next one's.
   */
  append(...ops: OplogOp[]): Promise<Appended> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const first = ops[0]!;
    const span = tracer.startSpan('oplog append');
    if (span.isRecording()) {
      span.setAttributes({
        [SpanAttr.vdisk]: String(this.options.vdisk),
        [SpanAttr.ioOp]: first.op,
        [SpanAttr.offset]: first.offset,
        [SpanAttr.length]: ops.reduce((n, op) => n + opLength(op), 0),
      });
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, bytes: ops.reduce((n, op) => n + opBytes(op), 0), resolve, reject, span });
      this.kick();
    });
  }

  /** Appends a takeover marker (the first thing a new owner writes): a publish span under the caller's. */
  async appendMarker(): Promise<number> {
    const entry: OplogEntry = { kind: 'marker', epoch: this.options.epoch, owner: this.options.owner };
    const parent = context.active();
    return this.publish(entry, this.startPublishSpan(entry, parent, undefined, 0), parent);
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
    const ops = batch.flatMap((p) => p.ops);
    const entry: OplogEntry = { kind: 'ops', epoch: this.options.epoch, ops };
    // The first write's span is the parent, set explicitly: kick() runs in whichever
    // context called it (an append, or the end of the previous publish).
    const first = batch[0]!;
    const parent = contextWithSpan(first.span, ROOT_CONTEXT);
    // Only traced appends are linked, so with tracing off no array is made here.
    let links: Link[] | undefined;
    for (const p of batch) {
      if (p === first || !p.span.isRecording()) continue;
      if ((links ??= []).length < SPAN_LINKS_MAX) links.push({ context: p.span.spanContext() });
    }
    const span = this.startPublishSpan(entry, parent, links, bytes);
    if (links !== undefined && span.isRecording()) {
      const back: Link = { context: span.spanContext() };
      for (const p of batch) if (p !== first && p.span.isRecording()) p.span.addLink(back);
    }
    this.publish(entry, span, parent)
      .then((seq) => {
        for (const p of batch) {
          // Taken before the span ends: an ended span no longer records.
          const traced = p.span.isRecording() ? p.span.spanContext() : undefined;
          p.span.setAttribute(SpanAttr.oplogSeq, seq);
          p.span.setAttribute(SpanAttr.oplogOps, ops.length);
          p.span.end();
          p.resolve({ seq, span: traced });
        }
      })
      .catch((err: unknown) => {
        for (const p of batch) fail(p, err);
        if (this.failed !== undefined) for (const p of this.queue.splice(0)) fail(p, this.failed);
      })
      .finally(() => {
        this.inFlight = false;
        this.kick();
      });
  }

  /**
   * What a "wrong last sequence" refusal of the append with `msgID` means, from the
   * subject's last message: it is ours (an earlier attempt was stored, its ack lost),
   * it is still the one we expected (nothing was appended: retry), or it is another's
   * (a newer owner appended: fenced).
   */
  private async judgeRefusal(msgID: string): Promise<RefusalVerdict> {
    const last = await this.options.lastMessage();
    if (last !== undefined && last.msgId === msgID) return { kind: 'stored', seq: last.seq };
    if ((last?.seq ?? 0) === this.options.lastSequence) return { kind: 'retry' };
    return { kind: 'fenced' };
  }

  /** The `oplog publish` span of one message: a child of `parent`, linked to `links`. */
  private startPublishSpan(entry: OplogEntry, parent: Context, links: Link[] | undefined, payloadBytes: number): Span {
    const span = tracer.startSpan('oplog publish', links === undefined ? publishSpanOptions : { ...publishSpanOptions, links }, parent);
    if (span.isRecording()) {
      span.setAttributes({
        [SpanAttr.vdisk]: String(this.options.vdisk),
        'messaging.destination.name': this.options.subject,
        [SpanAttr.oplogKind]: entry.kind,
        [SpanAttr.oplogExpectedSeq]: this.options.lastSequence,
        [SpanAttr.epoch]: this.options.epoch,
        ...(entry.kind === 'ops' ? { [SpanAttr.oplogOps]: entry.ops.length, [SpanAttr.oplogBytes]: payloadBytes } : {}),
      });
    }
    return span;
  }

  /** Publishes one message under `span` (started by startPublishSpan), and ends it. */
  private async publish(entry: OplogEntry, span: Span, parent: Context): Promise<number> {
    const { js, subject, publishTimeoutMs, publishAttempts } = this.options;
    const msgID = `${subject}:${this.options.owner}:${this.options.epoch}:${++this.batchNo}:${this.options.lastSequence}`;
    const h = headers();
    injectTraceContext(h, contextWithSpan(span, parent));
    const body = encode(entry);
    let lastErr: unknown;
    try {
      for (let attempt = 1; attempt <= publishAttempts; attempt++) {
        span.setAttribute(SpanAttr.attempts, attempt);
        try {
          const ack = await js().publish(subject, body, { msgID, headers: h, timeout: publishTimeoutMs, expect: { lastSubjectSequence: this.options.lastSequence } });
          this.options.lastSequence = ack.seq;
          span.setAttribute(SpanAttr.oplogSeq, ack.seq);
          return ack.seq;
        } catch (err) {
          if (isWrongLastSequence(err)) {
            let verdict: RefusalVerdict;
            try {
              verdict = await this.judgeRefusal(msgID);
            } catch (lookupErr) {
              // Still unknown: the next attempt asks again.
              lastErr = lookupErr;
              continue;
            }
            if (verdict.kind === 'stored') {
              this.options.lastSequence = verdict.seq;
              span.setAttribute(SpanAttr.oplogSeq, verdict.seq);
              return verdict.seq;
            }
            if (verdict.kind === 'fenced') {
              this.failed = new StrataError(ErrorCode.FENCED, `${subject}: another owner appended after sequence ${this.options.lastSequence}; this node no longer owns the vDisk`, {
                cause: err,
              });
              throw this.failed;
            }
            // Nothing was appended after ours: a refusal of the moment (an earlier
            // attempt still in flight at the server), not a fence. Try again shortly.
            await new Promise((resolve) => setTimeout(resolve, 25 * attempt));
          }
          lastErr = err;
        }
      }
      this.failed = new StrataError(ErrorCode.UNAVAILABLE, `${subject}: the oplog did not acknowledge an append after ${publishAttempts} attempts: ${(lastErr as Error)?.message}`, {
        cause: lastErr,
      });
      throw this.failed;
    } catch (err) {
      recordSpanError(span, err);
      throw err;
    } finally {
      span.end();
    }
  }
}

const publishSpanOptions = { kind: SpanKind.PRODUCER } as const;

type RefusalVerdict = { kind: 'stored'; seq: number } | { kind: 'retry' } | { kind: 'fenced' };

function fail(p: Pending, err: unknown): void {
  recordSpanError(p.span, err);
  p.span.end();
  p.reject(err);
}
