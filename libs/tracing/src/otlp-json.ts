// The OTLP/JSON span format in one place: finished spans to an ExportTraceServiceRequest
// (what the file exporter writes, one per line) and back to flat records (what tests read).
import { SpanKind, SpanStatusCode, type HrTime, type Link } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';

// The shapes follow opentelemetry-proto's JSON mapping (opentelemetry/proto/trace/v1):
// ids are lower-case hex, 64-bit integers are decimal strings, enums are numbers.

export interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  /** A decimal string, as the proto3 JSON mapping writes int64. */
  intValue?: string;
  /** A number, or "NaN" / "Infinity" / "-Infinity", as proto3 JSON writes doubles. */
  doubleValue?: number | string;
  bytesValue?: string;
  arrayValue?: { values: OtlpAnyValue[] };
  kvlistValue?: { values: OtlpKeyValue[] };
}

export interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}

export interface OtlpSpanJson {
  traceId: string;
  spanId: string;
  traceState?: string;
  parentSpanId?: string;
  /** Trace flags in bits 0-7; bit 8 says bit 9 is meaningful; bit 9 says the parent is remote. */
  flags: number;
  name: string;
  /** OTLP numbering: 1 internal, 2 server, 3 client, 4 producer, 5 consumer (API SpanKind + 1). */
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpKeyValue[];
  droppedAttributesCount: number;
  events: { timeUnixNano: string; name: string; attributes: OtlpKeyValue[]; droppedAttributesCount: number }[];
  droppedEventsCount: number;
  links: { traceId: string; spanId: string; traceState?: string; attributes: OtlpKeyValue[]; droppedAttributesCount: number }[];
  droppedLinksCount: number;
  /** code: 0 unset, 1 ok, 2 error (the same numbers as the API's SpanStatusCode). */
  status: { code: number; message?: string };
}

export interface OtlpExportTraceRequest {
  resourceSpans: {
    resource: { attributes: OtlpKeyValue[]; droppedAttributesCount: number };
    scopeSpans: {
      scope: { name: string; version?: string };
      spans: OtlpSpanJson[];
      schemaUrl?: string;
    }[];
    schemaUrl?: string;
  }[];
}

/** The value of an attribute after decoding: what a test compares against. */
export type OtlpValue = string | number | boolean | null | OtlpValue[] | { [key: string]: OtlpValue };

/** One span read back from an OTLP/JSON file, flattened for assertions. */
export interface OtlpSpanRecord {
  traceId: string;
  spanId: string;
  /** Absent on a root span. */
  parentSpanId?: string;
  name: string;
  /** The API's SpanKind (SpanKind.SERVER is 1), not the OTLP number (which is one more). */
  kind: SpanKind;
  /** The resource's service.name; undefined if the writer left it out. */
  serviceName: string | undefined;
  attributes: Record<string, OtlpValue>;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  status: { code: SpanStatusCode; message?: string };
  /** The span's links; absent when it has none. */
  links?: OtlpLinkRecord[];
}

/** One link of a span read back: the linked span and the link's attributes. */
export interface OtlpLinkRecord {
  traceId: string;
  spanId: string;
  attributes: Record<string, OtlpValue>;
}

const NANOS_PER_SECOND = 1_000_000_000n;
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;

function hrTimeToUnixNano(time: HrTime): string {
  return (BigInt(Math.trunc(time[0])) * NANOS_PER_SECOND + BigInt(Math.trunc(time[1]))).toString();
}

function toAnyValue(value: unknown): OtlpAnyValue {
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'bigint') return { intValue: value.toString() };
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return { intValue: String(value) };
    // JSON has no NaN or Infinity; proto3 JSON spells them as strings.
    return { doubleValue: Number.isFinite(value) ? value : String(value) };
  }
  if (value instanceof Uint8Array) return { bytesValue: Buffer.from(value).toString('base64') };
  if (Array.isArray(value)) return { arrayValue: { values: value.map(toAnyValue) } };
  // Arrays of optional strings may hold null; OTLP represents "no value" as an empty AnyValue.
  if (value === null || value === undefined) return {};
  if (typeof value === 'object') return { kvlistValue: { values: toKeyValues(value as Record<string, unknown>) } };
  return { stringValue: String(value as string | number | boolean | bigint) };
}

function toKeyValues(attributes: Record<string, unknown> | undefined): OtlpKeyValue[] {
  if (attributes === undefined) return [];
  return Object.entries(attributes)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => ({ key, value: toAnyValue(value) }));
}

