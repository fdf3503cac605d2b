// Test helper: read one series' current value from a Metrics registry, so a test can
// assert "this counter went up by one" without parsing the text format.
import type { Metrics } from '../metrics';

/**
 * The value of the series `name` with exactly these `labels` (the default service/node
 * labels are not part of a series here), or undefined if it has not been observed. For
 * a histogram, ask for name_count, name_sum, or name_bucket with an `le` label.
 */
export async function metricValue(metrics: Metrics, name: string, labels: Record<string, string | number> = {}): Promise<number | undefined> {
  const suffix = /_(count|sum|bucket)$/.exec(name);
  const metric = metrics.registry.getSingleMetric(name) ?? (suffix ? metrics.registry.getSingleMetric(name.slice(0, suffix.index)) : undefined);
  if (metric === undefined) return undefined;
  const { name: metricName, values } = await metric.get();
  const wanted = Object.entries(labels);
  const found = values.find((v) => {
    // Histogram values name their series (h_bucket, h_sum, h_count); the others do not.
    const seriesName = (v as { metricName?: string }).metricName ?? metricName;
    if (seriesName !== name) return false;
    const own = Object.entries(v.labels);
    return own.length === wanted.length && wanted.every(([k, value]) => String(v.labels[k]) === String(value));
  });
  return found?.value;
}
