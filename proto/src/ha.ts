// The HA agents' messages and state (proto/ha.cddl): per-VM protection state, host
// records, power-on leases and restart records in the `ha` bucket; heartbeats
// between agents; requests to an agent (`strata.ha.agent.<host>.<op>`) and to the
// HA master (`strata.ha.master.<op>`).
import { z } from 'zod';
import { u64, uint } from '@strata/codec';
import { RestartPriority, objectName } from './config';

/** What the operator asked for a VM: powered on or off. */
export const VmPower = { on: 'on', off: 'off' } as const;
export type VmPower = (typeof VmPower)[keyof typeof VmPower];

/** The service a SET of protection state comes from (its tag). */
export const HaService = { master: 'ha-master', agent: 'ha-agent' } as const;
export type HaService = (typeof HaService)[keyof typeof HaService];

/**
 * Where a VM stands in a restart. The restart list is every step but `wait-access`;
 * `wait-access` is the wait list (its vDisks are not all accessible).
 */
export const RestartStep = {
  /** To be placed on a host with capacity. */
  pending: 'pending',
  /** A host has been told to power it on. */
  poweringOn: 'powering-on',
  /** The last power-on failed; tried again at `retryAtMs`. */
  retryDelay: 'retry-delay',
  /** No host has the capacity; waits for a capacity change. */
  waitCapacity: 'wait-capacity',
  /** Its vDisks are not all accessible; waits for an accessibility change. */
  waitAccess: 'wait-access',
} as const;
export type RestartStep = (typeof RestartStep)[keyof typeof RestartStep];

/** Requests to a host's agent: `strata.ha.agent.<host>.<op>`. */
export const HaAgentOp = { powerOn: 'power-on', powerOff: 'power-off', set: 'set', setRestart: 'set-restart' } as const;
export type HaAgentOp = (typeof HaAgentOp)[keyof typeof HaAgentOp];

/** Requests to the HA master: `strata.ha.master.<op>`. */
export const HaMasterOp = { start: 'start', stop: 'stop', status: 'status' } as const;
export type HaMasterOp = (typeof HaMasterOp)[keyof typeof HaMasterOp];

/** A host as the master sees it. */
export const HostState = {
  /** Its heartbeats arrive. */
  alive: 'alive',
  /** No heartbeat over the HA network, but its host record in the `ha` bucket is renewed: cut off, not dead. */
  partitioned: 'partitioned',
  /** It says it is isolated (cut off from the master and every other host). */
  isolated: 'isolated',
  /** Neither heartbeats nor record renewals. */
  dead: 'dead',
  /** Not heard from since this master took over. */
  unknown: 'unknown',
} as const;
export type HostState = (typeof HostState)[keyof typeof HostState];

/** A VM as `strata vm ls` shows it. */
export const VmState = {
  running: 'running',
  stopped: 'stopped',
  /** On the restart list. */
  restarting: 'restarting',
  /** On the wait list. */
  waiting: 'waiting',
  /** Powered on by the operator but not running, and not restarted (not HA-protected, or HA gave up). */
  down: 'down',
  /** Its power-on lease is held by a host this master cannot hear yet, for less than the lease's TTL. */
  unknown: 'unknown',
} as const;
export type VmState = (typeof VmState)[keyof typeof VmState];

const hostName = objectName;

// ---- The `ha` bucket --------------------------------------------------------------------

/** Per-VM protection state, `vm.<id>`, written only through SET (the master, or an agent for it). */
export const vmProtection = z.strictObject({
  /** What the operator asked for: `on` after `strata vm start`, `off` after `strata vm stop`. */
  power: z.enum(VmPower),
  /** Restart the VM elsewhere when it stops running without being asked to (its spec's haProtected, while power is on). */
  protected: z.boolean(),
  /** The host it was last powered on at (`n2`); '' before the first power-on. */
  host: z.string(),
  /** The service that wrote this value. */
  service: z.enum(HaService),
  /** The host whose agent wrote it (`n1`). */
  setBy: z.string(),
  /** The master epoch it was written under. */
  haEpoch: uint,
  /** Why it changed: `operator start`, `not HA-protected: host n1 failed`. */
  reason: z.string(),
  atMs: uint,
});
export type VmProtection = z.output<typeof vmProtection>;

/** A VM a host runs, in its host record. */
export const hostedVm = z.strictObject({
  vm: u64,
  /** The epoch of the power-on lease it runs under. */
  powerOnEpoch: uint,
  /** The VM's process on the host. */
  pid: uint,
});

/** A host's record, `host.<name>`, rewritten by its agent every record interval: its capacity and what it runs. */
export const hostRecord = z.strictObject({
  host: hostName,
  /** Grows with every start of the agent. */
  incarnation: uint,
  /** Counts records within the incarnation: a record that stops changing belongs to a host that stopped renewing it. */
  seq: uint,
  atMs: uint,
  cpuCount: uint,
  memoryBytes: uint,
  vms: z.array(hostedVm).max(4096),
  /** The agent hears neither the master nor any other host and has applied its isolation response. */
  isolated: z.boolean(),
  /** How often the record is rewritten, ms. */
  intervalMs: uint,
});
export type HostRecord = z.output<typeof hostRecord>;

