// Config replicas as real child processes, with timings shortened for tests (the
// relations between them are the production ones: fence < dead, lease renewals
// well inside the TTL).
import { ConfigClient } from '@strata/config-client';
import type { StatusReply } from '@strata/proto';
import { startNode, type ActorProcess } from './processes';
import { waitFor } from './util';
import { isUnavailable } from './verify';

export const testTimings = {
  heartbeatIntervalMs: 200,
  fenceTimeoutMs: 800,
  deadTimeoutMs: 1_200,
  leaseTtlMs: 1_500,
  detectorTickMs: 50,
};

export function startConfigReplica(url: string, replica: string, env: Record<string, string> = {}): ActorProcess {
  return startNode('services/config/dist/main.js', ['--replica', replica], {
    name: replica,
    env: {
      NATS_URL: url,
      STRATA_HEARTBEAT_INTERVAL_MS: String(testTimings.heartbeatIntervalMs),
      STRATA_FENCE_TIMEOUT_MS: String(testTimings.fenceTimeoutMs),
      STRATA_DEAD_TIMEOUT_MS: String(testTimings.deadTimeoutMs),
      STRATA_LEASE_TTL_MS: String(testTimings.leaseTtlMs),
      STRATA_DETECTOR_TICK_MS: String(testTimings.detectorTickMs),
      ...env,
    },
  });
}

/**
 * Waits until some replica answers status as leader (optionally: not `notLeader`).
 * Nobody answering yet (UNAVAILABLE, TIMEOUT: replicas starting, or electing after a
 * kill) is retried; any other error fails at once.
 */
export async function waitForLeader(client: ConfigClient, timeoutMs = 20_000, notLeader?: string): Promise<StatusReply> {
  return waitFor(
    `a config leader${notLeader === undefined ? '' : ` other than ${notLeader}`}`,
    timeoutMs,
    async () => {
      const status = await client.status();
      return status.leader !== notLeader ? status : false;
    },
    { retryIf: isUnavailable },
  );
}

export { ConfigClient };