function toSpanJson(span: ReadableSpan): OtlpSpanJson {
  const spanContext = span.spanContext();
  const parent = span.parentSpanContext;
  const traceState = spanContext.traceState?.serialize();
  const out: OtlpSpanJson = {
    traceId: spanContext.traceId,
    spanId: spanContext.spanId,
    flags: (spanContext.traceFlags & 0xff) | FLAGS_HAS_IS_REMOTE | (parent?.isRemote === true ? FLAGS_IS_REMOTE : 0),
    name: span.name,
    kind: span.kind + 1,
    startTimeUnixNano: hrTimeToUnixNano(span.startTime),
    endTimeUnixNano: hrTimeToUnixNano(span.endTime),
    attributes: toKeyValues(span.attributes),
    droppedAttributesCount: span.droppedAttributesCount,
    events: span.events.map((event: TimedEvent) => ({
      timeUnixNano: hrTimeToUnixNano(event.time),
      name: event.name,
      attributes: toKeyValues(event.attributes),
      droppedAttributesCount: event.droppedAttributesCount ?? 0,
    })),
    droppedEventsCount: span.droppedEventsCount,
    links: span.links.map((link: Link) => {
      const linkState = link.context.traceState?.serialize();
      return {
        traceId: link.context.traceId,
        spanId: link.context.spanId,
        ...(linkState ? { traceState: linkState } : {}),
        attributes: toKeyValues(link.attributes),
        droppedAttributesCount: link.droppedAttributesCount ?? 0,
      };
    }),
    droppedLinksCount: span.droppedLinksCount,
    status: span.status.message ? { code: span.status.code, message: span.status.message } : { code: span.status.code },
  };
  if (traceState) out.traceState = traceState;
  if (parent !== undefined) out.parentSpanId = parent.spanId;
  return out;
}

/** Groups finished spans by resource and instrumentation scope, as an OTLP exporter would. */
export function toExportTraceRequest(spans: readonly ReadableSpan[]): OtlpExportTraceRequest {
  const byResource = new Map<ReadableSpan['resource'], Map<string, { span: ReadableSpan; json: OtlpSpanJson }[]>>();
  for (const span of spans) {
    let byScope = byResource.get(span.resource);
    if (byScope === undefined) {
      byScope = new Map();
      byResource.set(span.resource, byScope);
    }
    const scope = span.instrumentationScope;
    const scopeKey = `${scope.name}@${scope.version ?? ''}@${scope.schemaUrl ?? ''}`;
    const list = byScope.get(scopeKey) ?? [];
    list.push({ span, json: toSpanJson(span) });
    byScope.set(scopeKey, list);
  }
  return {
    resourceSpans: [...byResource.entries()].map(([resource, byScope]) => ({
      resource: { attributes: toKeyValues(resource.attributes), droppedAttributesCount: 0 },
      scopeSpans: [...byScope.values()].map((entries) => {
        // Every entry of a group shares the scope; the first one names it.
        const scope = entries[0]?.span.instrumentationScope ?? { name: '' };
        return {
          scope: scope.version === undefined ? { name: scope.name } : { name: scope.name, version: scope.version },
          spans: entries.map((e) => e.json),
          ...(scope.schemaUrl ? { schemaUrl: scope.schemaUrl } : {}),
        };
      }),
      ...(resource.schemaUrl ? { schemaUrl: resource.schemaUrl } : {}),
    })),
  };
}

// Reading back. Files may come from another writer (a collector's file exporter), so
// the reader checks shapes instead of trusting them, and says where a line is wrong.

type Json = unknown;

