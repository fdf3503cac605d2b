// The console's reading of metrics: a scrape parsed into the series it asks for, sums, and rates.
import { parseScrape, ratePerSec, total } from '../src/console/prom';

const scrape = `# HELP strata_gateway_requests_total NBD requests answered
# TYPE strata_gateway_requests_total counter
strata_gateway_requests_total{op="write",errno="0",service="n1-node-host",node="n1"} 10
strata_gateway_requests_total{op="read",errno="0",service="n1-node-host",node="n1"} 5
strata_oplog_backlog_bytes{vdisk="de\\"mo",service="n1-node-host"} 4096
strata_admission_queue_depth{service="n1-node-host"} 3
process_cpu_user_seconds_total{service="n1-node-host"} 1.5
garbage line
`;

test('only the asked series are parsed, with their labels (escapes undone)', () => {
  const series = parseScrape(scrape, new Set(['strata_gateway_requests_total', 'strata_oplog_backlog_bytes']));
  expect(series).toHaveLength(3);
  expect(series[2]).toEqual({ name: 'strata_oplog_backlog_bytes', labels: { vdisk: 'de"mo', service: 'n1-node-host' }, value: 4096 });
  expect(total(series, 'strata_gateway_requests_total')).toBe(15);
  expect(total(series, 'strata_gateway_requests_total', { label: 'op', value: 'write' })).toBe(10);
  expect(total(parseScrape(scrape, new Set(['strata_admission_queue_depth'])), 'strata_admission_queue_depth')).toBe(3);
});

test('a rate is the counter per second between two readings, 0 across a restart or without a first one', () => {
  expect(ratePerSec({ value: 10, atMs: 1_000 }, { value: 30, atMs: 3_000 })).toBe(10);
  expect(ratePerSec({ value: 30, atMs: 1_000 }, { value: 5, atMs: 2_000 })).toBe(0);
  expect(ratePerSec(undefined, { value: 5, atMs: 2_000 })).toBe(0);
  expect(ratePerSec({ value: 5, atMs: 2_000 }, { value: 9, atMs: 2_000 })).toBe(0);
});
