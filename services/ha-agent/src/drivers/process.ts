// The `process` driver: a VM is the workload program (src/workload/main.ts), a Node
// process that writes a counter and verified blocks to its first disk through the
// host's gateway over NBD. It is up once it has opened its disk, read its counter and
// verified the blocks behind it (`ready <vm> counter <n>`).
import { ErrorCode, StrataError } from '@strata/errors';
import { spawnVm, waitUntilUp, type VmDriver, type VmInstance, type VmLaunch } from './driver';

/** The workload's exit code when it could not open or read its disk. */
const EXIT_INACCESSIBLE = 3;

export interface ProcessDriverOptions {
  /** The built workload program (services/ha-agent/dist/workload/main.js). */
  workloadScript: string;
  /** Pause between two counters. */
  intervalMs: number;
  /** Most time from spawn to `ready` (opening the disk may wait for a failover). */
  startTimeoutMs: number;
}

export class ProcessDriver implements VmDriver {
  constructor(private readonly options: ProcessDriverOptions) {}

  async start(launch: VmLaunch, spawned: (vm: VmInstance) => void): Promise<VmInstance> {
    const disk = launch.disks[0];
    if (disk === undefined) throw new StrataError(ErrorCode.INVALID, `vm ${launch.name} has no vDisk: a process VM writes to its first vDisk`);
    const tls = launch.nbdTlsClientDir === undefined ? [] : ['--nbd-tls-dir', launch.nbdTlsClientDir];
    const args = [this.options.workloadScript, '--vm', launch.name, '--nbd-host', launch.nbdHost, '--nbd-port', String(launch.nbdPort), '--export', disk.exportName, '--interval-ms', String(this.options.intervalMs), ...tls];
    const vm = spawnVm(process.execPath, args, launch);
    spawned(vm);
    return waitUntilUp(vm, (line) => line.startsWith(`ready ${launch.name} `), 0, this.options.startTimeoutMs, [EXIT_INACCESSIBLE]);
  }
}