function isRecord(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(obj: Record<string, Json>, key: string, where: string): Json {
  if (!(key in obj)) throw new Error(`${where}: missing "${key}"`);
  return obj[key];
}

function stringField(obj: Record<string, Json>, key: string, where: string): string {
  const value = field(obj, key, where);
  if (typeof value !== 'string') throw new Error(`${where}: "${key}" is not a string`);
  return value;
}

function arrayField(obj: Record<string, Json>, key: string, where: string): Json[] {
  const value = obj[key];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${where}: "${key}" is not an array`);
  return value;
}

function unixNanoField(obj: Record<string, Json>, key: string, where: string): string {
  const value = field(obj, key, where);
  // proto3 JSON accepts int64 as a string or a number; hand back one spelling.
  if ((typeof value === 'string' && /^\d+$/.test(value)) || (typeof value === 'number' && Number.isInteger(value))) {
    return String(value);
  }
  throw new Error(`${where}: "${key}" is not an unsigned integer`);
}

function fromAnyValue(value: Json, where: string): OtlpValue {
  if (!isRecord(value)) throw new Error(`${where}: attribute value is not an object`);
  if (typeof value.stringValue === 'string') return value.stringValue;
  if (typeof value.boolValue === 'boolean') return value.boolValue;
  if (typeof value.intValue === 'string' || typeof value.intValue === 'number') return Number(value.intValue);
  if (typeof value.doubleValue === 'string' || typeof value.doubleValue === 'number') return Number(value.doubleValue);
  if (typeof value.bytesValue === 'string') return value.bytesValue;
  if (isRecord(value.arrayValue)) return arrayField(value.arrayValue, 'values', where).map((v) => fromAnyValue(v, where));
  if (isRecord(value.kvlistValue)) return fromKeyValues(arrayField(value.kvlistValue, 'values', where), where);
  return null;
}

function fromKeyValues(list: Json[], where: string): Record<string, OtlpValue> {
  const out: Record<string, OtlpValue> = {};
  for (const kv of list) {
    if (!isRecord(kv)) throw new Error(`${where}: attribute is not an object`);
    out[stringField(kv, 'key', where)] = fromAnyValue(field(kv, 'value', where), where);
  }
  return out;
}

const spanKinds: readonly SpanKind[] = [SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER];
const statusCodes: readonly SpanStatusCode[] = [SpanStatusCode.UNSET, SpanStatusCode.OK, SpanStatusCode.ERROR];

function fromSpanJson(span: Json, serviceName: string | undefined, where: string): OtlpSpanRecord {
  if (!isRecord(span)) throw new Error(`${where}: span is not an object`);
  const otlpKind = span.kind ?? 0;
  // OTLP kind 0 is "unspecified"; like the SDK, treat it as internal.
  const kind = typeof otlpKind === 'number' ? spanKinds[Math.max(otlpKind - 1, 0)] : undefined;
  if (kind === undefined) throw new Error(`${where}: "kind" ${JSON.stringify(otlpKind)} is not an OTLP span kind`);
  const statusJson = isRecord(span.status) ? span.status : {};
  const code = statusCodes[typeof statusJson.code === 'number' ? statusJson.code : 0];
  if (code === undefined) throw new Error(`${where}: status code ${String(statusJson.code)} is unknown`);
  const status: OtlpSpanRecord['status'] = typeof statusJson.message === 'string' && statusJson.message !== '' ? { code, message: statusJson.message } : { code };
  const record: OtlpSpanRecord = {
    traceId: stringField(span, 'traceId', where),
    spanId: stringField(span, 'spanId', where),
    name: stringField(span, 'name', where),
    kind,
    serviceName,
    attributes: fromKeyValues(arrayField(span, 'attributes', where), where),
    startTimeUnixNano: unixNanoField(span, 'startTimeUnixNano', where),
    endTimeUnixNano: unixNanoField(span, 'endTimeUnixNano', where),
    status,
  };
  // Writers spell "no parent" as an absent field or an empty string.
  if (typeof span.parentSpanId === 'string' && span.parentSpanId !== '') record.parentSpanId = span.parentSpanId;
  const links = arrayField(span, 'links', where).map((link): OtlpLinkRecord => {
    if (!isRecord(link)) throw new Error(`${where}: link is not an object`);
    return { traceId: stringField(link, 'traceId', where), spanId: stringField(link, 'spanId', where), attributes: fromKeyValues(arrayField(link, 'attributes', where), where) };
  });
  if (links.length > 0) record.links = links;
  return record;
}

/** Flattens one parsed ExportTraceServiceRequest; `where` prefixes error messages. */
export function fromExportTraceRequest(request: Json, where: string): OtlpSpanRecord[] {
  if (!isRecord(request)) throw new Error(`${where}: not a JSON object`);
  const records: OtlpSpanRecord[] = [];
  for (const resourceSpans of arrayField(request, 'resourceSpans', where)) {
    if (!isRecord(resourceSpans)) throw new Error(`${where}: resourceSpans entry is not an object`);
    const resource = isRecord(resourceSpans.resource) ? resourceSpans.resource : {};
    const serviceName = fromKeyValues(arrayField(resource, 'attributes', where), where)['service.name'];
    for (const scopeSpans of arrayField(resourceSpans, 'scopeSpans', where)) {
      if (!isRecord(scopeSpans)) throw new Error(`${where}: scopeSpans entry is not an object`);
      for (const span of arrayField(scopeSpans, 'spans', where)) {
        records.push(fromSpanJson(span, typeof serviceName === 'string' ? serviceName : undefined, where));
      }
    }
  }
  return records;
}
