// Prometheus metrics for every Strata actor: a per-process registry and its scrape endpoint.
export { createMetrics, type Metrics, type MetricsOptions, type Sample } from './metrics';
export { startMetricsServer, type MetricsServer, type MetricsServerOptions } from './server';
export type { Counter, Gauge, Histogram } from 'prom-client';
