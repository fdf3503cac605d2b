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
      sliceBytes: 32 * 1024,
      openFilesMax: 256,
      syncReadMaxBytes: 64 * 1024,
    });
    expect(readSettings(extentStoreSettings, ['--node', 'n1', '--sync-read-max-bytes', '0'], {})).toMatchObject({ syncReadMaxBytes: 0 });
    expect(readSettings(extentStoreSettings, ['--node', 'n1', '--slice-bytes', '4096'], {})).toMatchObject({ sliceBytes: 4096 });
    expect(readSettings(extentStoreSettings, ['--node', 'n1'], { STRATA_SLICE_BYTES: '1048576' })).toMatchObject({ sliceBytes: 1024 * 1024 });
    expect(readSettings(extentStoreSettings, [], { STRATA_NODE: 'n2', STRATA_USAGE_REPORT_INTERVAL_MS: '500' })).toMatchObject({ node: 'n2', usageReportIntervalMs: 500 });
  });

  it('stops with a message that names the flag', () => {
    expect(() => readSettings(extentStoreSettings, [], {})).toThrow(SettingsError);
    expect(() => readSettings(extentStoreSettings, [], {})).toThrow(/--node \(STRATA_NODE\): is required/);
    expect(() => readSettings(extentStoreSettings, ['--node', 'Bad Name'], {})).toThrow(/--node \(STRATA_NODE\): must be 1-63 characters/);
    expect(() => readSettings(extentStoreSettings, ['--node', 'n1', '--disk-refresh-interval-ms', '0'], {})).toThrow(/--disk-refresh-interval-ms/);
    expect(() => readSettings(extentStoreSettings, ['--node', 'n1', '--colour', 'red'], {})).toThrow(/Unknown option '--colour'/);
    expect(() => readSettings(extentStoreSettings, ['--node', 'n1', '--sync-read-max-bytes', '-1'], {})).toThrow(/--sync-read-max-bytes/);
    // Format 1's extent table is gone, and its limit with it.
    expect(() => readSettings(extentStoreSettings, ['--node', 'n1', '--extents-per-egroup-max', '10'], {})).toThrow(/Unknown option '--extents-per-egroup-max'/);
  });

  it('takes a slice size only as a power of two from 4 KiB to 1 MiB, small enough slices for the largest extent group', () => {
    const bad = (flags: string[]): (() => unknown) => () => readSettings(extentStoreSettings, ['--node', 'n1', ...flags], {});
    expect(bad(['--slice-bytes', '2048'])).toThrow('bad setting: --slice-bytes (STRATA_SLICE_BYTES): must be a whole number of bytes from 4096 to 1048576, not 2048');
    expect(bad(['--slice-bytes', '2097152'])).toThrow(/--slice-bytes \(STRATA_SLICE_BYTES\): must be a whole number/);
    expect(bad(['--slice-bytes', '12288'])).toThrow('bad setting: --slice-bytes (STRATA_SLICE_BYTES): must be a power of two, not 12288');
    expect(bad(['--slice-bytes', 'big'])).toThrow(/--slice-bytes \(STRATA_SLICE_BYTES\): Invalid input: expected number/);
    // 1 GiB extent groups over 4 KiB slices would be 262144 slices: a 1 MiB sidecar per write.
    expect(bad(['--slice-bytes', '4096', '--egroup-size-max-bytes', String(1024 * 2 ** 20)])).toThrow(
      'bad setting: --slice-bytes (STRATA_SLICE_BYTES): is too small for extent groups of 1073741824 bytes: at most 65536 slices per extent group, so at least 16384 bytes',
    );
    expect(readSettings(extentStoreSettings, ['--node', 'n1', '--slice-bytes', '16384', '--egroup-size-max-bytes', String(1024 * 2 ** 20)], {})).toMatchObject({ sliceBytes: 16384 });
  });
});
