// Starts the OpenTelemetry SDK once per process: the AsyncLocalStorage context manager,
// a tracer provider, and exporters chosen from the environment (OTLP, console, span file).
import type { TracingSdk, startSdk as StartSdk } from './sdk-start';

export interface TracingOptions {
  /** The resource's service.name, e.g. "vdisk-controller". Wins over OTEL_SERVICE_NAME. */
  serviceName: string;
  /** The resource's service.instance.id, e.g. the node id "node-2". */
  serviceInstanceId?: string;
  /** More resource attributes. OTEL_RESOURCE_ATTRIBUTES overrides them, so an operator can. */
  attributes?: Record<string, string>;
}

export type TraceExporterName = 'otlp' | 'zipkin' | 'console' | 'file';

export interface TracingHandle {
  /** Where spans go, for the start-up log line; empty means ids only, nothing exported. */
  readonly exporters: readonly TraceExporterName[];
  /**
   * Flushes every exporter and stops the SDK. Idempotent. Rejects, after stopping, if an
   * exporter failed to flush, or if flushing does not finish within SHUTDOWN_TIMEOUT_MS
   * (an unreachable collector); spans still queued are then lost. Log it; do not retry.
   */
  shutdown(): Promise<void>;
}

/** What the environment asks for; see traceExportConfigFromEnv for the rules. */
export interface TraceExportConfig {
  /** OTEL_SDK_DISABLED=true: register nothing; every span is a no-op. */
  sdkDisabled: boolean;
  otlp: boolean;
  /** Spans to a Zipkin server (OTEL_EXPORTER_ZIPKIN_ENDPOINT, http://localhost:9411/api/v2/spans by default). */
  zipkin: boolean;
  console: boolean;
  /** STRATA_TRACE_FILE: append OTLP/JSON lines to this file. */
  filePath: string | undefined;
  /** STRATA_TRACE_IDS=true: with no exporter, still make real trace ids (for logs). */
  idsOnly: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Exporters Strata ships. */
const knownExporters = ['otlp', 'zipkin', 'console', 'none'] as const;

/** Long enough for a batch to reach a live collector, short enough not to stall an exit. */
const SHUTDOWN_TIMEOUT_MS = 5000;

function nonBlank(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/**
 * Reads the exporter choice from `env` and validates it, so a typo stops the process
 * at start-up instead of silently exporting nothing. The rules:
 *
 * - OTEL_TRACES_EXPORTER, when set, decides alone: a comma list of otlp, zipkin and
 *   console, or "none".
 * - Otherwise OTLP is on exactly when OTEL_EXPORTER_OTLP_ENDPOINT or
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, and Zipkin exactly when
 *   OTEL_EXPORTER_ZIPKIN_ENDPOINT is. (The NodeSDK's own default would be OTLP
 *   to localhost:4318 always, which fails on every batch where no collector runs.)
 * - OTLP goes out as http/protobuf; another OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL is an error.
 * - STRATA_TRACE_FILE adds the file exporter, whatever the rest says.
 */
export function traceExportConfigFromEnv(env: Env): TraceExportConfig {
  const sdkDisabled = nonBlank(env.OTEL_SDK_DISABLED)?.toLowerCase() === 'true';
  const filePath = nonBlank(env.STRATA_TRACE_FILE);
  const listRaw = nonBlank(env.OTEL_TRACES_EXPORTER);
  let otlp: boolean;
  let zipkin: boolean;
  let console = false;
  if (listRaw !== undefined) {
    const names = listRaw
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== '');
    const unknown = names.filter((n) => !(knownExporters as readonly string[]).includes(n));
    if (unknown.length > 0) {
      throw new Error(`OTEL_TRACES_EXPORTER="${listRaw}": ${unknown.join(', ')} is not an exporter Strata ships; use otlp, zipkin, console or none`);
    }
    if (names.includes('none') && names.length > 1) {
      throw new Error(`OTEL_TRACES_EXPORTER="${listRaw}": "none" cannot be combined with other exporters`);
    }
    otlp = names.includes('otlp');
    zipkin = names.includes('zipkin');
    console = names.includes('console');
  } else {
    otlp = nonBlank(env.OTEL_EXPORTER_OTLP_ENDPOINT) !== undefined || nonBlank(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) !== undefined;
    zipkin = nonBlank(env.OTEL_EXPORTER_ZIPKIN_ENDPOINT) !== undefined;
  }
  if (otlp) {
    const protocol = nonBlank(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ?? nonBlank(env.OTEL_EXPORTER_OTLP_PROTOCOL);
    if (protocol !== undefined && protocol !== 'http/protobuf') {
      throw new Error(
        `OTLP protocol "${protocol}" is not supported: Strata exports traces as http/protobuf (a collector's port 4318); ` +
          'unset OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or set it to http/protobuf',
      );
    }
  }
  const idsOnly = nonBlank(env.STRATA_TRACE_IDS)?.toLowerCase() === 'true';
  return { sdkDisabled, otlp, zipkin, console, filePath, idsOnly };
}

async function start(options: TracingOptions): Promise<TracingHandle> {
  if (options.serviceName.trim() === '') throw new Error('startTracing: serviceName must not be empty');
  const config = traceExportConfigFromEnv(process.env);
  // The NodeSDK's start() is a no-op when OTEL_SDK_DISABLED is set; match it without
  // opening the span file or building exporters.
  if (config.sdkDisabled) return { exporters: [], shutdown: () => Promise.resolve() };

  const nothingToExport = config.filePath === undefined && !config.otlp && !config.zipkin && !config.console;
  if (nothingToExport && !config.idsOnly) {
    // Nothing to export to. Tracing costs real CPU on the I/O path (a span per hop and
    // the async context that carries it: about 40% of a colocated node's CPU under
    // 4 KiB random reads, measured with STRATA_CPU_PROFILE_DIR), so by default it is
    // then off: spans are no-ops and logs carry no trace ids. STRATA_TRACE_IDS=true
    // keeps real ids in logs and message headers while exporting nothing. The SDK is
    // not even loaded then: it is a fifth of an actor's start-up time.
    return { exporters: [], shutdown: () => Promise.resolve() };
  }
  // A plain require, loaded here and only here (the workspace compiles to CommonJS).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startSdk } = require('./sdk-start') as { startSdk: typeof StartSdk };
  const sdk: TracingSdk = await startSdk(options, config);
  let stopping: Promise<void> | undefined;
  return {
    exporters: sdk.exporters,
    shutdown: () => (stopping ??= withTimeout(sdk.stop(), SHUTDOWN_TIMEOUT_MS, 'tracing shutdown')),
  };
}

function withTimeout(work: Promise<void>, timeoutMs: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms; queued spans were dropped`)), timeoutMs);
    // The deadline must not be what keeps an exiting process alive.
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

let started: Promise<TracingHandle> | undefined;

/**
 * Starts tracing for this process. The OpenTelemetry API is process-global, so this
 * runs once: later calls get the first call's handle, whatever options they pass.
 */
export function startTracing(options: TracingOptions): Promise<TracingHandle> {
  started ??= start(options).catch((err: unknown) => {
    // Forget the failure, so a later call (after the environment is fixed) tries again.
    started = undefined;
    throw err;
  });
  return started;
}
