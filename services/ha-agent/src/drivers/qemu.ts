// The `qemu` driver: a VM is a QEMU guest under software emulation (TCG), booting
// the kernel and initramfs built by infra/scripts/build-guest.sh. Its disks are its
// vDisks over NBD from the host's gateway, each export named with the VM's power-on
// lease, attached as virtio disks (/dev/vda first). Its serial console (ttyS0) is
// its output. The guest's init counts on its first disk (infra/guest/init.sh) and is
// up once it prints `ready <vm> counter <n>`. QEMU connects to every NBD export
// before the guest starts and exits when one cannot be opened.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, StrataError } from '@strata/errors';
import { spawnVm, waitUntilUp, type VmDriver, type VmInstance, type VmLaunch } from './driver';

export interface QemuDriverOptions {
  /** `qemu-system-x86_64`, or a path. */
  qemuBinary: string;
  /** The directory build-guest.sh printed: it holds vmlinuz and initrd.img. */
  guestDir: string;
  /** Pause between two counters in the guest. */
  intervalMs: number;
  /** Most time from spawn to `ready` (boot included; about 2 s here). */
  startTimeoutMs: number;
}

const MiB = 1024 * 1024;
/** The id of QEMU's TLS credentials object for the NBD disks. */
const NBD_TLS_OBJECT = 'nbd-tls';

/** QEMU's command line for a launch (exported for tests). */
export function qemuArgs(launch: VmLaunch, o: QemuDriverOptions): string[] {
  const args = [
    '-name', `strata-vm-${launch.name},process=strata-vm-${launch.name}`,
    // qboot (QEMU's minimal firmware, found in its data directory) instead of SeaBIOS:
    // SeaBIOS reads the disk before it boots the kernel, and a restarted VM's disk may
    // not be served yet (its owner's failover): with a 4 s delay per NBD read, the guest
    // printed its first line 4 s later under SeaBIOS than under qboot.
    '-bios', 'qboot.rom',
    '-machine', 'q35,accel=tcg', '-cpu', 'max',
    '-smp', String(launch.cpuCount),
    '-m', `${Math.max(64, Math.floor(launch.memoryBytes / MiB))}M`,
    '-nodefaults', '-no-reboot', '-display', 'none', '-serial', 'stdio', '-monitor', 'none',
    '-kernel', join(o.guestDir, 'vmlinuz'), '-initrd', join(o.guestDir, 'initrd.img'),
    '-append', `console=ttyS0 quiet panic=-1 strata.vm=${launch.name} strata.interval_ms=${o.intervalMs}`,
  ];
  // A gateway that requires TLS: QEMU's x509 credentials as a client (it sends
  // client-cert.pem and checks the gateway's certificate against ca-cert.pem).
  const tls = launch.nbdTlsClientDir === undefined ? '' : `,tls-creds=${NBD_TLS_OBJECT}`;
  if (launch.nbdTlsClientDir !== undefined) args.push('-object', `tls-creds-x509,id=${NBD_TLS_OBJECT},endpoint=client,dir=${launch.nbdTlsClientDir}`);
  launch.disks.forEach((d, i) => {
    args.push('-blockdev', `driver=nbd,node-name=d${i},server.type=inet,server.host=${launch.nbdHost},server.port=${launch.nbdPort},export=${d.exportName}${tls}`);
    args.push('-device', `virtio-blk-pci,drive=d${i}`);
  });
  return args;
}

export class QemuDriver implements VmDriver {
  constructor(private readonly options: QemuDriverOptions) {}

  async start(launch: VmLaunch, spawned: (vm: VmInstance) => void): Promise<VmInstance> {
    if (launch.disks.length === 0) throw new StrataError(ErrorCode.INVALID, `vm ${launch.name} has no vDisk: a qemu VM boots with its first vDisk as /dev/vda`);
    for (const f of ['vmlinuz', 'initrd.img']) {
      if (!existsSync(join(this.options.guestDir, f))) {
        throw new StrataError(ErrorCode.INTERNAL, `no guest ${f} in ${this.options.guestDir}: run infra/scripts/build-guest.sh and pass the directory it prints (--guest-dir)`);
      }
    }
    const vm = spawnVm(this.options.qemuBinary, qemuArgs(launch, this.options), launch);
    spawned(vm);
    // QEMU exits with code 1 for any start-up failure (an NBD export it cannot open
    // among them), so an early exit is not classed as inaccessible: it is retried.
    return waitUntilUp(vm, (line) => line.trim().startsWith(`ready ${launch.name} `), 0, this.options.startTimeoutMs, []);
  }
}
