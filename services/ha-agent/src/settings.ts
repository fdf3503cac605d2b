// The HA agent's settings (flags or STRATA_* variables), checked at start-up. The
// relations between the timings are what makes "never two instances" and the
// isolation bound hold; a setting that breaks one stops the agent with a message.
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { millis } from '@strata/actor';
import { objectName } from '@strata/proto';

/** The clock drift bound of every lease (libs/lease/src/decide.ts). */
export const DRIFT_FRACTION = 0.1;

const count = (defaultValue: number): z.ZodDefault<z.ZodCoercedNumber<unknown>> => z.coerce.number().int().positive().default(defaultValue);

export const agentSettings = z
  .object({
    /** The host this agent runs on, as named in the config service (`n1`); required. */
    host: z.string({ error: 'is required: the name of this host in the config service, e.g. --host n1' }).pipe(objectName),
    /** The host's gateway, which serves its VMs' disks over NBD. */
    nbdHost: z.string().min(1).default('127.0.0.1'),
    nbdPort: z.coerce.number().int().min(1).max(65_535).default(10_809),
    /**
     * When the gateway requires TLS: the NBD client certificate directory (ca-cert.pem,
     * client-cert.pem, client-key.pem; `strata auth init` writes nbd-client/) its VMs use.
     */
    nbdTlsClientDir: z.string().min(1).optional(),
    /** Where VM consoles (`<vm>.console`) go. */
    runDir: z.string().min(1).default(join(tmpdir(), 'strata-ha')),
    /** How often agents publish their heartbeat (its own name: the nodes' heartbeatIntervalMs is another setting). */
    haHeartbeatIntervalMs: millis(500),
    /** The master calls a host dead after this long without heartbeats or record renewals. */
    hostDeadTimeoutMs: millis(3_000),
    /** An agent that hears no other agent (and cannot reach storage) this long is isolated. */
    isolationTimeoutMs: millis(2_000),
    /** How often the agent rewrites its host record. */
    recordIntervalMs: millis(1_000),
    /** The master lease `role.ha`. */
    masterLeaseTtlMs: millis(3_000),
    /** A VM's power-on lease lasts this long without renewal. */
    powerOnLeaseTtlMs: millis(4_000),
    powerOnRenewMs: millis(1_000),
    /** A VM is powered off this long before its lease could expire. */
    powerOffMarginMs: millis(500),
    /** How often the master looks at every VM. */
    lookIntervalMs: millis(250),
    /** Power-ons the master has in flight at most. */
    restartsInFlightMax: count(4),
    /** Delay after a failed restart, doubled after each further failure, up to retryDelayMaxMs. */
    retryDelayMs: millis(1_000),
    retryDelayMaxMs: millis(30_000),
    /** Failed restarts of one VM after which HA gives up. */
    restartAttemptsMax: count(5),
    /** Bound of one power-on at the master: the host starts the VM and waits for it to come up. */
    powerOnTimeoutMs: millis(60_000),
    /** The VM's most time from spawn to up (its disk opened, the guest booted). */
    vmStartTimeoutMs: millis(45_000),
    /** The workload's pause between two counters (process and qemu VMs). */
    vmIntervalMs: z.coerce.number().int().nonnegative().default(100),
    /** The workload program of process VMs. */
    workloadScript: z.string().min(1).default(resolve(__dirname, 'workload', 'main.js')),
    qemuBinary: z.string().min(1).default('qemu-system-x86_64'),
    /** The guest of qemu VMs: the directory infra/scripts/build-guest.sh prints. */
    guestDir: z.string().min(1).optional(),
    /** For tests: a file of injected faults of the HA network and of storage (ha-link.ts). */
    haFaultsFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((s) => s.powerOnRenewMs * 2 <= s.powerOnLeaseTtlMs * (1 - DRIFT_FRACTION) - s.powerOffMarginMs, {
    message: 'powerOnRenewMs must leave room for two renewals before a VM is powered off (powerOnLeaseTtlMs * 0.9 - powerOffMarginMs)',
    path: ['powerOnRenewMs'],
  })
  .refine((s) => s.isolationTimeoutMs + s.haHeartbeatIntervalMs + s.powerOffMarginMs <= s.powerOnLeaseTtlMs * (1 - DRIFT_FRACTION), {
    message: 'isolationTimeoutMs + haHeartbeatIntervalMs + powerOffMarginMs must not exceed powerOnLeaseTtlMs * 0.9, so an isolated host powers its VMs off before the master may restart them',
    path: ['isolationTimeoutMs'],
  })
  .refine((s) => s.isolationTimeoutMs > 2 * s.haHeartbeatIntervalMs && s.hostDeadTimeoutMs > 2 * s.haHeartbeatIntervalMs, {
    message: 'isolationTimeoutMs and hostDeadTimeoutMs must exceed two heartbeat intervals',
    path: ['isolationTimeoutMs'],
  })
  .refine((s) => s.retryDelayMs <= s.retryDelayMaxMs, { message: 'retryDelayMs must not exceed retryDelayMaxMs', path: ['retryDelayMs'] });
export type AgentSettings = z.output<typeof agentSettings>;

/** Where build-guest.sh keeps guests by default, for the message when none is given. */
export const DEFAULT_GUEST_PARENT = join(homedir(), '.cache', 'strata', 'guest');
