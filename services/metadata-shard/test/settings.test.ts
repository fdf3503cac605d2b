// The shard's settings: defaults (the heartbeat interval follows the lease TTL), and
// start-up refusals that name the flag to fix.
import { readSettings, SettingsError } from '@strata/actor';
import { resolveSettings, shardSettings } from '../src/settings';

describe('metadata shard settings', () => {
  it('defaults the heartbeat to a third of the lease TTL', () => {
    const s = resolveSettings(readSettings(shardSettings, ['--shard', 'md-1'], { STRATA_LEASE_TTL_MS: '1500' }));
    expect(s).toEqual({ shard: 'md-1', leaseTtlMs: 1_500, heartbeatIntervalMs: 500, cacheEntriesMax: 50_000, requestsInFlightMax: 512 });
  });

  it('refuses a heartbeat not below the TTL, and a bad shard name, naming the flag', () => {
    expect(() => readSettings(shardSettings, ['--heartbeat-interval-ms', '3000'], {})).toThrow(/--heartbeat-interval-ms/);
    expect(() => readSettings(shardSettings, ['--shard', 'a.b'], {})).toThrow(SettingsError);
    expect(() => readSettings(shardSettings, ['--cache-entries-max', '0'], {})).toThrow(/--cache-entries-max/);
  });
});
