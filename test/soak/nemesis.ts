// The soak's nemesis: a seeded schedule of single faults, one at a time, against the
// processes of a `strata up` cluster. planFaults is pure (the seed decides every
// fault: its moment, its kind, its target role and how long a pause lasts); the
// executor finds the role's process by its command line when the fault is due.

import { seededRandom } from '../harness/random';

export type FaultKind = 'kill' | 'pause';

export interface PlannedFault {
  /** Time since the start of the faults, ms. */
  atMs: number;
  kind: FaultKind;
  /** A role of the cluster (`nats-2`, `config-1`, `n3-vdisk-controller`, `n1-metadata-shard`). */
  role: string;
  /** For a pause: how long the process stays stopped (SIGSTOP, then SIGCONT). */
  pauseMs: number;
}

/** The roles of a `strata up` cluster of `nodes` nodes, `natsServers` servers and `configReplicas` replicas. */
export function clusterRoles(nodes: number, natsServers: number, configReplicas: number): string[] {
  const actors = ['metadata-shard', 'extent-store', 'vdisk-controller', 'admission', 'io-director', 'gateway'];
  return [
    ...Array.from({ length: natsServers }, (_, i) => `nats-${i + 1}`),
    ...Array.from({ length: configReplicas }, (_, i) => `config-${i + 1}`),
    ...Array.from({ length: nodes }, (_, n) => actors.map((a) => `n${n + 1}-${a}`)).flat(),
  ];
}

/** A pattern that matches the command line of `role`'s process (see cli/src/up.ts). */
export function roleCommandLine(role: string): RegExp {
  let m = /^nats-(\d+)$/.exec(role);
  if (m !== null) return new RegExp(`nats-server -c \\S*/nats/nats-${m[1]}/nats\\.conf`);
  m = /^config-(\d+)$/.exec(role);
  if (m !== null) return new RegExp(`services/config/dist/main\\.js --replica config-${m[1]}( |$)`);
  m = /^n(\d+)-metadata-shard$/.exec(role);
  if (m !== null) return new RegExp(`services/metadata-shard/dist/main\\.js --shard md-${m[1]}( |$)`);
  m = /^n(\d+)-([a-z-]+)$/.exec(role);
  if (m !== null) return new RegExp(`services/${m[2]}/dist/main\\.js --node n${m[1]}( |$)`);
  throw new Error(`unknown role ${role}`);
}

export interface FaultPlanOptions {
  seed: number;
  /** Faults start within [0, durationMs). */
  durationMs: number;
  roles: readonly string[];
  /** Mean gap between the end of one fault and the start of the next. */
  meanGapMs: number;
  /** Pauses last between these bounds. */
  pauseMinMs: number;
  pauseMaxMs: number;
}

/**
 * The schedule: gaps drawn uniformly in [meanGap/2, 3 meanGap/2]; each fault a kill or
 * a pause with equal odds, of a role drawn uniformly. A pause's length counts against
 * the time, so faults never overlap in the plan.
 */
export function planFaults(o: FaultPlanOptions): PlannedFault[] {
  const random = seededRandom(o.seed);
  const faults: PlannedFault[] = [];
  let at = 0;
  for (;;) {
    at += Math.round(o.meanGapMs * (0.5 + random()));
    if (at >= o.durationMs) return faults;
    const kind: FaultKind = random() < 0.5 ? 'kill' : 'pause';
    const role = o.roles[Math.floor(random() * o.roles.length)]!;
    const pauseMs = kind === 'pause' ? Math.round(o.pauseMinMs + random() * (o.pauseMaxMs - o.pauseMinMs)) : 0;
    faults.push({ atMs: at, kind, role, pauseMs });
    at += pauseMs;
  }
}
