// W3C trace context over message headers. NATS has no OpenTelemetry
// instrumentation, so every message Strata sends carries `traceparent` (and
// `tracestate`) in its NATS headers, set here, and every handler starts its span
// from the context read here. The header object is typed structurally so this
// module does not depend on the NATS client.
import { context, propagation, trace, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

/** The subset of NATS MsgHdrs the propagator needs. */
export interface HeaderCarrier {
  get(key: string): string;
  set(key: string, value: string): void;
  has(key: string): boolean;
  keys(): string[];
}

const setter: TextMapSetter<HeaderCarrier> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const getter: TextMapGetter<HeaderCarrier> = {
  keys: (carrier) => carrier.keys(),
  get: (carrier, key) => (carrier.has(key) ? carrier.get(key) : undefined),
};

// W3C trace context is the protocol (proto/PROTOCOL.md), whatever OTEL_PROPAGATORS
// says, so this module uses its own propagator rather than the global one.
const w3c = new W3CTraceContextPropagator();

/** Writes the trace context of `ctx` (default: the active one) into `headers`. */
export function injectTraceContext(headers: HeaderCarrier, ctx: Context = context.active()): void {
  w3c.inject(ctx, headers, setter);
}

/** Reads the trace context from `headers` (if any) on top of the root context. */
export function extractTraceContext(headers: HeaderCarrier | undefined): Context {
  if (headers === undefined) return context.active();
  return w3c.extract(context.active(), headers, getter);
}

/** The trace id of the active span, for log lines; undefined outside a span. */
export function activeTraceId(): string | undefined {
  const span = trace.getSpan(context.active());
  const id = span?.spanContext().traceId;
  return id === undefined || /^0+$/.test(id) ? undefined : id;
}

// Keep `propagation` importable from one place for code that wants the global API.
export { propagation };
