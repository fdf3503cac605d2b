// The power-on lease check (PROTOCOL.md section 12): an unshared vDisk that belongs to
// a VM is served only to that VM's current instance, which names itself in the export
// name, `<vdisk>@<vm>.<epoch>` (`db@12360.4`): the gateway opens it only while the VM's
// power-on lease (`poweron.<vm>` in `ha`) is held at that epoch by a host of this
// gateway's node, and fails every request of the connection once that is no longer so.
// Under its plain name, such a vDisk is served only while none of its VMs runs (a tool
// reading a stopped VM's disk), and only until one does. A vDisk of no VM, or a shared
// one, is served as before.
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError } from '@strata/errors';
import type { WatchCache } from '@strata/kv';
import type { LeaseRecord } from '@strata/lease';
import { keys, objectName, type ObjectOf } from '@strata/proto';

export interface ExportClaim {
  vm: bigint;
  epoch: number;
}

/** `db@12360.4` -> the vDisk `db` claimed by VM 12360 at epoch 4; `db` -> no claim; undefined when it is neither. */
export function parseExportName(name: string): { vdisk: string; claim?: ExportClaim } | undefined {
  const at = name.indexOf('@');
  const vdisk = at < 0 ? name : name.slice(0, at);
  if (!objectName.safeParse(vdisk).success) return undefined;
  if (at < 0) return { vdisk };
  const m = /^(\d{1,20})\.(\d{1,15})$/.exec(name.slice(at + 1));
  if (m === null) return undefined;
  return { vdisk, claim: { vm: BigInt(m[1]!), epoch: Number(m[2]) } };
}

/** Says why the connection may no longer be served, or undefined while it may. */
export type StillValid = () => string | undefined;

export interface ExportGuard {
  /** Admits an open of `vdisk` (throws FENCED with the reason when refused) and returns the check of every later request. */
  admit(vdisk: ObjectOf<'vdisk'>, claim: ExportClaim | undefined): Promise<StillValid>;
}

export interface PowerOnGuardDeps {
  /** A watched copy of `poweron.>` in `ha`. */
  leases: WatchCache<LeaseRecord>;
  /** A fresh read of one lease, for an open that the watched copy may lag behind. */
  readLease: (key: string) => Promise<{ value: LeaseRecord; revision: number } | null>;
  config: Pick<ConfigClient, 'list' | 'get'>;
  /** This gateway's node. */
  node: string;
}

export class PowerOnGuard implements ExportGuard {
  constructor(private readonly d: PowerOnGuardDeps) {}

  async admit(vdisk: ObjectOf<'vdisk'>, claim: ExportClaim | undefined): Promise<StillValid> {
    const refuse = (why: string): never => {
      throw new StrataError(ErrorCode.FENCED, why);
    };
    if (vdisk.spec.shared) return claim === undefined ? () => undefined : refuse(`vdisk ${vdisk.name} is shared: open it by its plain name`);
    const vms = (await this.d.config.list('vm')).filter((v) => v.spec.vdisks.includes(vdisk.id));
    if (vms.length === 0) return claim === undefined ? () => undefined : refuse(`vdisk ${vdisk.name} belongs to no VM: open it by its plain name`);
    if (claim === undefined) return this.admitPlain(vdisk, vms, refuse);
    const vm = vms.find((v) => v.id === claim.vm) ?? refuse(`vdisk ${vdisk.name} is not a disk of vm ${claim.vm}`);
    const hosts = await this.hostsOfNode();
    const key = keys.powerOnLease(vm.id);
    const fresh = await this.d.readLease(key);
    const judge = (lease: LeaseRecord | undefined): string | undefined => {
      if (lease === undefined || lease.holder === '') return `the power-on lease of vm ${vm.name} is not held`;
      if (lease.epoch !== claim.epoch) return `the power-on lease of vm ${vm.name} is at epoch ${lease.epoch}, not ${claim.epoch}`;
      if (!hosts.has(lease.holder)) return `the power-on lease of vm ${vm.name} is held by ${lease.holder}, not by a host of node ${this.d.node}`;
      return undefined;
    };
    const refused = judge(fresh?.value);
    if (refused !== undefined) refuse(`vdisk ${vdisk.name}: ${refused}`);
    // The watched copy may lag the read above: until it reaches that revision, the read stands.
    const admittedAt = fresh!.revision;
    return () => {
      const e = this.d.leases.get(key);
      if (e !== undefined && e.revision < admittedAt) return undefined;
      const why = judge(e?.value);
      return why === undefined ? undefined : `vdisk ${vdisk.name}: ${why}`;
    };
  }

  private admitPlain(vdisk: ObjectOf<'vdisk'>, vms: ObjectOf<'vm'>[], refuse: (why: string) => never): StillValid {
    const check: StillValid = () => {
      for (const vm of vms) {
        const lease = this.d.leases.get(keys.powerOnLease(vm.id))?.value;
        if (lease !== undefined && lease.holder !== '') {
          return `vdisk ${vdisk.name} belongs to vm ${vm.name}, which runs (power-on lease epoch ${lease.epoch} held by ${lease.holder}): only that instance may open it, as ${vdisk.name}@${vm.id}.${lease.epoch}`;
        }
      }
      return undefined;
    };
    const why = check();
    if (why !== undefined) refuse(why);
    return check;
  }

  private async hostsOfNode(): Promise<Set<string>> {
    const node = await this.d.config.get({ kind: 'node', name: this.d.node });
    return new Set((await this.d.config.list('host')).filter((h) => h.spec.node === node.id).map((h) => h.name));
  }
}
