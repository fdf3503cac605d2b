// `strata node drain`, `strata disk drain` and the removals that follow them: a node
// or disk is marked draining in the configuration (`drainingSinceMs` in its spec, a
// tentative state that survives restarts), the curator moves every replica off it
// (copy first, then drop), and the command waits, with progress lines, until the
// extent-group map names none of its disks any more. The decisions are pure
// (drainRefusal, nodeRmRefusal, progressLine); `waitDrained` does the waiting.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError } from '@strata/errors';
import type { ObjectOf } from '@strata/proto';
import { WAIT_ENDED } from './client';
import { curatorScan, curatorStatus, formatDuration } from './curator';
import { holdingsOf, readEgroupEntries, type DiskHoldings } from './disk-rm';
import { formatSize, listNames } from './units';

/** How often the waiting command reads the map, and asks for a scan (moves that failed are planned again by the next one). */
const POLL_MS = 1_000;
const SCAN_EVERY_MS = 5_000;

/**
 * Why draining `disks` would leave some container unable to keep its copies, or
 * undefined: the nodes with a disk that is not leaving must be at least the largest RF.
 */
export function drainRefusal(what: string, leaving: ReadonlySet<bigint>, disks: readonly ObjectOf<'disk'>[], nodes: readonly ObjectOf<'node'>[], containers: readonly ObjectOf<'container'>[]): StrataError | undefined {
  const drainingNodes = new Set(nodes.filter((n) => n.spec.drainingSinceMs !== undefined).map((n) => n.id));
  const staying = new Set(disks.filter((d) => !leaving.has(d.id) && d.spec.drainingSinceMs === undefined && !drainingNodes.has(d.spec.node)).map((d) => d.spec.node));
  const worst = containers.reduce<ObjectOf<'container'> | undefined>((w, c) => (w === undefined || c.spec.replicationFactor > w.spec.replicationFactor ? c : w), undefined);
  if (worst === undefined || staying.size >= worst.spec.replicationFactor) return undefined;
  return new StrataError(
    ErrorCode.CONFLICT,
    `draining ${what} would leave ${staying.size} node${staying.size === 1 ? '' : 's'} with a disk that is not draining, fewer than the ${worst.spec.replicationFactor} copies container ${worst.name} keeps on distinct nodes; add a node or disk first`,
  );
}

/** The refusal of removing node `name` while its disks hold `held`; undefined when they hold nothing. */
export function nodeRmRefusal(name: string, held: DiskHoldings): StrataError | undefined {
  if (held.egroups === 0) return undefined;
  return new StrataError(
    ErrorCode.CONFLICT,
    `node ${name} holds replicas of ${held.egroups} extent group${held.egroups === 1 ? '' : 's'} (${formatSize(held.bytes)}): "strata node drain ${name} --wait" moves them to other nodes first; use --force to remove it anyway (each of them is then a replica short until the curator copies it again)`,
  );
}

/** The refusal of removing node `name` while VMs are defined on a host it serves (their storage would go with it). */
export function nodeHostRefusal(name: string, hosts: readonly ObjectOf<'host'>[], vms: readonly ObjectOf<'vm'>[]): StrataError | undefined {
  const ids = new Set(hosts.map((h) => h.id));
  const on = vms.filter((v) => ids.has(v.spec.host));
  if (on.length === 0) return undefined;
  return new StrataError(ErrorCode.CONFLICT, `node ${name} serves host ${hosts.map((h) => h.name).join(', ')}, where VMs ${listNames(on.map((v) => v.name))} are defined; move or remove them first`);
}

/** One progress line: `node n2: 12 extent groups (48 MiB) left, 3.1 MiB/s, about 15 s to go`. */
export function progressLine(what: string, held: DiskHoldings, rate?: { bytesPerSec: number; etaMs?: number }): string {
  if (held.egroups === 0) return `${what}: drained, it holds no replica`;
  const speed = rate === undefined || rate.bytesPerSec === 0 ? '' : `, ${formatSize(rate.bytesPerSec)}/s`;
  const eta = rate?.etaMs === undefined ? '' : `, about ${formatDuration(rate.etaMs)} to go`;
  return `${what}: ${held.egroups} extent group${held.egroups === 1 ? '' : 's'} (${formatSize(held.bytes)}) left${speed}${eta}`;
}

/** Sets or clears `drainingSinceMs` on a node or disk (compare-and-set on its revision); false when it was so already. */
export async function markDraining(client: ConfigClient, kind: 'node' | 'disk', name: string, on: boolean, nowMs: number): Promise<boolean> {
  const obj = await client.get({ kind, name });
  const spec = obj.spec as { drainingSinceMs?: number } & Record<string, unknown>;
  if ((spec.drainingSinceMs !== undefined) === on) return false;
  const { drainingSinceMs: _was, ...rest } = spec;
  await client.update({ kind, name, spec: on ? { ...rest, drainingSinceMs: nowMs } : rest, revision: obj.revision });
  return true;
}

/** The ids of the disks of node `nodeId`. */
export function disksOfNode(disks: readonly ObjectOf<'disk'>[], nodeId: bigint): Set<bigint> {
  return new Set(disks.filter((d) => d.spec.node === nodeId).map((d) => d.id));
}

/**
 * Waits until the extent-group map names none of `disks`, asking the curator for a
 * scan now and then, printing a line whenever what is left changes; TIMEOUT after
 * `timeoutMs` (the drain goes on: the disks stay marked).
 */
export async function waitDrained(io: { bus: Bus; nc: NatsConnection; print: (line: string) => void }, what: string, disks: ReadonlySet<bigint>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastLine = '';
  let lastScanMs = -Infinity;
  for (;;) {
    const held = holdingsOf(await readEgroupEntries(io.nc), disks);
    const status = held.egroups === 0 ? undefined : await curatorStatus(io.bus).catch(() => undefined);
    const line = progressLine(what, held, status?.progress);
    if (line !== lastLine) io.print(line);
    lastLine = line;
    if (held.egroups === 0) {
      // One more scan: it announces the end (curator.drain.done).
      await curatorScan(io.bus, false).catch(() => undefined);
      return;
    }
    if (Date.now() >= deadline) {
      throw new StrataError(ErrorCode.TIMEOUT, `${what} still holds ${held.egroups} extent groups after ${formatDuration(timeoutMs)}; the drain goes on ("strata curator status" shows it)`, { hint: WAIT_ENDED });
    }
    if (Date.now() - lastScanMs >= SCAN_EVERY_MS) {
      lastScanMs = Date.now();
      // Not awaited past its answer: the copies it queues run in the curator.
      await curatorScan(io.bus, false).catch(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