/** A VM on the restart list or the wait list, `restart.<vm>`: the restart machine's snapshot. */
export const restartRecord = z.strictObject({
  vm: u64,
  step: z.enum(RestartStep),
  /** Why the VM is restarted: `host n1 failed: its power-on lease (epoch 3) expired`. */
  cause: z.string(),
  /** Why it is at this step: `no host has 2 CPUs and 1 GiB free`. */
  reason: z.string(),
  priority: z.enum(RestartPriority),
  /** When it entered the list (unix-ms); the order within a priority. */
  listedAtMs: uint,
  /** Failed power-ons so far. */
  attempts: uint,
  /** The host told to power it on (step powering-on). */
  host: z.string().optional(),
  /** When to try again (step retry-delay), unix-ms. */
  retryAtMs: uint.optional(),
  /** Hosts where a power-on failed, tried last. */
  excluded: z.array(z.string()).max(1024),
  /** The master epoch that wrote it. */
  haEpoch: uint,
});
export type RestartRecord = z.output<typeof restartRecord>;

// ---- Heartbeats: strata.ha.hb.<host> ---------------------------------------------------

export const haHeartbeat = z.strictObject({
  host: hostName,
  incarnation: uint,
  seq: uint,
  /** True when the sender is the master. */
  master: z.boolean(),
  /** The master epoch the sender holds (master) or has last seen (slave); 0 for none. */
  haEpoch: uint,
  isolated: z.boolean(),
  intervalMs: uint,
});
export type HaHeartbeat = z.output<typeof haHeartbeat>;

// ---- Requests to an agent: strata.ha.agent.<host>.<op> --------------------------------

export const haPowerOnRequest = z.strictObject({
  vm: u64,
  /** The master's epoch: an agent refuses (FENCED) an order below the highest epoch it has seen. */
  haEpoch: uint,
  /**
   * The revision of `poweron.<vm>` the master found free or expired (0: no record).
   * The agent takes the lease by compare-and-set on exactly this revision.
   */
  leaseRevision: uint,
  reason: z.string(),
});
export const haPowerOnReply = z.strictObject({
  host: hostName,
  powerOnEpoch: uint,
  /** The revision of `poweron.<vm>` the host wrote when it took the lease. */
  leaseRevision: uint,
  pid: uint,
});
export type HaPowerOnReply = z.output<typeof haPowerOnReply>;

export const haPowerOffRequest = z.strictObject({ vm: u64, haEpoch: uint, reason: z.string() });
export const haPowerOffReply = z.strictObject({ wasRunning: z.boolean() });

/** A SET the master asks an agent to make for it (the master could not write the bucket). */
export const haSetRequest = z.strictObject({
  vm: u64,
  value: vmProtection,
  /** Compare-and-set: the revision the master read (0: create). */
  revision: uint,
});
export const haSetReply = z.strictObject({ revision: uint });

/** A write of a restart record the master asks an agent to make for it (the master could not write the bucket). */
export const haSetRestartRequest = z.strictObject({
  vm: u64,
  /** The record to store; absent, the record is deleted (the restart is over). */
  record: restartRecord.optional(),
  /** Compare-and-set: the revision the master stored last (0: create). */
  revision: uint,
  /** The master's epoch: an agent that has seen a newer master refuses. */
  haEpoch: uint,
});
export type HaSetRestartRequest = z.output<typeof haSetRestartRequest>;

// ---- Requests to the master: strata.ha.master.<op> ------------------------------------

export const haStartRequest = z.strictObject({ vm: u64 });
export const haStartReply = haPowerOnReply;
export const haStopRequest = z.strictObject({ vm: u64 });
export const haStopReply = z.strictObject({ wasRunning: z.boolean() });
export const haStatusRequest = z.strictObject({});

export const haHostStatus = z.strictObject({
  host: hostName,
  state: z.enum(HostState),
  cpuCount: uint,
  memoryBytes: uint,
  cpuUsed: uint,
  memoryUsedBytes: uint,
  /** Names of the VMs it runs. */
  vms: z.array(z.string()).max(4096),
});

export const haVmStatus = z.strictObject({
  vm: u64,
  name: z.string(),
  state: z.enum(VmState),
  /** Where it runs, or last ran; '' never. */
  host: z.string(),
  protected: z.boolean(),
  /** Why it is in this state. */
  reason: z.string(),
});

export const haStatusReply = z.strictObject({
  master: hostName,
  haEpoch: uint,
  hosts: z.array(haHostStatus),
  vms: z.array(haVmStatus),
  /** The restart list and the wait list, in restart order. */
  restarts: z.array(restartRecord),
});
export type HaStatusReply = z.output<typeof haStatusReply>;
