// Helpers for the spans the actors make on the I/O path, and the names of the attributes
// they carry. Tracing is off unless something exports (sdk.ts): every span is then a
// NonRecordingSpan, so code on the hot path asks isRecording() (or recordingSpan()) before
// it builds attribute objects or link arrays, and allocates nothing more when it is off.
import { INVALID_SPAN_CONTEXT, context, isSpanContextValid, trace, SpanStatusCode, type Context, type Span } from '@opentelemetry/api';

/**
 * Attribute keys of Strata's own spans, in one place so producers and the tests that read
 * spans back agree. Ids of 64-bit objects (vDisks, extent groups, disks) are decimal strings:
 * OpenTelemetry attributes have no 64-bit integer type.
 */
export const SpanAttr = {
  /** The vDisk id. */
  vdisk: 'strata.vdisk',
  /** The vDisk's name (the NBD export name). */
  vdiskName: 'strata.vdisk.name',
  /** read, write, zero, flush (the bus subject's last token), or the NBD command (trim too). */
  ioOp: 'strata.io.op',
  /** Byte offset in the vDisk. */
  offset: 'strata.io.offset',
  /** Byte length of the range. */
  length: 'strata.io.length',
  /** The node that owns the vDisk (io-director: where the request goes). */
  owner: 'strata.owner',
  /** The oplog sequence of the message that holds a write (the group commit's batch). */
  oplogSeq: 'strata.oplog.seq',
  /** Ops in the oplog message. */
  oplogOps: 'strata.oplog.ops',
  /** Payload bytes of the ops in the oplog message. */
  oplogBytes: 'strata.oplog.bytes',
  /** The subject's last sequence the publish expected (the fence). */
  oplogExpectedSeq: 'strata.oplog.expected_last_seq',
  /** ops, or marker (a new owner's takeover marker). */
  oplogKind: 'strata.oplog.kind',
  /** Publish attempts (a retry after an unknown outcome reuses the message id). */
  attempts: 'strata.attempts',
  /** The owner epoch a write carries. */
  epoch: 'strata.epoch',
  /** Extent group id. */
  egroup: 'strata.egroup',
  /** Extent-group version a write makes. */
  egroupVersion: 'strata.egroup.version',
  /** Disk id. */
  disk: 'strata.disk',
  /** Pieces in an extent-group write. */
  pieces: 'strata.pieces',
  /** Data bytes of a write (zero pieces count nothing). */
  bytes: 'strata.bytes',
  /** Metadata partition. */
  mdPartition: 'strata.md.partition',
  /** Metadata map: vdisk, extent, egroup. */
  mdMap: 'strata.md.map',
  /** Metadata key. */
  mdKey: 'strata.md.key',
  /** Requests waiting in the admission queue when this one joined it (itself included). */
  queueDepth: 'strata.admission.queue_depth',
  /** Requests in flight to the controller when this one joined the queue. */
  inFlight: 'strata.admission.in_flight',
  /** First oplog sequence a drain covers. */
  drainFromSeq: 'strata.drain.from_seq',
  /** Last oplog sequence a drain covers. */
  drainToSeq: 'strata.drain.to_seq',
  /** vDisk blocks a drain writes. */
  drainBlocks: 'strata.drain.blocks',
  /** Extent groups a drain writes. */
  drainEgroups: 'strata.drain.egroups',
  /** Writes the drain span links to. */
  drainLinks: 'strata.drain.links',
  /** True when some drained writes are not linked (more than the bound were stored). */
  drainLinksIncomplete: 'strata.drain.links_incomplete',
  /** NBD connection number in the gateway. */
  nbdConnection: 'nbd.connection',
  /** NBD_CMD_FLAG_FUA was set. */
  nbdFua: 'nbd.fua',
  /** The errno the NBD reply carried (0: success). */
  nbdErrno: 'nbd.errno',
} as const;

/** The most links one span gets from Strata (also the SDK's default OTEL_SPAN_LINK_COUNT_LIMIT). */
export const SPAN_LINKS_MAX = 128;

/**
 * The active span when it records, else undefined. Use it with optional chaining,
 * `recordingSpan()?.setAttributes({ ... })`: the object literal is then not even built
 * when tracing is off.
 */
export function recordingSpan(): Span | undefined {
  const span = trace.getActiveSpan();
  return span !== undefined && span.isRecording() ? span : undefined;
}

/**
 * `parent` (default: the active context) with `span` as its span: the context to run
 * or propagate a span's children in. `span` may have ended already (a child may start
 * after its parent ends). For a no-op span with no trace (tracing off) it is `parent`
 * itself: nothing is allocated.
 */
export function contextWithSpan(span: Span, parent: Context = context.active()): Context {
  // Not isRecording(): an SDK span stops recording once it ends, and is still a parent.
  // A no-op span without a parent holds INVALID_SPAN_CONTEXT itself: no regex for it.
  const spanContext = span.spanContext();
  return spanContext !== INVALID_SPAN_CONTEXT && isSpanContextValid(spanContext) ? trace.setSpan(parent, span) : parent;
}

/**
 * Runs `fn` with `span` active on top of `parent` (default: the active context), so spans
 * started inside it, the bus's request spans included, are its children (see
 * contextWithSpan). When that context is the active one already (tracing off, and no
 * other parent asked for), `fn` is simply called.
 */
export function withSpan<T>(span: Span, fn: () => T, parent?: Context): T {
  const active = context.active();
  const target = contextWithSpan(span, parent ?? active);
  return target === active ? fn() : context.with(target, fn);
}

/**
 * Runs `fn` inside `span` (see withSpan), marks the span failed when `fn` throws, and
 * ends it either way: the whole life of a span that covers one async step.
 */
export async function inSpan<T>(span: Span, fn: () => Promise<T>, parent?: Context): Promise<T> {
  try {
    return await withSpan(span, fn, parent);
  } catch (err) {
    recordSpanError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/**
 * Marks `span` failed, as the bus marks its spans: status ERROR with the error's text and,
 * for an error with a string `code` (a StrataError), the `strata.error.code` attribute.
 */
export function recordSpanError(span: Span, err: unknown): void {
  if (!span.isRecording()) return;
  span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
  const code = (err as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'string') span.setAttribute('strata.error.code', code);
}
