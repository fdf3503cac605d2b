// The curator's metrics, from the master's status at scrape time (a curator that is
// not the master reports only strata_curator_master 0): under-replicated extent
// groups, the rebuild's bytes to copy, copied and its rate and time to finish, copies
// done and failed, the garbage deleted, the drains, the tiers and scans.
import type { Metrics, Sample } from '@strata/metrics';
import type { CuratorStatusReply } from '@strata/proto';

/** Registers the curator's series; `status()` is the master's status, undefined on a curator that is not the master. */
export function registerCuratorMetrics(metrics: Metrics, status: () => CuratorStatusReply | undefined): void {
  const of =
    (value: (s: CuratorStatusReply) => number | undefined) =>
    (): Sample<never>[] => {
      const s = status();
      const v = s === undefined ? undefined : value(s);
      return v === undefined ? [] : [{ value: v }];
    };
  metrics.sampled('gauge', 'strata_curator_master', '1 while this curator is the master.', [], () => [{ value: status() === undefined ? 0 : 1 }]);
  metrics.sampled('gauge', 'strata_curator_under_replicated_egroups', 'Extent groups with fewer than RF healthy replicas at the last scan, less those fixed since.', [], of((s) => s.progress.underReplicated));
  metrics.sampled('gauge', 'strata_curator_rebuild_bytes_to_copy', 'Bytes of the queued copies not yet done.', [], of((s) => s.progress.bytesToCopy));
  metrics.sampled('counter', 'strata_curator_copied_bytes_total', 'Bytes copied by re-replication and drain moves under this master.', [], of((s) => s.progress.bytesCopied));
  metrics.sampled('counter', 'strata_curator_copies_total', 'Replica copies under this master, by outcome.', ['outcome'], () => {
    const s = status();
    return s === undefined ? [] : [{ labels: { outcome: 'done' }, value: s.progress.copiesDone }, { labels: { outcome: 'failed' }, value: s.progress.copiesFailed }];
  });
  metrics.sampled('gauge', 'strata_curator_copies_in_flight', 'Copies being made now.', [], of((s) => s.copiesInFlight));
  metrics.sampled('gauge', 'strata_curator_copy_bytes_per_second', 'Recent copy rate.', [], of((s) => s.progress.bytesPerSec));
  metrics.sampled('gauge', 'strata_curator_rebuild_eta_seconds', 'Estimated time to copy what remains, when known.', [], of((s) => (s.progress.etaMs === undefined ? undefined : s.progress.etaMs / 1000)));
  metrics.sampled('counter', 'strata_curator_garbage_deleted_total', 'Replicas nothing references, deleted by the garbage collection.', [], of((s) => s.progress.garbageDeleted ?? 0));
  metrics.sampled('counter', 'strata_curator_garbage_bytes_total', 'Bytes of the replicas the garbage collection deleted.', [], of((s) => s.progress.garbageBytes ?? 0));
  metrics.sampled('gauge', 'strata_curator_draining_replicas', 'Replicas still to move off the nodes and disks being drained.', [], of((s) => (s.progress.draining ?? []).reduce((sum, d) => sum + d.replicas, 0)));
  metrics.sampled('gauge', 'strata_curator_tier_used_ratio', "Each tier's used share of its disks' capacity at the last scan (tiering).", ['tier'], () => (status()?.progress.tiering?.tiers ?? []).map((t) => ({ labels: { tier: t.tier }, value: t.usedPermille / 1000 })));
  metrics.sampled('counter', 'strata_curator_tier_moves_total', 'Cold replicas moved down a tier order under this master.', [], of((s) => s.progress.tiering?.movesDone ?? 0));
  metrics.sampled('gauge', 'strata_curator_scan_running', '1 while a scan runs.', [], of((s) => (s.running === undefined ? 0 : 1)));
  metrics.sampled('counter', 'strata_curator_scans_total', 'Scans this master finished.', [], of((s) => s.progress.lastScan?.scan ?? 0));
  metrics.sampled('gauge', 'strata_curator_last_scan_seconds', 'How long the last scan took.', [], of((s) => (s.progress.lastScan === undefined ? undefined : s.progress.lastScan.durationMs / 1000)));
}
