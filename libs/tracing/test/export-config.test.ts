// The rules that pick trace exporters from the environment, including the mistakes
// that must stop a process at start-up.
import { traceExportConfigFromEnv } from '@strata/tracing';

test('nothing set: no exporter, tracing off', () => {
  expect(traceExportConfigFromEnv({})).toEqual({ sdkDisabled: false, otlp: false, zipkin: false, console: false, filePath: undefined, idsOnly: false });
});

test('STRATA_TRACE_IDS=true keeps ids without an exporter', () => {
  expect(traceExportConfigFromEnv({ STRATA_TRACE_IDS: 'true' }).idsOnly).toBe(true);
});

test.each([
  [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
  [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
  [{ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }, false],
  [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
  [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
  [{ OTEL_TRACES_EXPORTER: 'console', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
])('OTLP on for %j: %s', (env, otlp) => {
  expect(traceExportConfigFromEnv(env).otlp).toBe(otlp);
});

test.each([
  [{ OTEL_EXPORTER_ZIPKIN_ENDPOINT: 'http://127.0.0.1:9411/api/v2/spans' }, true],
  [{ OTEL_TRACES_EXPORTER: 'zipkin' }, true],
  [{ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_ZIPKIN_ENDPOINT: 'http://127.0.0.1:9411/api/v2/spans' }, false],
  [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
])('Zipkin on for %j: %s', (env, zipkin) => {
  expect(traceExportConfigFromEnv(env).zipkin).toBe(zipkin);
});

test('an exporter list may combine otlp and console', () => {
  expect(traceExportConfigFromEnv({ OTEL_TRACES_EXPORTER: 'OTLP, console' })).toMatchObject({ otlp: true, console: true });
});

test('STRATA_TRACE_FILE adds the file whatever OTEL_TRACES_EXPORTER says', () => {
  expect(traceExportConfigFromEnv({ OTEL_TRACES_EXPORTER: 'none', STRATA_TRACE_FILE: '/tmp/s.jsonl' })).toEqual({
    sdkDisabled: false,
    otlp: false,
    zipkin: false,
    console: false,
    filePath: '/tmp/s.jsonl',
    idsOnly: false,
  });
});

test('OTEL_SDK_DISABLED is read', () => {
  expect(traceExportConfigFromEnv({ OTEL_SDK_DISABLED: 'TRUE' }).sdkDisabled).toBe(true);
  expect(traceExportConfigFromEnv({ OTEL_SDK_DISABLED: 'false' }).sdkDisabled).toBe(false);
});

test('an exporter Strata does not ship is an error that names it', () => {
  expect(() => traceExportConfigFromEnv({ OTEL_TRACES_EXPORTER: 'otlp,jaeger' })).toThrow(/jaeger is not an exporter Strata ships/);
});

test('"none" with another exporter is an error', () => {
  expect(() => traceExportConfigFromEnv({ OTEL_TRACES_EXPORTER: 'none,otlp' })).toThrow(/cannot be combined/);
});

test('an OTLP protocol other than http/protobuf is an error, but only when OTLP is on', () => {
  const grpc = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' };
  expect(() => traceExportConfigFromEnv(grpc)).toThrow(/"grpc" is not supported/);
  expect(() => traceExportConfigFromEnv({ ...grpc, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' })).not.toThrow();
  expect(() => traceExportConfigFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).not.toThrow();
});
