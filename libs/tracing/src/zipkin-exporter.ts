// Spans to a Zipkin server (its v2 JSON API, e.g. http://127.0.0.1:9411/api/v2/spans):
// OpenTelemetry's Zipkin exporter, with span links kept. Zipkin's model has no links,
// so each becomes a tag `link.<n>` = `<trace id>/<span id>`: a drain's trace then still
// names the writes it stored, and a reader can go from one to the other.
import type { ExportResult } from '@opentelemetry/core';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/** `span` with a `link.<n>` attribute per link (the span itself when it has none). */
export function withLinkTags(span: ReadableSpan): ReadableSpan {
  if (span.links.length === 0) return span;
  const attributes = { ...span.attributes };
  span.links.forEach((link, i) => {
    attributes[`link.${i}`] = `${link.context.traceId}/${link.context.spanId}`;
  });
  // Everything else is read through the prototype: the span object as it is.
  return Object.create(span, { attributes: { value: attributes, enumerable: true }, links: { value: [], enumerable: true } }) as ReadableSpan;
}

export class ZipkinLinksExporter implements SpanExporter {
  private readonly inner: ZipkinExporter;

  /** `url`: the server's span endpoint; undefined: OTEL_EXPORTER_ZIPKIN_ENDPOINT, else http://localhost:9411/api/v2/spans. */
  constructor(url?: string) {
    this.inner = new ZipkinExporter(url === undefined ? {} : { url });
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans.map(withLinkTags), resultCallback);
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
}
