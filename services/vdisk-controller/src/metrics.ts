// The vdisk-controller's metrics: each served vDisk's oplog backlog (bytes and
// entries), how long its oldest undrained entry has waited (the replication lag: data
// that is only in the oplog, not yet in the extent groups), the bytes drained (whose
// rate is the drain rate), and how many vDisks were opened (a first I/O or a
// takeover's replay) and how long each open took. Read from the controller at scrape
// time; nothing here is on the I/O path.
import type { Metrics } from '@strata/metrics';
import type { Controller } from './controller';

const OPEN_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Registers the sampled series of `controller()` (undefined until the controller exists: no series). */
export function registerControllerMetrics(metrics: Metrics, controller: () => Controller | undefined): { opened: (o: { ms: number; replayed: number }) => void } {
  const backlogs = (): ReturnType<Controller['backlogs']> => controller()?.backlogs() ?? [];
  metrics.sampled('gauge', 'strata_vdisks_served', 'vDisks this controller serves now.', [], () => [{ value: backlogs().length }]);
  metrics.sampled('gauge', 'strata_oplog_backlog_bytes', "Undrained bytes in a vDisk's oplog (what counts against its limit).", ['vdisk'], () => backlogs().map((b) => ({ labels: { vdisk: b.vdisk }, value: b.bytes })));
  metrics.sampled('gauge', 'strata_oplog_backlog_entries', "Undrained oplog entries that carry data, per vDisk.", ['vdisk'], () => backlogs().map((b) => ({ labels: { vdisk: b.vdisk }, value: b.entries })));
  metrics.sampled('gauge', 'strata_oplog_replication_lag_seconds', 'How long the oldest undrained oplog entry of a vDisk has waited for drain.', ['vdisk'], () =>
    backlogs().map((b) => ({ labels: { vdisk: b.vdisk }, value: b.oldestAgeMs / 1000 })),
  );
  metrics.sampled('counter', 'strata_drain_bytes_total', 'Data bytes drained from the oplog to the extent groups since the vDisk was opened here (rate: the drain rate).', ['vdisk'], () =>
    backlogs().map((b) => ({ labels: { vdisk: b.vdisk }, value: b.drainedBytes })),
  );
  const opens = metrics.counter('strata_vdisk_opens_total', 'vDisks opened by this controller (a first I/O, or the replay step of a takeover).');
  const replayed = metrics.counter('strata_vdisk_replayed_entries_total', 'Oplog entries replayed by the opens.');
  const seconds = metrics.histogram('strata_vdisk_open_seconds', 'Time to open a vDisk: read the ownership and the oplog tail, replay, append the marker.', [], OPEN_BUCKETS);
  return {
    opened: (o) => {
      opens.inc();
      replayed.inc(o.replayed);
      seconds.observe(o.ms / 1000);
    },
  };
}
