// Tracing for every Strata actor: W3C context in message headers, spans through the
// OpenTelemetry API, and the SDK set up from the usual OTEL_* variables.
export { injectTraceContext, extractTraceContext, activeTraceId, type HeaderCarrier } from './propagation';
export {
  trace,
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type Span,
  type SpanContext,
  type Link,
  type Context,
  type Tracer,
} from '@opentelemetry/api';
export { SpanAttr, SPAN_LINKS_MAX, contextWithSpan, recordingSpan, withSpan, inSpan, recordSpanError } from './spans';
export {
  startTracing,
  traceExportConfigFromEnv,
  type TracingHandle,
  type TracingOptions,
  type TraceExportConfig,
  type TraceExporterName,
} from './sdk';
export { FileSpanExporter } from './file-exporter';
