// Per-process Prometheus metrics: a registry of our own (never prom-client's global one,
// which any dependency may write to), Node process metrics, and {service, node} on every series.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsOptions {
  /** The actor, e.g. "vdisk-controller": the `service` label of every series. */
  service: string;
  /** The Strata node id, e.g. "node-2": the `node` label of every series, when given. */
  node?: string;
}

type MetricKind = 'counter' | 'gauge' | 'histogram';

export interface Metrics {
  readonly registry: Registry;
  /**
   * The counter named `name`, created on first use. Asking again for the same name
   * returns the same counter; asking with another kind, other labels or other buckets
   * is a programming error and throws.
   */
  counter<L extends string = never>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  gauge<L extends string = never>(name: string, help: string, labelNames?: readonly L[]): Gauge<L>;
  /** `buckets` are upper bounds in the metric's unit; default: prom-client's (5 ms to 10 s, in seconds). */
  histogram<L extends string = never>(name: string, help: string, labelNames?: readonly L[], buckets?: readonly number[]): Histogram<L>;
  /**
   * A gauge, or a counter kept by its owner, whose series `read` returns at scrape
   * time (a backlog, a list's length, a total some object keeps). Registering a name
   * twice is a programming error and throws.
   */
  sampled<L extends string = never>(kind: 'gauge' | 'counter', name: string, help: string, labelNames: readonly L[], read: () => Iterable<Sample<L>>): void;
}

/** One series of a sampled metric: its labels and its value now. */
export interface Sample<L extends string> {
  labels?: Partial<Record<L, string>>;
  value: number;
}

interface Entry {
  kind: MetricKind;
  labelNames: readonly string[];
  buckets: readonly number[] | undefined;
  metric: Counter<string> | Gauge<string> | Histogram<string>;
}

function sameList(a: readonly unknown[] | undefined, b: readonly unknown[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Creates the process's metrics. Call once per process: the default collectors (CPU,
 * memory, event-loop lag, GC) each install observers that live as long as the process.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  if (options.service.trim() === '') throw new Error('createMetrics: service must not be empty');
  const registry = new Registry();
  registry.setDefaultLabels(options.node === undefined ? { service: options.service } : { service: options.service, node: options.node });
  collectDefaultMetrics({ register: registry });

  const entries = new Map<string, Entry>();

  function getOrCreate(kind: MetricKind, name: string, labelNames: readonly string[], buckets: readonly number[] | undefined, create: () => Entry['metric']): Entry['metric'] {
    const existing = entries.get(name);
    if (existing !== undefined) {
      // A histogram asked for without buckets takes whatever buckets it was created with.
      const bucketsMatch = buckets === undefined || sameList(existing.buckets, buckets);
      if (existing.kind !== kind || !sameList(existing.labelNames, labelNames) || !bucketsMatch) {
        throw new Error(
          `metric ${name} is already a ${existing.kind} with labels [${existing.labelNames.join(', ')}]` +
            (existing.buckets === undefined ? '' : ` and buckets [${existing.buckets.join(', ')}]`) +
            `; asked for a ${kind} with labels [${labelNames.join(', ')}]` +
            (buckets === undefined ? '' : ` and buckets [${buckets.join(', ')}]`),
        );
      }
      return existing.metric;
    }
    const metric = create();
    entries.set(name, { kind, labelNames: [...labelNames], buckets: buckets === undefined ? undefined : [...buckets], metric });
    return metric;
  }

  function sampled<L extends string>(kind: 'gauge' | 'counter', name: string, help: string, labelNames: readonly L[], read: () => Iterable<Sample<L>>): void {
    if (entries.has(name)) throw new Error(`metric ${name} is already registered; a sampled metric is registered once`);
    const labels = [...labelNames];
    const metric =
      kind === 'gauge'
        ? new Gauge<L>({
            name,
            help,
            labelNames: labels,
            registers: [registry],
            collect() {
              this.reset();
              for (const sample of read()) this.set(sample.labels ?? {}, sample.value);
            },
          })
        : new Counter<L>({
            name,
            help,
            labelNames: labels,
            registers: [registry],
            collect() {
              this.reset();
              for (const sample of read()) this.inc(sample.labels ?? {}, sample.value);
            },
          });
    entries.set(name, { kind, labelNames: labels, buckets: undefined, metric });
  }

  return {
    registry,
    sampled,
    counter: <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
      getOrCreate('counter', name, labelNames, undefined, () => new Counter({ name, help, labelNames, registers: [registry] })) as Counter<L>,
    gauge: <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
      getOrCreate('gauge', name, labelNames, undefined, () => new Gauge({ name, help, labelNames, registers: [registry] })) as Gauge<L>,
    histogram: <L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], buckets?: readonly number[]) =>
      getOrCreate(
        'histogram',
        name,
        labelNames,
        buckets,
        () => new Histogram({ name, help, labelNames, registers: [registry], ...(buckets === undefined ? {} : { buckets: [...buckets] }) }),
      ) as Histogram<L>,
  };
}
