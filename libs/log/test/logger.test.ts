// The log line format: one JSON object per line with service, node, pid, ISO time and a
// level label; trace_id/span_id inside a span; level filtering by option and LOG_LEVEL.
import { SpanKind, context, extractTraceContext, trace, type HeaderCarrier } from '@strata/tracing';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';
import { createLogger } from '@strata/log';
import { captureLogs } from '@strata/log/testing';

let tracing: InMemoryTracing;
beforeAll(() => {
  tracing = installInMemoryTracing();
});
afterAll(() => tracing.shutdown());

const savedLevel = process.env.LOG_LEVEL;
afterEach(() => {
  if (savedLevel === undefined) delete process.env.LOG_LEVEL;
  else process.env.LOG_LEVEL = savedLevel;
});

test('a line carries service, node, pid, ISO time, level label and message', () => {
  const logs = captureLogs({ service: 'vdisk-controller', node: 'node-2', level: 'info' });
  logs.logger.info({ vdiskId: 'vd-1' }, 'vdisk opened');
  const [line] = logs.lines();
  expect(line).toEqual({
    level: 'info',
    time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    service: 'vdisk-controller',
    node: 'node-2',
    pid: process.pid,
    vdiskId: 'vd-1',
    msg: 'vdisk opened',
  });
});

test('outside a span there is no trace_id', () => {
  const logs = captureLogs();
  logs.logger.info('idle');
  expect(logs.lines()[0]).not.toHaveProperty('trace_id');
  expect(logs.lines()[0]).not.toHaveProperty('span_id');
});

test('inside an active span the line carries that span\'s trace_id and span_id, across awaits', async () => {
  const logs = captureLogs();
  const tracer = trace.getTracer('log-test');
  await tracer.startActiveSpan('handle io.write', { kind: SpanKind.SERVER }, async (span) => {
    await new Promise((resolve) => setImmediate(resolve));
    logs.logger.warn('slow write');
    span.end();
  });
  const [span] = tracing.exporter.getFinishedSpans();
  expect(logs.lines()[0]).toMatchObject({ level: 'warn', trace_id: span?.spanContext().traceId, span_id: span?.spanContext().spanId });
});

test('in a context extracted from message headers the line carries the sender\'s trace id', () => {
  const headers = new Map([['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01']]);
  const carrier: HeaderCarrier = {
    get: (k) => headers.get(k) ?? '',
    set: (k, v) => void headers.set(k, v),
    has: (k) => headers.has(k),
    keys: () => [...headers.keys()],
  };
  const logs = captureLogs();
  context.with(extractTraceContext(carrier), () => logs.logger.info('received'));
  expect(logs.lines()[0]).toMatchObject({ trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', span_id: '00f067aa0ba902b7' });
});

test('child loggers keep the base fields and the trace ids', () => {
  const logs = captureLogs({ service: 'scheduler', node: 'n1' });
  const child = logs.logger.child({ vm: 'vm-9' });
  trace.getTracer('log-test').startActiveSpan('place', (span) => {
    child.info('placed');
    span.end();
  });
  expect(logs.lines()[0]).toMatchObject({ service: 'scheduler', node: 'n1', vm: 'vm-9', trace_id: expect.stringMatching(/^[0-9a-f]{32}$/) });
});

test('the level option filters lower levels', () => {
  const logs = captureLogs({ level: 'warn' });
  logs.logger.debug('no');
  logs.logger.info('no');
  logs.logger.warn('yes');
  logs.logger.error('yes too');
  expect(logs.lines().map((l) => [l.level, l.msg])).toEqual([
    ['warn', 'yes'],
    ['error', 'yes too'],
  ]);
});

test('LOG_LEVEL applies when no level is given, and the option wins over it', () => {
  process.env.LOG_LEVEL = 'error';
  const writes: string[] = [];
  const destination = { write: (s: string) => void writes.push(s) };
  const fromEnv = createLogger({ service: 's', destination });
  fromEnv.warn('dropped');
  fromEnv.error('kept');
  const fromOption = createLogger({ service: 's', level: 'debug', destination });
  fromOption.debug('kept too');
  expect(writes.map((w) => (JSON.parse(w) as { msg: string }).msg)).toEqual(['kept', 'kept too']);
});

test('without level or LOG_LEVEL the level is info', () => {
  delete process.env.LOG_LEVEL;
  expect(createLogger({ service: 's', destination: { write: () => undefined } }).level).toBe('info');
});

test('an unknown level stops start-up with a message that lists the levels', () => {
  process.env.LOG_LEVEL = 'verbose';
  expect(() => createLogger({ service: 's', destination: { write: () => undefined } })).toThrow(/LOG_LEVEL="verbose" is not a log level; use one of .*debug/);
  expect(() => createLogger({ service: 's', level: 'loud', destination: { write: () => undefined } })).toThrow(/level="loud"/);
});

test('every write is exactly one JSON line, even for multi-line messages and errors', () => {
  const logs = captureLogs();
  logs.logger.info('first\nsecond');
  logs.logger.error({ err: new Error('boom\nwith detail') }, 'failed');
  const lines = logs.lines(); // throws if a write held more or less than one line
  expect(lines).toHaveLength(2);
  expect(lines[0]?.msg).toBe('first\nsecond');
  expect(lines[1]?.err).toMatchObject({ type: 'Error', message: 'boom\nwith detail', stack: expect.stringContaining('boom') });
});
