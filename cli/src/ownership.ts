// What `strata vdisk owner` and `strata events` read straight from JetStream: a
// vDisk's ownership record and any failover in progress (bucket `own`), and the
// cluster events (stream EVENTS). Reads only: nothing here creates a bucket, a
// stream or a durable consumer.
import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { decode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { TypedBucket } from '@strata/kv';
import {
  buckets,
  clusterEvent,
  EventType,
  keys,
  streams,
  takeoverRecord,
  vdiskOwnership,
  type ClusterEvent,
  type TakeoverRecord,
  type VdiskOwnership,
} from '@strata/proto';
import { isStreamNotFound } from './client';

export interface OwnerState {
  /** The ownership record, or null before the vDisk's first I/O. */
  ownership: VdiskOwnership | null;
  /** The failover in progress, if any. */
  takeover: TakeoverRecord | null;
}

/** The ownership record and takeover record of vDisk `vdiskId` in bucket `own`. A missing bucket reads as no records. */
export async function readOwner(nc: NatsConnection, vdiskId: bigint): Promise<OwnerState> {
  const kv = await new Kvm(nc).open(buckets.own);
  const ownership = new TypedBucket(buckets.own, kv, vdiskOwnership, nc);
  const takeover = new TypedBucket(buckets.own, kv, takeoverRecord, nc);
  try {
    const [o, t] = await Promise.all([ownership.get(keys.vdiskOwnership(vdiskId)), takeover.get(keys.takeover(vdiskId))]);
    return { ownership: o?.value ?? null, takeover: t?.value ?? null };
  } catch (err) {
    // No `own` bucket yet (nothing has run on this NATS): no record either.
    if (isStreamNotFound(err)) return { ownership: null, takeover: null };
    throw err;
  }
}

/**
 * The lines `strata vdisk owner` prints: `n2 epoch 7 volunteers n1,n3` (or
 * `unowned (no I/O yet)`), then, during a failover,
 * `takeover in progress: n2 -> n1 at epoch 8, step replay (node n2 declared dead)`.
 */
export function formatOwner(state: OwnerState): string[] {
  const o = state.ownership;
  const lines = [o === null ? 'unowned (no I/O yet)' : `${o.owner} epoch ${o.epoch} volunteers ${o.volunteers.length > 0 ? o.volunteers.join(',') : '-'}`];
  const t = state.takeover;
  if (t !== null) lines.push(`takeover in progress: ${t.from} -> ${t.to} at epoch ${t.epoch}, step ${t.step} (${t.reason})`);
  return lines;
}

/** The JSON form of `strata vdisk owner --json`; owner, epoch and drained are null while unowned. */
export function ownerJson(vdisk: string, id: bigint, state: OwnerState): Record<string, unknown> {
  const o = state.ownership;
  return {
    vdisk,
    id,
    owner: o?.owner ?? null,
    epoch: o?.epoch ?? null,
    volunteers: o?.volunteers ?? [],
    drained: o?.drained ?? null,
    ...(state.takeover === null ? {} : { takeover: state.takeover }),
  };
}

export interface EventFilter {
  /** Only events about this vDisk (kind `vdisk`, this id). */
  vdisk?: bigint;
  /** Only events about this VM (kind `vm`, this id). */
  vm?: bigint;
  type?: EventType;
  /** Only events whose type starts with this (`ha.`). */
  typePrefix?: string;
}

export interface ReadEventsOptions {
  /** Keep the last `limit` matching events (default 50). */
  limit?: number;
  filter?: EventFilter;
  /** Most time the whole read may take (default 15 s); beyond it the read fails with TIMEOUT. */
  timeoutMs?: number;
  /** Messages in the first window read back from the end (default: the limit, at least 1,000); each further window doubles. */
  windowSize?: number;
}

export interface SkippedEvent {
  seq: number;
  error: string;
}

/**
 * A cluster event as read from the stream, with the id of the trace it was recorded
 * in (from its message's `traceparent` header) when the process that recorded it
 * traced: a takeover's `owner.changed`, for one, is in the takeover's trace.
 */
export type ReadEvent = ClusterEvent & { traceId?: string };

export interface EventsRead {
  /** Oldest first. */
  events: ReadEvent[];
  /** Messages read that did not decode as a cluster event, by sequence. */
  skipped: SkippedEvent[];
}

export const eventTypes: readonly EventType[] = Object.values(EventType);

export function matches(e: ClusterEvent, filter: EventFilter): boolean {
  if (filter.type !== undefined && e.type !== filter.type) return false;
  if (filter.vdisk !== undefined && !(e.kind === 'vdisk' && e.id === filter.vdisk)) return false;
  if (filter.vm !== undefined && !(e.kind === 'vm' && e.id === filter.vm)) return false;
  if (filter.typePrefix !== undefined && !e.type.startsWith(filter.typePrefix)) return false;
  return true;
}

/** How long one fetch waits for messages: the client's minimum. It only waits when nothing is left to deliver. */
const FETCH_WAIT_MS = 1_000;

/**
 * Calls `visit` with every message of EVENTS from sequence `from` to `to`, in order,
 * through an ordered (ephemeral, unacknowledged) consumer deleted afterwards. It stops
 * at `to`, when the server says nothing is pending, or after an empty fetch (the rest
 * was deleted meanwhile), so it ends whatever happens to the stream.
 */
async function readRange(nc: NatsConnection, from: number, to: number, deadline: number, visit: (m: JsMsg) => void): Promise<void> {
  // Should the CLI die before deleting it, the server drops it once idle.
  const consumer = await jetstream(nc).consumers.get(streams.events, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from, inactive_threshold: 10_000 });
  try {
    let seq = from - 1;
    for (;;) {
      if (Date.now() >= deadline) throw new StrataError(ErrorCode.TIMEOUT, `reading ${streams.events} took too long (stopped at sequence ${seq})`);
      const batch = await consumer.fetch({ max_messages: Math.max(1, Math.min(to - seq, 1_000)), expires: FETCH_WAIT_MS });
      let received = 0;
      try {
        for await (const m of batch) {
          received++;
          seq = m.seq;
          if (seq > to) return;
          visit(m);
          if (seq === to || m.info.pending === 0) return;
        }
      } catch (err) {
        // A consumer just made through another server of a cluster may not be known
        // yet where the pull lands ("no responders", 503): ask again, until the deadline.
        if (received > 0 || !/no responders|503/i.test(`${(err as Error).message} ${String((err as { code?: unknown }).code)}`)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (received === 0) return;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
}

/**
 * The last `limit` events of the EVENTS stream that pass `filter`, oldest first,
 * as the stream was when called. It reads windows back from the end, each twice the
 * last, until it has `limit` events or reaches the start: a short look at a long
 * stream reads only its tail. Undecodable messages are skipped and reported.
 */
export async function readEvents(nc: NatsConnection, options: ReadEventsOptions = {}): Promise<EventsRead> {
  const limit = options.limit ?? 50;
  const filter = options.filter ?? {};
  const timeoutMs = options.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  const skipped: SkippedEvent[] = [];
  if (limit <= 0) return { events: [], skipped };

  let state: { first_seq: number; last_seq: number; messages: number };
  try {
    state = (await (await jetstreamManager(nc)).streams.info(streams.events)).state;
  } catch (err) {
    // No EVENTS stream: no config leader has ever run here, so there is no event.
    if (isStreamNotFound(err)) return { events: [], skipped };
    throw err;
  }
  if (state.messages === 0) return { events: [], skipped };

  let found: ReadEvent[] = [];
  let end = state.last_seq;
  let size = Math.max(1, options.windowSize ?? Math.max(limit, 1_000));
  while (found.length < limit && end >= state.first_seq) {
    const from = Math.max(state.first_seq, end - size + 1);
    const want = limit - found.length;
    const window: ReadEvent[] = [];
    await readRange(nc, from, end, deadline, (m) => {
      let event: ReadEvent;
      try {
        event = decode(m.data, clusterEvent);
      } catch (err) {
        skipped.push({ seq: m.seq, error: err instanceof StrataError ? err.toString() : String(err) });
        return;
      }
      if (!matches(event, filter)) return;
      const traceId = traceIdOf(m.headers?.get('traceparent'));
      window.push(traceId === undefined ? event : { ...event, traceId });
      // Only the window's last `want` events can be shown: keep memory bounded.
      if (window.length >= 2 * want) window.splice(0, window.length - want);
    });
    found = window.slice(-want).concat(found);
    end = from - 1;
    size *= 2;
  }
  skipped.sort((x, y) => x.seq - y.seq);
  return { events: found, skipped };
}

/** The trace id of a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`), or undefined. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const m = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent ?? '');
  return m === null || /^0+$/.test(m[1]!) ? undefined : m[1];
}

/** Width of the type column: the longest event type. */
const typeWidth = Math.max(...eventTypes.map((t) => t.length));

/**
 * One line per event: `2025-01-02T03:04:05.678Z owner.changed  <message>`, and for
 * owner.changed `owner=n1 from=n2 epoch=8 cause=failover` after the message.
 */
export function formatEvent(e: ClusterEvent): string {
  const parts = [new Date(e.atMs).toISOString(), e.type.padEnd(typeWidth), e.message];
  if (e.type === EventType.ownerChanged) {
    parts.push(`owner=${e.owner ?? '-'} from=${e.previousOwner ?? '-'} epoch=${e.ownerEpoch ?? '-'} cause=${e.cause}`);
  }
  return parts.join(' ');
}
