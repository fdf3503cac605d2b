// A config replica's metrics: whether it leads and at which epoch, the nodes by
// liveness (from the leader only, so a sum over replicas counts each node once), and
// the failovers its leadership ran: how many, how long each took from the owner's
// death being acted on to the new owner serving, and how many run now.
import type { Metrics } from '@strata/metrics';
import type { ConfigReplica } from './replica';

const TAKEOVER_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

/** Registers the replica's series; returns what the failover coordinator reports to. */
export function registerConfigMetrics(metrics: Metrics, replica: () => ConfigReplica | undefined): { takeoverDone: (ms: number) => void } {
  metrics.sampled('gauge', 'strata_config_leader', '1 while this replica leads the config service.', [], () => [{ value: replica()?.isLeader() === true ? 1 : 0 }]);
  metrics.sampled('gauge', 'strata_config_leader_epoch', "The leader's epoch (only the leader reports it).", [], () => {
    const r = replica();
    return r?.isLeader() === true && r.epoch !== undefined ? [{ value: r.epoch }] : [];
  });
  metrics.sampled('gauge', 'strata_nodes', 'Nodes by recorded liveness (only the leader reports them).', ['liveness'], () => {
    const r = replica();
    if (r?.isLeader() !== true) return [];
    return [...r.nodeLiveness()].map(([liveness, value]) => ({ labels: { liveness }, value }));
  });
  metrics.sampled('gauge', 'strata_failover_takeovers_in_progress', 'vDisk takeovers this leader runs now.', [], () => [{ value: replica()?.takeoversInProgress ?? 0 }]);
  const done = metrics.counter('strata_failover_takeovers_total', 'vDisk takeovers (failovers of a dead owner) run to their end by this replica as leader.');
  const seconds = metrics.histogram('strata_failover_takeover_seconds', 'Time from the start of a takeover to the new owner serving.', [], TAKEOVER_BUCKETS);
  return {
    takeoverDone: (ms) => {
      done.inc();
      seconds.observe(ms / 1000);
    },
  };
}
