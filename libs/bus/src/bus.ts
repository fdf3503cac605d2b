// The message bus every actor speaks: CBOR request/reply over NATS with a deadline
// on every request, typed error replies with stable codes, and W3C trace context in
// the headers of every message. See proto/PROTOCOL.md for the wire rules.
//
// A request to a subject that this same Bus serves (actors colocated in one process)
// is dispatched in-process: the same request and headers go through the same
// handling code as a NATS message, validated against the same schemas, and the same
// reply envelope comes back through the same validation, so messages, errors,
// deadlines, QUEUE_FULL and spans are identical. Only the network hop and the CBOR
// encoding are gone: the request and reply objects are handed over as they are, so
// neither side may change an object after handing it over.
import { performance } from 'node:perf_hooks';
import { connect, headers as natsHeaders, type ConnectionOptions, type MsgHdrs, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { z } from 'zod';
import { decode, decodeUntyped, encode, validate } from '@strata/codec';
import { ErrorCode, StrataError, isErrorCode } from '@strata/errors';
import { clientSecurityFromEnv, securityOptions, type ClientSecurity } from '@strata/natsd';
import { SpanKind, SpanStatusCode, context, extractTraceContext, injectTraceContext, trace, withSpan, type Context, type Span } from '@strata/tracing';
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
  /**
   * Dispatch requests to subjects this Bus serves in-process instead of over NATS
   * (default true). Off, every request goes through the server, as between processes.
   */
  localDispatch?: boolean;
  /** Credentials and the servers' CA; default: from the environment (STRATA_NATS_USER, STRATA_NATS_PASSWORD, STRATA_NATS_CA). */
  security?: ClientSecurity;
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
  /**
   * Called before every attempt, the first included; what it throws ends the request
   * with that error. For a request that may be sent only while a condition holds (the
   * gateway's check of a VM's power-on lease before each attempt of its I/O).
   */
  beforeAttempt?: () => void;
}

