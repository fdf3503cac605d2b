// Test helpers: in-process tracing that keeps finished spans in memory, and a reader
// for the span files that STRATA_TRACE_FILE makes processes write.
import { readFile } from 'node:fs/promises';
import { ProxyTracerProvider, context, createContextKey, propagation, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, type BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
// The sdk-node "node" namespace is marked deprecated in favour of @opentelemetry/sdk-trace,
// but only sdk-trace-node's NodeTracerProvider registers the AsyncLocalStorage context
// manager, and @opentelemetry/context-async-hooks is not a dependency of this package.
import { node } from '@opentelemetry/sdk-node';
import { fromExportTraceRequest, type OtlpLinkRecord, type OtlpSpanRecord, type OtlpValue } from '../otlp-json';

export type { OtlpLinkRecord, OtlpSpanRecord, OtlpValue };

export interface InMemoryTracing {
  /** Finished spans, in the order they ended: exporter.getFinishedSpans(). */
  readonly exporter: InMemorySpanExporter;
  readonly provider: BasicTracerProvider;
  /** Forgets the spans finished so far; call between tests. */
  reset(): void;
  /** Shuts the provider down and unregisters the globals, so another install can follow. */
  shutdown(): Promise<void>;
}

const probeKey = createContextKey('strata.tracing.testing.probe');

/**
 * Registers, globally, a tracer provider that exports every span synchronously into
 * memory, with the AsyncLocalStorage context manager (context.active() follows awaits)
 * and the W3C propagator.
 *
 * Install once per test file (beforeAll) and reset() between tests: a tracer taken
 * from the API at module load binds to the first provider that serves it, so a second
 * provider would not see that module's spans.
 */
export function installInMemoryTracing(): InMemoryTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new node.NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'strata-test' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  provider.register();
  // register() ignores a refusal by the API (another provider or context manager was
  // there first); check, because a test would otherwise pass on no-op spans.
  const global = trace.getTracerProvider();
  const ours = global instanceof ProxyTracerProvider && global.getDelegate() === provider;
  const contextWorks = context.with(context.active().setValue(probeKey, true), () => context.active().getValue(probeKey)) === true;
  if (!ours || !contextWorks) {
    void provider.shutdown();
    throw new Error('installInMemoryTracing: a tracer provider or context manager is already registered; shut the previous one down first');
  }
  return {
    exporter,
    provider,
    reset: () => exporter.reset(),
    shutdown: async () => {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/**
 * Reads a span file (OTLP/JSON lines, as FileSpanExporter or a collector's file
 * exporter writes them) into a flat list, in file order. Throws on a line that is not
 * valid JSON or not shaped like an ExportTraceServiceRequest, naming the line.
 */
export async function readSpanFile(path: string): Promise<OtlpSpanRecord[]> {
  const text = await readFile(path, 'utf8');
  const records: OtlpSpanRecord[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    const where = `${path}:${index + 1}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    records.push(...fromExportTraceRequest(parsed, where));
  });
  return records;
}

/** Spans read back, indexed as the trees they form: parents, children, descendants. */
export interface SpanForest {
  readonly spans: readonly OtlpSpanRecord[];
  /** The spans of one trace, in file order. */
  trace(traceId: string): OtlpSpanRecord[];
  /** The span's parent, when the parent is among the spans. */
  parentOf(span: OtlpSpanRecord): OtlpSpanRecord | undefined;
  childrenOf(span: OtlpSpanRecord): OtlpSpanRecord[];
  /** The span's parent, its parent, and so on, as far as the spans go. */
  ancestorsOf(span: OtlpSpanRecord): OtlpSpanRecord[];
  /** Every span below `span`, depth first. */
  descendantsOf(span: OtlpSpanRecord): OtlpSpanRecord[];
  /** The tree under `root` as indented lines (name, service, attributes): for failure messages. */
  describe(root: OtlpSpanRecord): string;
}

/** Indexes `spans` (e.g. from readSpanFile) by trace and parent. Span ids are keyed within their trace. */
export function spanForest(spans: readonly OtlpSpanRecord[]): SpanForest {
  const key = (traceId: string, spanId: string): string => `${traceId}/${spanId}`;
  const byKey = new Map<string, OtlpSpanRecord>();
  const children = new Map<string, OtlpSpanRecord[]>();
  const byTrace = new Map<string, OtlpSpanRecord[]>();
  for (const span of spans) {
    byKey.set(key(span.traceId, span.spanId), span);
    byTrace.set(span.traceId, [...(byTrace.get(span.traceId) ?? []), span]);
    if (span.parentSpanId !== undefined) {
      const parentKey = key(span.traceId, span.parentSpanId);
      children.set(parentKey, [...(children.get(parentKey) ?? []), span]);
    }
  }
  const parentOf = (span: OtlpSpanRecord): OtlpSpanRecord | undefined => (span.parentSpanId === undefined ? undefined : byKey.get(key(span.traceId, span.parentSpanId)));
  const childrenOf = (span: OtlpSpanRecord): OtlpSpanRecord[] => children.get(key(span.traceId, span.spanId)) ?? [];
  const descendantsOf = (span: OtlpSpanRecord): OtlpSpanRecord[] => childrenOf(span).flatMap((c) => [c, ...descendantsOf(c)]);
  const describe = (root: OtlpSpanRecord, depth = 0): string =>
    [`${'  '.repeat(depth)}${root.name} [${root.serviceName ?? '?'}] ${JSON.stringify(root.attributes)}`, ...childrenOf(root).map((c) => describe(c, depth + 1))].join('\n');
  return {
    spans,
    trace: (traceId) => byTrace.get(traceId) ?? [],
    parentOf,
    childrenOf,
    ancestorsOf: (span) => {
      const out: OtlpSpanRecord[] = [];
      // A cycle is impossible in a well-formed file; the bound keeps a broken one from hanging a test.
      for (let p = parentOf(span); p !== undefined && out.length <= spans.length; p = parentOf(p)) out.push(p);
      return out;
    },
    descendantsOf,
    describe: (root) => describe(root),
  };
}
