// The registry: own (not prom-client's global), default process metrics, default labels
// on every series, and idempotent metric helpers that refuse a conflicting redefinition.
import { register as globalRegistry } from 'prom-client';
import { createMetrics } from '@strata/metrics';
import { metricValue } from '@strata/metrics/testing';

test('metrics live in their own registry, with process metrics and the default labels', async () => {
  const metrics = createMetrics({ service: 'vdisk-controller', node: 'node-2' });
  expect(metrics.registry).not.toBe(globalRegistry);
  metrics.counter('strata_test_ops_total', 'Operations.').inc();
  const text = await metrics.registry.metrics();
  expect(text).toContain('strata_test_ops_total{service="vdisk-controller",node="node-2"} 1');
  expect(text).toMatch(/^process_cpu_user_seconds_total\{service="vdisk-controller",node="node-2"\} \d/m);
  expect(text).toMatch(/^nodejs_eventloop_lag_seconds\{/m);
  expect(await globalRegistry.metrics()).not.toContain('strata_test_ops_total');
});

test('without a node only the service label is added', async () => {
  const metrics = createMetrics({ service: 'scheduler' });
  metrics.gauge('strata_test_queue_depth', 'Depth.').set(3);
  expect(await metrics.registry.metrics()).toContain('strata_test_queue_depth{service="scheduler"} 3');
});

test('asking twice for a metric returns the same one', async () => {
  const metrics = createMetrics({ service: 's' });
  const a = metrics.counter('strata_test_requests_total', 'Requests.', ['subject']);
  const b = metrics.counter('strata_test_requests_total', 'Requests.', ['subject']);
  expect(b).toBe(a);
  a.inc({ subject: 'io.read' });
  b.inc({ subject: 'io.read' }, 2);
  expect(await metricValue(metrics, 'strata_test_requests_total', { subject: 'io.read' })).toBe(3);
  const h1 = metrics.histogram('strata_test_latency_seconds', 'Latency.', ['op'], [0.001, 0.01]);
  expect(metrics.histogram('strata_test_latency_seconds', 'Latency.', ['op'])).toBe(h1);
  expect(metrics.gauge('strata_test_g', 'G.')).toBe(metrics.gauge('strata_test_g', 'G.'));
});

test('a conflicting redefinition throws and names both definitions', () => {
  const metrics = createMetrics({ service: 's' });
  metrics.counter('strata_test_x_total', 'X.', ['a']);
  expect(() => metrics.gauge('strata_test_x_total', 'X.', ['a'])).toThrow(/already a counter with labels \[a\]; asked for a gauge/);
  expect(() => metrics.counter('strata_test_x_total', 'X.', ['b'])).toThrow(/asked for a counter with labels \[b\]/);
  metrics.histogram('strata_test_h_seconds', 'H.', [], [1, 2]);
  expect(() => metrics.histogram('strata_test_h_seconds', 'H.', [], [1, 3])).toThrow(/buckets \[1, 2\].*buckets \[1, 3\]/);
});

test('histograms use the given buckets', async () => {
  const metrics = createMetrics({ service: 's' });
  const h = metrics.histogram('strata_test_io_seconds', 'IO time.', ['op'], [0.001, 0.01, 0.1]);
  h.observe({ op: 'read' }, 0.005);
  h.observe({ op: 'read' }, 0.05);
  expect(await metricValue(metrics, 'strata_test_io_seconds_bucket', { op: 'read', le: 0.01 })).toBe(1);
  expect(await metricValue(metrics, 'strata_test_io_seconds_bucket', { op: 'read', le: 0.1 })).toBe(2);
  expect(await metricValue(metrics, 'strata_test_io_seconds_count', { op: 'read' })).toBe(2);
  expect(await metricValue(metrics, 'strata_test_io_seconds_sum', { op: 'read' })).toBeCloseTo(0.055);
  expect(await metrics.registry.metrics()).toContain('strata_test_io_seconds_bucket{le="0.01",service="s",op="read"} 1');
});

test('metricValue tells an unobserved series from zero', async () => {
  const metrics = createMetrics({ service: 's' });
  const c = metrics.counter('strata_test_y_total', 'Y.', ['kind']);
  c.inc({ kind: 'a' }, 0);
  expect(await metricValue(metrics, 'strata_test_y_total', { kind: 'a' })).toBe(0);
  expect(await metricValue(metrics, 'strata_test_y_total', { kind: 'b' })).toBeUndefined();
  expect(await metricValue(metrics, 'strata_test_missing_total')).toBeUndefined();
});

test('an empty service is refused', () => {
  expect(() => createMetrics({ service: ' ' })).toThrow(/service must not be empty/);
});

test('a sampled metric reads its series at every scrape, and drops the ones gone', async () => {
  const metrics = createMetrics({ service: 's' });
  let backlog = new Map([['a', 10], ['b', 20]]);
  metrics.sampled('gauge', 'strata_test_backlog_bytes', 'Backlog.', ['vdisk'], () => [...backlog].map(([vdisk, value]) => ({ labels: { vdisk }, value })));
  let total = 5;
  metrics.sampled('counter', 'strata_test_done_total', 'Done.', [], () => [{ value: total }]);
  expect(await metricValue(metrics, 'strata_test_backlog_bytes', { vdisk: 'a' })).toBe(10);
  expect(await metricValue(metrics, 'strata_test_done_total')).toBe(5);
  backlog = new Map([['b', 7]]);
  total = 9;
  const text = await metrics.registry.metrics();
  expect(text).toContain('strata_test_backlog_bytes{vdisk="b",service="s"} 7');
  expect(text).not.toContain('vdisk="a"');
  expect(text).toMatch(/^# TYPE strata_test_done_total counter$/m);
  expect(text).toContain('strata_test_done_total{service="s"} 9');
  expect(() => metrics.sampled('gauge', 'strata_test_backlog_bytes', 'Again.', [], () => [])).toThrow(/already registered/);
});
