// QEMU's command line for a VM's disks: plain NBD, or NBD over TLS with the host's
// client certificates when the gateway requires it.
import { qemuArgs } from '../src/drivers/qemu';
import type { VmLaunch } from '../src/drivers/driver';

const launch: VmLaunch = {
  vm: 1n,
  name: 'web',
  cpuCount: 1,
  memoryBytes: 256 * 1024 * 1024,
  powerOnEpoch: 1,
  disks: [{ vdisk: 'web-root', exportName: 'web-root@1.1' }, { vdisk: 'web-data', exportName: 'web-data@1.1' }],
  nbdHost: '10.0.0.5',
  nbdPort: 10809,
  runDir: '/run/strata-ha',
};
const options = { qemuBinary: 'qemu-system-x86_64', guestDir: '/guest', intervalMs: 100, startTimeoutMs: 45_000 };

const valuesOf = (args: string[], flag: string): string[] => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));

describe('qemuArgs', () => {
  test('plain NBD: one blockdev per disk, no TLS object', () => {
    const args = qemuArgs(launch, options);
    expect(valuesOf(args, '-blockdev')).toEqual([
      'driver=nbd,node-name=d0,server.type=inet,server.host=10.0.0.5,server.port=10809,export=web-root@1.1',
      'driver=nbd,node-name=d1,server.type=inet,server.host=10.0.0.5,server.port=10809,export=web-data@1.1',
    ]);
    expect(valuesOf(args, '-object')).toEqual([]);
  });

  test('with a client certificate directory: one tls-creds-x509 client object, named by every disk', () => {
    const args = qemuArgs({ ...launch, nbdTlsClientDir: '/etc/strata/nbd-client' }, options);
    expect(valuesOf(args, '-object')).toEqual(['tls-creds-x509,id=nbd-tls,endpoint=client,dir=/etc/strata/nbd-client']);
    expect(valuesOf(args, '-blockdev').map((b) => b.endsWith(',tls-creds=nbd-tls'))).toEqual([true, true]);
  });
});
