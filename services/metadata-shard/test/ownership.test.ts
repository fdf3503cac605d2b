// The key of a vDisk's ownership record read back into its id, so that the shard's
// fence forgets an accepted epoch when that record changes; any other key of `own`
// (partition and role leases, takeovers) is ignored.
import { keys } from '@strata/proto';
import { vdiskOfOwnershipKey } from '../src/ownership';

describe('vdiskOfOwnershipKey', () => {
  it('reads the vDisk id of an ownership key, above 2^53 too', () => {
    expect(vdiskOfOwnershipKey(keys.vdiskOwnership(12349n))).toBe(12349n);
    expect(vdiskOfOwnershipKey(keys.vdiskOwnership(2n ** 63n + 5n))).toBe(2n ** 63n + 5n);
  });

  it('ignores every other key of own', () => {
    for (const key of [keys.mdPartition(7), keys.takeover(12349n), keys.configLeaderLease, 'vdisk.x', 'vdisk.012', 'vdisk.', 'vdisk.1.2']) {
      expect(vdiskOfOwnershipKey(key)).toBeUndefined();
    }
  });
});
