// The extent store's settings: defaults, flags and variables, and start-up errors that
// name the flag to fix.
import { readSettings, SettingsError } from '@strata/actor';
import { extentStoreSettings } from '../src/settings';

describe('extent store settings', () => {
  it('needs the node name and defaults the rest', () => {
    expect(readSettings(extentStoreSettings, ['--node', 'n1'], {})).toMatchObject({
      node: 'n1',
      usageReportIntervalMs: 2_000,
      diskRefreshIntervalMs: 2_000,
      requestsInFlightMax: 256,
      egroupSizeMaxBytes: 64 * 2 ** 20,
    });
    expect(readSettings(extentStoreSettings, [], { STRATA_NODE: 'n2', STRATA_USAGE_REPORT_INTERVAL_MS: '500' })).toMatchObject({ node: 'n2', usageReportIntervalMs: 500 });
  });

  it('stops with a message that names the flag', () => {
    expect(() => readSettings(extentStoreSettings, [], {})).toThrow(SettingsError);
    expect(() => readSettings(extentStoreSettings, [], {})).toThrow(/--node \(STRATA_NODE\): is required/);
    expect(() => readSettings(extentStoreSettings, ['--node', 'Bad Name'], {})).toThrow(/--node \(STRATA_NODE\): must be 1-63 characters/);
    expect(() => readSettings(extentStoreSettings, ['--node', 'n1', '--disk-refresh-interval-ms', '0'], {})).toThrow(/--disk-refresh-interval-ms/);
    expect(() => readSettings(extentStoreSettings, ['--node', 'n1', '--colour', 'red'], {})).toThrow(/Unknown option '--colour'/);
  });
});
