// The agent's settings: defaults, flags and variables, and the relations between the
// timings that "never two instances" and the isolation bound rest on.
import { SettingsError, readSettings } from '@strata/actor';
import { agentSettings } from '../src/settings';

const read = (argv: string[], env: NodeJS.ProcessEnv = {}) => readSettings(agentSettings, argv, env);
const refusal = (argv: string[], env: NodeJS.ProcessEnv = {}): string => {
  try {
    read(argv, env);
  } catch (err) {
    if (err instanceof SettingsError) return err.message;
    throw err;
  }
  throw new Error('accepted');
};

test('defaults, with the host required', () => {
  expect(read(['--host', 'n1'])).toMatchObject({ host: 'n1', haHeartbeatIntervalMs: 500, isolationTimeoutMs: 2_000, powerOnLeaseTtlMs: 4_000, powerOnRenewMs: 1_000, masterLeaseTtlMs: 3_000 });
  expect(refusal([])).toMatch(/--host \(STRATA_HOST\): is required/);
});

test('the nodes\' heartbeat interval is not the agents\'', () => {
  expect(read(['--host', 'n1'], { STRATA_HEARTBEAT_INTERVAL_MS: '1000' }).haHeartbeatIntervalMs).toBe(500);
});

test('an isolation bound that would outlast the lease is refused, naming the setting', () => {
  expect(refusal(['--host', 'n1', '--isolation-timeout-ms', '3500'])).toMatch(/--isolation-timeout-ms \(STRATA_ISOLATION_TIMEOUT_MS\): isolationTimeoutMs \+ haHeartbeatIntervalMs \+ powerOffMarginMs must not exceed powerOnLeaseTtlMs \* 0.9/);
  expect(refusal(['--host', 'n1', '--power-on-renew-ms', '2000'])).toMatch(/--power-on-renew-ms .*must leave room for two renewals/);
  expect(refusal(['--host', 'n1', '--isolation-timeout-ms', '900'])).toMatch(/must exceed two heartbeat intervals/);
});