export interface RequestContext {
  subject: string;
  /** performance.now() value after which the requester has stopped waiting. */
  deadline: number;
  remainingMs(): number;
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

/**
 * The credentials and TLS settings of this process's environment as nats.js options,
 * for a connection made beside the bus's own (the oplog link to a stream leader).
 */
export function envSecurityOptions(): Partial<ConnectionOptions> {
  return securityOptions(clientSecurityFromEnv(process.env));
}

export type { ClientSecurity };

/** How long one attempt to connect to one server may take before the next server is tried. */
export const CONNECT_ATTEMPT_TIMEOUT_MS = 2_000;

export async function connectBus(options: BusOptions): Promise<Bus> {
  const nc = await connect({
    servers: parseServers(options.servers),
    name: options.name,
    ...securityOptions(options.security ?? clientSecurityFromEnv(process.env)),
    // A storage controller never gives up on its bus: it reconnects forever, and
    // the lease logic decides when it must stop acting.
    maxReconnectAttempts: -1,
    // The list is an order of preference (a node's own server first), not a pool to
    // shuffle: actors of one node then meet on one server.
    noRandomize: true,
    reconnectTimeWait: 250,
    // Each attempt to connect to one server is given up after 2 s (nats.js waits 20 s
    // by default). A server restarted in place accepts the TCP connection at once but
    // may not finish the handshake for a while: without this bound, every client that
    // was on it sat on that one attempt for 20 s instead of trying the next server
    // (a rolling restart in test/e2e/scale.test.ts paused the client's I/O 23 s at
    // the first server; 3 to 6 s with the bound).
    timeout: CONNECT_ATTEMPT_TIMEOUT_MS,
    // A server that stops answering (a paused or hung process keeps its sockets open)
    // is given up after two unanswered pings, about 4-6 s, and the client moves to
    // another server of the cluster instead of waiting out the hang.
    pingInterval: 2_000,
    maxPingOut: 2,
    // Otherwise nats.js builds Error objects for every request up front, only to give a
    // later timeout the caller's stack: 9% of a colocated node's busy time in a CPU
    // profile of 4 KiB QD1 writes (half of that remains: nats.js also builds one when
    // a request completes). Our errors name the subject instead.
    noAsyncTraces: true,
  });
  return new Bus(nc, options.log, { localDispatch: options.localDispatch ?? true });
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
  if (/timeout/i.test(text)) return timeoutError(subject, timeoutMs, err);
  return new StrataError(ErrorCode.UNAVAILABLE, `request on ${subject} failed: ${e.message}`, { cause: err });
}

/** The TIMEOUT a requester gets when no reply came within its budget. */
function timeoutError(subject: string, timeoutMs: number, cause?: unknown): StrataError {
  return new StrataError(ErrorCode.TIMEOUT, `no reply on ${subject} within ${timeoutMs} ms`, cause === undefined ? {} : { cause });
}

/** A subject is served in-process only when it names one subject, not a pattern. */
function isExactSubject(subject: string): boolean {
  return !subject.split('.').some((token) => token === '*' || token === '>');
}

/**
 * One request as it reaches a service: CBOR bytes from NATS, or the request object
 * itself from a requester in this process. `respond` sends the reply envelope (encoded
 * for NATS, as it is in-process); it is called at most once, inside the handler's span.
 */
interface Inbound {
  subject: string;
  payload: { bytes: Uint8Array } | { value: unknown };
  /** How long the requester waits, ms (from the timeout header over NATS). */
  budgetMs: number;
  /** The requester's trace context (from the message headers over NATS). */
  parent: Context;
  local: boolean;
  respond(envelope: ReplyEnvelope): void;
}

type ReplyEnvelope = { ok: unknown } | { error: ReturnType<typeof errorBody> };

/** How the handling of one request ended: answered (or the answer failed to send), or the handler chose not to answer. */
type Handled = 'answered' | 'no-reply';

/**
 * A served subject: its in-flight bound and the handling both transports share. The
 * count covers NATS and in-process requests together, so maxInFlight means the same
 * whichever way requests arrive.
 */
interface Endpoint {
  readonly subject: string;
  /** Admits one request (QUEUE_FULL beyond maxInFlight) and handles it. */
  accept(inbound: Inbound): Promise<Handled>;
}

export class Bus {
  readonly nc: NatsConnection;
  private readonly log: BusLogger | undefined;
  private readonly localDispatch: boolean;
  /** Exact subjects this Bus serves, for in-process dispatch; several endpoints take turns. */
  private readonly local = new Map<string, Endpoint[]>();

  constructor(nc: NatsConnection, log?: BusLogger, options: Pick<BusOptions, 'localDispatch'> = {}) {
    this.nc = nc;
    this.log = log;
    this.localDispatch = options.localDispatch ?? true;
  }

