// The OpenTelemetry SDK itself, loaded only when spans go somewhere (sdk.ts decides):
// span processors for the chosen exporters, the resource, and the NodeSDK.
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  NoopSpanProcessor,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  processDetector,
  resourceFromAttributes,
  type Resource,
} from '@opentelemetry/resources';
import { FileSpanExporter } from './file-exporter';
import { ZipkinLinksExporter } from './zipkin-exporter';
import type { TraceExportConfig, TraceExporterName, TracingOptions } from './sdk';

export interface TracingSdk {
  exporters: TraceExporterName[];
  /** Flushes every processor, then stops the SDK; rejects when an exporter failed to flush. */
  stop(): Promise<void>;
}

function processorsFor(config: TraceExportConfig): { processors: SpanProcessor[]; exporters: TraceExporterName[] } {
  const processors: SpanProcessor[] = [];
  const exporters: TraceExporterName[] = [];
  // First, because opening the file is what most likely fails.
  if (config.filePath !== undefined) {
    // Simple, not batched: each span is written as it ends, so spans of a process that
    // is killed (the fault tests do that) are still in the file.
    processors.push(new SimpleSpanProcessor(new FileSpanExporter(config.filePath)));
    exporters.push('file');
  }
  if (config.otlp) {
    // Endpoint, headers, timeout and compression come from OTEL_EXPORTER_OTLP_*; batch
    // sizes and delay from OTEL_BSP_*.
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
    exporters.push('otlp');
  }
  if (config.zipkin) {
    // The endpoint comes from OTEL_EXPORTER_ZIPKIN_ENDPOINT; batch sizes and delay from OTEL_BSP_*.
    processors.push(new BatchSpanProcessor(new ZipkinLinksExporter()));
    exporters.push('zipkin');
  }
  if (config.console) {
    processors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
    exporters.push('console');
  }
  // STRATA_TRACE_IDS=true with no exporter: real ids, nothing exported.
  if (processors.length === 0) processors.push(new NoopSpanProcessor());
  return { processors, exporters };
}

// Detection runs here rather than inside the NodeSDK so that the host id (read
// asynchronously from /etc/machine-id) has settled before the first span ends; the
// span file is then written synchronously from the very first span.
async function buildResource(options: TracingOptions): Promise<Resource> {
  const own = resourceFromAttributes({
    ...options.attributes,
    ...(options.serviceInstanceId === undefined ? {} : { 'service.instance.id': options.serviceInstanceId }),
  });
  // envDetector last among the detectors, so OTEL_RESOURCE_ATTRIBUTES overrides ours.
  const detected = detectResources({ detectors: [hostDetector, processDetector, envDetector] });
  const resource = defaultResource().merge(own).merge(detected).merge(resourceFromAttributes({ 'service.name': options.serviceName }));
  await resource.waitForAsyncAttributes?.();
  return resource;
}

export async function startSdk(options: TracingOptions, config: TraceExportConfig): Promise<TracingSdk> {
  const { processors, exporters } = processorsFor(config);
  const sdk = new NodeSDK({
    serviceName: options.serviceName,
    resource: await buildResource(options),
    autoDetectResources: false,
    instrumentations: [],
    spanProcessors: processors,
    // Empty lists, not absent ones: absent, the NodeSDK reads OTEL_METRICS_EXPORTER and
    // OTEL_LOGS_EXPORTER, and when those are unset it defaults both to OTLP on
    // localhost:4318. Strata's metrics are prom-client (@strata/metrics) and its logs
    // are pino on stderr (@strata/log); nothing writes to the OTel metrics or logs API.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  const stop = async (): Promise<void> => {
    // SimpleSpanProcessor.shutdown() does not wait for exports in flight, and the
    // NodeSDK's shutdown does not flush first; flush explicitly so nothing is dropped.
    const flushed = await Promise.allSettled(processors.map((p) => p.forceFlush()));
    await sdk.shutdown();
    // A failed export otherwise only reaches the OTel diag logger, which is silent
    // unless OTEL_LOG_LEVEL is set; the caller should be able to log it.
    const failures = flushed.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (failures.length > 0) {
      throw new Error(`tracing shutdown: ${failures.length} span exporter(s) failed to flush: ${failures.map(reasonText).join('; ')}`, {
        cause: failures[0],
      });
    }
  };
  return { exporters, stop };
}

function reasonText(reason: unknown): string {
  // BatchSpanProcessor rejects with the export result's error; be lenient about its shape.
  if (reason instanceof Error) return reason.message;
  if (Array.isArray(reason)) return reason.map(reasonText).join(', ');
  return String(reason);
}
