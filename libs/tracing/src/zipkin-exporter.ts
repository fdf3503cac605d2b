// Spans to a Zipkin server (its v2 JSON API, e.g. http://127.0.0.1:9411/api/v2/spans):
// OpenTelemetry's Zipkin exporter, with span links kept. Zipkin's model has no links,
// so each becomes a tag `link.<n>` = `<trace id>/<span id>`: a drain (in the trace of
// the oldest write it stored) then still names every write it stored, and a reader can
// go from one to the other.
//
// Zipkin names a span's service after its process (the resource's service.name),
// unless the span itself carries a `service.name`. A colocated node (`node-host`: a
// node's actors in one process, sharing one bus) would then show one service for the
// gateway, io-director, admission, controller, extent store and metadata shard alike:
// each of its spans is named after the actor it belongs to instead (colocatedActorOf),
// and the process stays in the tags (process.pid, service.instance.id).
import type { ExportResult } from '@opentelemetry/core';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/** The process name of a colocated node's actors (services/node-host). */
export const COLOCATED_HOST = 'node-host';

/** Who serves a subject (strata.<space>.…), and, in a colocated node, who requests it. */
const subjectSpaces: Record<string, { server: string; requester?: string }> = {
  io: { server: 'io-director', requester: 'gateway' },
  adm: { server: 'admission', requester: 'io-director' },
  vdc: { server: 'vdisk-controller', requester: 'admission' },
  estore: { server: 'extent-store', requester: 'vdisk-controller' },
  md: { server: 'metadata-shard', requester: 'vdisk-controller' },
};

/**
 * The actor of a colocated node that `span` belongs to, or undefined (a span of the
 * host itself, or one it cannot tell: a config request may come from any actor).
 * An actor's own spans say it in their tracer's name (`@strata/admission`); the bus's
 * spans by their subject: a handler span is the serving actor's, a request span the
 * actor that asks that subject on a node (the gateway asks strata.io, the io-director
 * strata.adm, admission strata.vdc, the controller the extent stores and shards).
 */
export function colocatedActorOf(span: ReadableSpan): string | undefined {
  const scope = span.instrumentationScope.name;
  if (scope !== '@strata/bus') return scope.startsWith('@strata/') ? scope.slice('@strata/'.length) : undefined;
  const match = /^(handle|request) strata\.([a-z]+)\./.exec(span.name);
  const space = match === null ? undefined : subjectSpaces[match[2]!];
  if (space === undefined) return undefined;
  return match![1] === 'handle' ? space.server : space.requester;
}

/** `span` as Zipkin is sent it: a `link.<n>` attribute per link, and in a colocated node its actor as `service.name` (the span itself when neither applies). */
export function forZipkin(span: ReadableSpan): ReadableSpan {
  const actor = span.resource.attributes['service.name'] === COLOCATED_HOST ? colocatedActorOf(span) : undefined;
  if (span.links.length === 0 && actor === undefined) return span;
  const attributes = { ...span.attributes };
  span.links.forEach((link, i) => {
    attributes[`link.${i}`] = `${link.context.traceId}/${link.context.spanId}`;
  });
  if (actor !== undefined) attributes['service.name'] = actor;
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
    this.inner.export(spans.map(forZipkin), resultCallback);
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
}
