// `strata status`, the space part: each disk's used bytes against its capacity and
// each container's, from the disks' usage reports (hb, disk.<id>), with the disks and
// containers that are full or past their warning threshold named. The thresholds are
// the config service's defaults (85% warns; full without room for a 16 MiB extent
// group), or STRATA_SPACE_WARN_PERCENT and STRATA_SPACE_FULL_FREE_BYTES when the
// cluster runs with others.
import type { NatsConnection } from '@nats-io/transport-node';
import type { ConfigClient } from '@strata/config-client';
import { openBucket } from '@strata/kv';
import { buckets, diskUsage, keys, type DiskUsage } from '@strata/proto';
import { SPACE_THRESHOLDS_DEFAULT, checkThresholds, formatBytes, spaceReport, type SpaceReport, type SpaceThresholds } from '@strata/space';
import { UsageError } from './units';

export function spaceThresholdsFrom(env: Record<string, string | undefined>): SpaceThresholds {
  const number = (name: string, fallback: number): number => {
    const text = env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isFinite(value)) throw new UsageError(`${name}: "${text}" is not a number`);
    return value;
  };
  try {
    return checkThresholds({
      warnPercent: number('STRATA_SPACE_WARN_PERCENT', SPACE_THRESHOLDS_DEFAULT.warnPercent),
      fullFreeBytes: number('STRATA_SPACE_FULL_FREE_BYTES', SPACE_THRESHOLDS_DEFAULT.fullFreeBytes),
    });
  } catch (err) {
    throw new UsageError(`STRATA_SPACE_*: ${(err as Error).message}`);
  }
}

export async function readSpace(client: ConfigClient, nc: NatsConnection, t: SpaceThresholds): Promise<SpaceReport> {
  const hb = await openBucket(nc, buckets.hb, diskUsage);
  const [disks, nodes, containers] = await Promise.all([client.list('disk'), client.list('node'), client.list('container')]);
  const usage = new Map<bigint, DiskUsage>();
  await Promise.all(
    disks.map(async (d) => {
      const got = await hb.get(keys.diskUsage(d.id));
      if (got !== null) usage.set(d.id, got.value);
    }),
  );
  return spaceReport({ disks, nodes, containers }, (id) => usage.get(id), t);
}

/** The lines `strata status` prints about space. */
export function formatSpace(report: SpaceReport): string[] {
  const lines: string[] = [];
  const flag = (state: string): string => (state === 'ok' ? '' : ` ${state.toUpperCase()}`);
  for (const d of report.disks) {
    const used = d.usedBytes === undefined ? '?' : formatBytes(d.usedBytes);
    lines.push(`disk ${d.name} (${d.node}): ${used} used of ${formatBytes(d.capacityBytes)}${flag(d.state)}${d.state === 'ok' ? '' : `: ${d.reason}`}`);
  }
  for (const c of report.containers) {
    lines.push(`container ${c.name} (RF ${c.replicationFactor}): ${formatBytes(c.usedBytes)} used of ${formatBytes(c.capacityBytes)}, ${formatBytes(c.placeableBytes)} placeable${flag(c.state)}${c.state === 'ok' ? '' : `: ${c.reason}`}`);
  }
  const full = [...report.disks.filter((d) => d.state === 'full').map((d) => `disk ${d.name}`), ...report.containers.filter((c) => c.state === 'full').map((c) => `container ${c.name}`)];
  if (full.length > 0) lines.push(`full: ${full.join(', ')} (writes there get NO_SPACE until space is freed: strata vdisk rm, then strata vdisk sweep; or add a disk)`);
  return lines;
}