  /**
   * Sends `request` to `subject` and returns the validated result, or throws the
   * StrataError the responder sent (or UNAVAILABLE / TIMEOUT from the transport).
   */
  async request<S extends z.ZodType>(subject: string, request: unknown, replySchema: S, options: RequestOptions = {}): Promise<z.output<S>> {
    const budgetMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = performance.now() + budgetMs;
    // Encoded once, on the first attempt that goes over NATS.
    let body: Uint8Array | undefined;
    const encoded = (): Uint8Array => (body ??= encode(request));
    // startSpan and withSpan rather than startActiveSpan: with tracing off, the span is
    // a no-op and no context is allocated for it (one request per hop of every I/O).
    const span = tracer.startSpan(`request ${subject}`, { kind: SpanKind.CLIENT, attributes: { 'messaging.destination.name': subject } });
    return withSpan(span, async () => {
      try {
        for (let attempt = 0; ; attempt++) {
          const remainingMs = Math.floor(deadline - performance.now());
          if (remainingMs <= 0) throw new StrataError(ErrorCode.TIMEOUT, `no reply on ${subject} within ${budgetMs} ms`);
          const attemptMs = Math.min(remainingMs, options.attemptTimeoutMs ?? remainingMs);
          options.beforeAttempt?.();
          try {
            const result = await this.requestOnce(subject, request, encoded, replySchema, attemptMs, span);
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

  private async requestOnce<S extends z.ZodType>(subject: string, request: unknown, encoded: () => Uint8Array, replySchema: S, timeoutMs: number, span: Span): Promise<z.output<S>> {
    const startedAt = performance.now();
    let budgetMs = timeoutMs;
    const endpoint = this.localDispatch ? this.localEndpoint(subject) : undefined;
    if (endpoint !== undefined) {
      span.setAttribute('strata.local', true);
      // The envelope was built in this process by reply() below: its shape needs no check.
      const local = await this.dispatchLocally(endpoint, subject, request, timeoutMs);
      if (local !== undefined) return this.unwrap(local, subject, replySchema);
      // The local handler chose not to answer (a replica that no longer leads):
      // another responder may, so the request goes out over NATS with what is left.
      span.addEvent('local no-reply; requesting over NATS');
      budgetMs = Math.floor(timeoutMs - (performance.now() - startedAt));
      if (budgetMs <= 0) throw timeoutError(subject, timeoutMs);
    }
    const h = natsHeaders();
    h.set(TIMEOUT_HEADER, String(budgetMs));
    injectTraceContext(h);
    const reply = decodeUntyped(await this.natsRequest(subject, encoded(), h, budgetMs));
    return this.unwrap(validate(reply, replyEnvelope), subject, replySchema);
  }

  /** The result in a reply envelope, or the error it carries, thrown. */
  private unwrap<S extends z.ZodType>(envelope: ReplyEnvelope, subject: string, replySchema: S): z.output<S> {
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

  private async natsRequest(subject: string, body: Uint8Array, h: MsgHdrs, timeoutMs: number): Promise<Uint8Array> {
    try {
      return (await this.nc.request(subject, body, { timeout: timeoutMs, headers: h })).data;
    } catch (err) {
      throw transportError(err, subject, timeoutMs);
    }
  }

  /** The endpoint that takes the next in-process request on `subject`, if this Bus serves it. */
  private localEndpoint(subject: string): Endpoint | undefined {
    const endpoints = this.local.get(subject);
    if (endpoints === undefined) return undefined;
    const first = endpoints[0];
    // Several services on one subject (a queue group with two members here) take turns.
    if (endpoints.length > 1 && first !== undefined) endpoints.push(endpoints.shift()!);
    return first;
  }

  /**
   * Hands the request to an endpoint of this process. Resolves with the reply envelope,
   * or undefined when the handler chose not to answer; rejects with TIMEOUT when no
   * reply came within `timeoutMs`, as nc.request() would. A handler that outlives the
   * deadline runs on, as it does for a requester over NATS that gave up.
   */
  private dispatchLocally(endpoint: Endpoint, subject: string, request: unknown, timeoutMs: number): Promise<ReplyEnvelope | undefined> {
    return new Promise<ReplyEnvelope | undefined>((resolve, reject) => {
      let settled = false;
      const settle = (reply: ReplyEnvelope | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(reply);
      };
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(timeoutError(subject, timeoutMs));
      }, timeoutMs);
      endpoint
        .accept({ subject, payload: { value: request }, budgetMs: timeoutMs, parent: context.active(), local: true, respond: settle })
        .then((handled) => {
          // An answer that could not be encoded never arrives: the requester times
          // out, as it would over NATS.
          if (handled === 'no-reply') settle(undefined);
        })
        .catch((err: unknown) => this.log?.error({ err, subject }, 'local dispatch failed'));
    });
  }

  /**
   * Serves requests on `subject`: each is decoded and validated against
   * `requestSchema` (INVALID reply if it does not fit), handed to `handler`, and the
   * result or the thrown StrataError is sent back. Other exceptions become INTERNAL.
   */
  async serve<S extends z.ZodType, Rep>(subject: string, requestSchema: S, handler: Handler<z.output<S>, Rep>, options: ServeOptions = {}): Promise<Service> {
    const maxInFlight = options.maxInFlight ?? 256;
    let inFlight = 0;
    const endpoint: Endpoint = {
      subject,
      accept: async (inbound) => {
        if (inFlight >= maxInFlight) {
          this.reply(inbound, { error: errorBody(new StrataError(ErrorCode.QUEUE_FULL, `${subject}: ${maxInFlight} requests already in flight`)) });
          return 'answered';
        }
        inFlight++;
        try {
          return await this.handle(inbound, requestSchema, handler);
        } finally {
          inFlight--;
        }
      },
    };
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
        const budget = Number(msg.headers?.get(TIMEOUT_HEADER) ?? '');
        void endpoint.accept({
          subject: msg.subject,
          payload: { bytes: msg.data },
          budgetMs: Number.isFinite(budget) && budget > 0 ? budget : DEFAULT_TIMEOUT_MS,
          parent: extractTraceContext(msg.headers),
          local: false,
          respond: (envelope) => this.respondNats(msg, envelope),
        });
      },
    });
    // The NATS subscription stays even for a subject served in-process: requesters in
    // other processes reach the service through it.
    const local = isExactSubject(subject);
    if (local) this.local.set(subject, [...(this.local.get(subject) ?? []), endpoint]);
    // Once flushed, our server has the subscription; in a cluster other servers learn
    // of it shortly after, and requesters retry UNAVAILABLE until then.
    await this.nc.flush();
    return {
      subject,
      stop: async () => {
        if (local) this.forgetLocal(endpoint);
        if (!sub.isClosed()) await sub.drain();
      },
    };
  }

  private forgetLocal(endpoint: Endpoint): void {
    const rest = (this.local.get(endpoint.subject) ?? []).filter((e) => e !== endpoint);
    if (rest.length === 0) this.local.delete(endpoint.subject);
    else this.local.set(endpoint.subject, rest);
  }

  /**
   * Handles one admitted request, whichever way it came: decode and validate, run the
   * handler inside a SERVER span that continues the requester's trace, and send the
   * reply envelope (nothing for NoReply).
   */
  private async handle<S extends z.ZodType, Rep>(inbound: Inbound, schema: S, handler: Handler<z.output<S>, Rep>): Promise<Handled> {
    const deadline = performance.now() + inbound.budgetMs;
    const parent = inbound.parent;
    const attributes = inbound.local ? { 'messaging.destination.name': inbound.subject, 'strata.local': true } : { 'messaging.destination.name': inbound.subject };
    const span = tracer.startSpan(`handle ${inbound.subject}`, { kind: SpanKind.SERVER, attributes }, parent);
    return withSpan(
      span,
      async (): Promise<Handled> => {
        try {
          const request = 'bytes' in inbound.payload ? decode(inbound.payload.bytes, schema) : validate(inbound.payload.value, schema);
          const ctx: RequestContext = {
            subject: inbound.subject,
            deadline,
            remainingMs: () => Math.max(0, deadline - performance.now()),
          };
          const result = await handler(request, ctx);
          this.reply(inbound, { ok: result ?? null });
          return 'answered';
        } catch (err) {
          if (err instanceof NoReply) {
            span.setAttribute('strata.no_reply', err.message);
            return 'no-reply';
          }
          recordError(span, err);
          if (!(err instanceof StrataError)) this.log?.warn({ err, subject: inbound.subject }, 'handler failed');
          this.reply(inbound, { error: errorBody(err) });
          return 'answered';
        } finally {
          span.end();
        }
      },
      parent,
    );
  }

  /** Sends the envelope back the way the request came. */
  private reply(inbound: Inbound, envelope: ReplyEnvelope): void {
    try {
      inbound.respond(envelope);
    } catch (err) {
      // The connection is closing, the requester is gone, or the result cannot be
      // encoded; nobody is left to tell.
      this.log?.warn({ err, subject: inbound.subject }, 'could not send a reply');
    }
  }

  private respondNats(msg: Msg, envelope: ReplyEnvelope): void {
    const h = natsHeaders();
    injectTraceContext(h);
    msg.respond(encode(envelope), { headers: h });
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
    // From here on every request goes to NATS, which refuses it once closed.
    this.local.clear();
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
