// The message bus every actor speaks: CBOR request/reply over NATS with a deadline
// on every request, typed error replies with stable codes, and W3C trace context in
// the headers of every message. See proto/PROTOCOL.md for the wire rules.
import { performance } from 'node:perf_hooks';
import { connect, headers as natsHeaders, type MsgHdrs, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { z } from 'zod';
import { decode, decodeUntyped, encode, validate } from '@strata/codec';
import { ErrorCode, StrataError, isErrorCode } from '@strata/errors';
import { SpanKind, SpanStatusCode, context, extractTraceContext, injectTraceContext, trace, type Span } from '@strata/tracing';
import { replyEnvelope } from './envelope';

/** Header carrying the requester's remaining time budget, in milliseconds. */
export const TIMEOUT_HEADER = 'Strata-Timeout-Ms';

/** Default budget for a request when the caller names none. */
export const DEFAULT_TIMEOUT_MS = 5_000;

/** The structural subset of a pino logger the bus uses. */
export interface BusLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface BusOptions {
  /** Connection name shown by the server (`strata-config-1`). */
  name: string;
  /** Server URLs; default: NATS_URL (comma-separated) or nats://127.0.0.1:4222. */
  servers?: string | string[];
  log?: BusLogger;
}

export interface RequestOptions {
  /** Total time budget for the call, retries included. */
  timeoutMs?: number;
  /**
   * Retry replies whose code is retryable (UNAVAILABLE, NOT_OWNER, QUEUE_FULL,
   * TIMEOUT) with jittered exponential backoff until the budget is spent. Only for
   * requests that are safe to repeat.
   */
  retry?: boolean;
  /** With retry: the most one attempt may take (default: the whole budget). */
  attemptTimeoutMs?: number;
}

export interface RequestContext {
  subject: string;
  /** performance.now() value after which the requester has stopped waiting. */
  deadline: number;
  remainingMs(): number;
  headers: MsgHdrs | undefined;
}

export type Handler<Req, Rep> = (request: Req, ctx: RequestContext) => Promise<Rep> | Rep;

export interface ServeOptions {
  /** Queue group: one member of the group gets each request. */
  queue?: string;
  /** Requests handled at once; beyond it a request gets QUEUE_FULL. */
  maxInFlight?: number;
}

export interface Service {
  readonly subject: string;
  stop(): Promise<void>;
}

const tracer = trace.getTracer('@strata/bus');

/**
 * Thrown by a handler that must not answer at all (a replica that is no longer sure
 * it leads): the requester then hears from someone else or times out.
 */
export class NoReply extends Error {
  override readonly name = 'NoReply';
}

/** The hint on an UNAVAILABLE error that says no subscriber exists for the subject. */
const NO_RESPONDERS = 'no-responders';

function parseServers(servers: string | string[] | undefined): string[] {
  if (Array.isArray(servers)) return servers;
  const raw = servers ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export async function connectBus(options: BusOptions): Promise<Bus> {
  const nc = await connect({
    servers: parseServers(options.servers),
    name: options.name,
    // A storage controller never gives up on its bus: it reconnects forever, and
    // the lease logic decides when it must stop acting.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 5_000,
  });
  return new Bus(nc, options.log);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Maps a failure of nc.request() to a typed error. */
function transportError(err: unknown, subject: string, timeoutMs: number): StrataError {
  const e = err as Error & { isNoResponders?: () => boolean; cause?: unknown };
  const text = `${e.name ?? ''} ${e.message ?? ''} ${(e.cause as Error | undefined)?.name ?? ''}`;
  if ((typeof e.isNoResponders === 'function' && e.isNoResponders()) || /NoResponders|no responders|503/i.test(text)) {
    return new StrataError(ErrorCode.UNAVAILABLE, `no service answers on ${subject}`, { cause: err, hint: NO_RESPONDERS });
  }
  if (/timeout/i.test(text)) {
    return new StrataError(ErrorCode.TIMEOUT, `no reply on ${subject} within ${timeoutMs} ms`, { cause: err });
  }
  return new StrataError(ErrorCode.UNAVAILABLE, `request on ${subject} failed: ${e.message}`, { cause: err });
}

export class Bus {
  readonly nc: NatsConnection;
  private readonly log: BusLogger | undefined;

  constructor(nc: NatsConnection, log?: BusLogger) {
    this.nc = nc;
    this.log = log;
  }

  /**
   * Sends `request` to `subject` and returns the validated result, or throws the
   * StrataError the responder sent (or UNAVAILABLE / TIMEOUT from the transport).
   */
  async request<S extends z.ZodType>(subject: string, request: unknown, replySchema: S, options: RequestOptions = {}): Promise<z.output<S>> {
    const budgetMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = performance.now() + budgetMs;
    const body = encode(request);
    return tracer.startActiveSpan(`request ${subject}`, { kind: SpanKind.CLIENT, attributes: { 'messaging.destination.name': subject } }, async (span) => {
      try {
        for (let attempt = 0; ; attempt++) {
          const remainingMs = Math.floor(deadline - performance.now());
          if (remainingMs <= 0) throw new StrataError(ErrorCode.TIMEOUT, `no reply on ${subject} within ${budgetMs} ms`);
          const attemptMs = Math.min(remainingMs, options.attemptTimeoutMs ?? remainingMs);
          try {
            const result = await this.requestOnce(subject, body, replySchema, attemptMs);
            span.setAttribute('strata.attempts', attempt + 1);
            return result;
          } catch (err) {
            // "No responders" means the request reached nobody, so sending it again is
            // always safe: it covers a leader being elected or interest still crossing
            // the cluster. Other failures are retried only when the caller says so.
            const reachedNobody = err instanceof StrataError && err.code === ErrorCode.UNAVAILABLE && err.hint === NO_RESPONDERS;
            if (!reachedNobody && (!(options.retry ?? false) || !(err instanceof StrataError) || !err.retryable)) throw err;
            const backoffMs = Math.min(1_000, 25 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
            if (performance.now() + backoffMs >= deadline) throw err;
            span.addEvent('retry', { 'strata.error.code': err.code, 'strata.backoff_ms': Math.round(backoffMs) });
            await sleep(backoffMs);
          }
        }
      } catch (err) {
        recordError(span, err);
        throw err;
      } finally {
        span.end();
      }
    });
  }

  private async requestOnce<S extends z.ZodType>(subject: string, body: Uint8Array, replySchema: S, timeoutMs: number): Promise<z.output<S>> {
    const h = natsHeaders();
    h.set(TIMEOUT_HEADER, String(timeoutMs));
    injectTraceContext(h);
    let reply: Msg;
    try {
      reply = await this.nc.request(subject, body, { timeout: timeoutMs, headers: h });
    } catch (err) {
      throw transportError(err, subject, timeoutMs);
    }
    const envelope = decode(reply.data, replyEnvelope);
    if ('error' in envelope) {
      const { code, message, hint } = envelope.error;
      throw new StrataError(isErrorCode(code) ? code : ErrorCode.INTERNAL, message, hint === undefined ? {} : { hint });
    }
    try {
      return validate(envelope.ok, replySchema);
    } catch (err) {
      // The responder broke the protocol: that is its bug, reported as such.
      throw new StrataError(ErrorCode.INTERNAL, `malformed reply on ${subject}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Serves requests on `subject`: each is decoded and validated against
   * `requestSchema` (INVALID reply if it does not fit), handed to `handler`, and the
   * result or the thrown StrataError is sent back. Other exceptions become INTERNAL.
   */
  async serve<S extends z.ZodType, Rep>(subject: string, requestSchema: S, handler: Handler<z.output<S>, Rep>, options: ServeOptions = {}): Promise<Service> {
    const maxInFlight = options.maxInFlight ?? 256;
    let inFlight = 0;
    const sub: Subscription = this.nc.subscribe(subject, {
      ...(options.queue === undefined ? {} : { queue: options.queue }),
      callback: (err, msg) => {
        if (err !== null) {
          this.log?.error({ err, subject }, 'subscription failed');
          return;
        }
        if (msg.reply === undefined || msg.reply === '') {
          this.log?.warn({ subject: msg.subject }, 'dropped a request with no reply subject');
          return;
        }
        if (inFlight >= maxInFlight) {
          this.respond(msg, { error: errorBody(new StrataError(ErrorCode.QUEUE_FULL, `${subject}: ${maxInFlight} requests already in flight`)) });
          return;
        }
        inFlight++;
        void this.handle(msg, requestSchema, handler).finally(() => inFlight--);
      },
    });
    // Once flushed, our server has the subscription; in a cluster other servers learn
    // of it shortly after, and requesters retry UNAVAILABLE until then.
    await this.nc.flush();
    return {
      subject,
      stop: async () => {
        if (!sub.isClosed()) await sub.drain();
      },
    };
  }

  private async handle<S extends z.ZodType, Rep>(msg: Msg, schema: S, handler: Handler<z.output<S>, Rep>): Promise<void> {
    const budget = Number(msg.headers?.get(TIMEOUT_HEADER) ?? '');
    const budgetMs = Number.isFinite(budget) && budget > 0 ? budget : DEFAULT_TIMEOUT_MS;
    const deadline = performance.now() + budgetMs;
    const parent = extractTraceContext(msg.headers);
    await context.with(parent, () =>
      tracer.startActiveSpan(`handle ${msg.subject}`, { kind: SpanKind.SERVER, attributes: { 'messaging.destination.name': msg.subject } }, async (span) => {
        try {
          const request = decode(msg.data, schema);
          const ctx: RequestContext = {
            subject: msg.subject,
            deadline,
            remainingMs: () => Math.max(0, deadline - performance.now()),
            headers: msg.headers,
          };
          const result = await handler(request, ctx);
          this.respond(msg, { ok: result ?? null });
        } catch (err) {
          if (err instanceof NoReply) {
            span.setAttribute('strata.no_reply', err.message);
            return;
          }
          recordError(span, err);
          if (!(err instanceof StrataError)) this.log?.warn({ err, subject: msg.subject }, 'handler failed');
          this.respond(msg, { error: errorBody(err) });
        } finally {
          span.end();
        }
      }),
    );
  }

  private respond(msg: Msg, envelope: unknown): void {
    const h = natsHeaders();
    injectTraceContext(h);
    try {
      msg.respond(encode(envelope), { headers: h });
    } catch (err) {
      // The connection is closing or the requester is gone; nobody is left to tell.
      this.log?.warn({ err, subject: msg.subject }, 'could not send a reply');
    }
  }

  /** Fire-and-forget publish of a CBOR message, with trace context. */
  publish(subject: string, message: unknown): void {
    const h = natsHeaders();
    injectTraceContext(h);
    this.nc.publish(subject, encode(message), { headers: h });
  }

  /** Subscribes to messages on `subject`, validating each against `schema`; bad ones are logged and dropped. */
  subscribe<S extends z.ZodType>(subject: string, schema: S, onMessage: (message: z.output<S>, subject: string) => void): Service {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          onMessage(decode(msg.data, schema), msg.subject);
        } catch (e) {
          this.log?.warn({ err: e, subject: msg.subject }, 'dropped a malformed message');
        }
      },
    });
    return { subject, stop: async () => (sub.isClosed() ? undefined : sub.drain()) };
  }

  /** Sends raw bytes as a request: only for tests of malformed input. */
  async requestRaw(subject: string, data: Uint8Array, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<unknown> {
    try {
      const reply = await this.nc.request(subject, data, { timeout: timeoutMs });
      return decodeUntyped(reply.data);
    } catch (err) {
      if (err instanceof StrataError) throw err;
      throw transportError(err, subject, timeoutMs);
    }
  }

  /** Waits for in-flight work, then closes the connection. */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }
}

/** Failures of the NATS client itself: the bus or JetStream is unreachable or slow. */
const transportErrorNames = new Set(['TimeoutError', 'RequestError', 'NoRespondersError', 'ConnectionError', 'ClosedConnectionError', 'DrainingConnectionError']);

function errorBody(err: unknown): { code: string; message: string; retryable: boolean; hint?: string } {
  if (err instanceof StrataError) {
    return { code: err.code, message: err.message, retryable: err.retryable, ...(err.hint === undefined ? {} : { hint: err.hint }) };
  }
  const e = err as Error | undefined;
  if (e !== undefined && transportErrorNames.has(e.name)) {
    return { code: ErrorCode.UNAVAILABLE, message: `the cluster's messaging is unavailable: ${e.message}`, retryable: true };
  }
  return { code: ErrorCode.INTERNAL, message: `internal error: ${e?.message ?? String(err)}`, retryable: false };
}

function recordError(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof StrataError ? err.toString() : String(err) });
  if (err instanceof StrataError) span.setAttribute('strata.error.code', err.code);
}
