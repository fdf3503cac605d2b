// The HA agent's metrics: whether it is the master, the master's restart list and
// wait list and the VMs it restarted, and the VMs this host runs.
import type { Metrics } from '@strata/metrics';
import type { Master } from './master';

/** Registers the agent's series; `master()` is the master this agent runs, undefined when it is not the master. */
export function registerHaMetrics(metrics: Metrics, master: () => Master | undefined, vmsRunning: () => number): void {
  metrics.sampled('gauge', 'strata_ha_master', '1 while this agent is the HA master.', [], () => [{ value: master() === undefined ? 0 : 1 }]);
  metrics.sampled('gauge', 'strata_ha_vms', "VMs on the master's restart list and on its wait list.", ['list'], () => {
    const lists = master()?.lists();
    return lists === undefined ? [] : [{ labels: { list: 'restart' }, value: lists.restart }, { labels: { list: 'wait' }, value: lists.wait }];
  });
  metrics.sampled('counter', 'strata_ha_restarts_total', 'VMs the master restarted on a host.', [], () => {
    const lists = master()?.lists();
    return lists === undefined ? [] : [{ value: lists.restarted }];
  });
  metrics.sampled('gauge', 'strata_ha_vms_running', 'VMs this host runs.', [], () => [{ value: vmsRunning() }]);
}
