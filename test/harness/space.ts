// Helpers for the space tests (imported directly): the disks' usage reports, what a
// vDisk has left in the metadata, `own` and the oplog, the gateways' reports of open
// vDisks, and a qemu-io session that keeps one NBD connection open.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openBucket } from '@strata/kv';
import { buckets, diskUsage, egroupEntry, gatewayAttachments, keys, streams, subjects, vdiskOwnership, vdiskRow, type DiskUsage } from '@strata/proto';
import { repoRoot } from './processes';
import { track, untrack } from './util';
import { envSecurityOptions } from './suite-security';

export async function withNats<T>(natsUrl: string, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, ...envSecurityOptions() });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

/** Every disk's usage report (hb, disk.<id>), by disk id. */
export function diskUsages(natsUrl: string): Promise<Map<bigint, DiskUsage>> {
  return withNats(natsUrl, async (nc) => {
    const hb = await openBucket(nc, buckets.hb, diskUsage);
    const out = new Map<bigint, DiskUsage>();
    for (const key of await hb.keys(keys.diskUsageAll)) {
      const got = await hb.get(key);
      if (got !== null) out.set(BigInt(key.slice('disk.'.length)), got.value);
    }
    return out;
  });
}

/** The used bytes of every disk together. */
export async function usedBytes(natsUrl: string): Promise<number> {
  let total = 0;
  for (const u of (await diskUsages(natsUrl)).values()) total += u.usedBytes;
  return total;
}

/** What a vDisk still has anywhere but the config: md-vdisk rows, md-egroup entries, `own` keys, oplog messages. */
export function leftOf(natsUrl: string, vdisk: bigint): Promise<string[]> {
  return withNats(natsUrl, async (nc) => {
    const left: string[] = [];
    const rows = await openBucket(nc, buckets.mdVdisk, vdiskRow);
    for (const key of await rows.keys(`${vdisk}.*`)) left.push(`md-vdisk ${key}`);
    const egroups = await openBucket(nc, buckets.mdEgroup, egroupEntry);
    for (const key of await egroups.keys()) if ((await egroups.get(key))?.value.vdisk === vdisk) left.push(`md-egroup ${key}`);
    const own = await openBucket(nc, buckets.own, vdiskOwnership);
    for (const key of [keys.vdiskOwnership(vdisk), keys.takeover(vdisk)]) if ((await own.keys(key)).length > 0) left.push(`own ${key}`);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(streams.oplog, { subjects_filter: subjects.oplog(vdisk) }).catch(() => undefined);
    const messages = info?.state.subjects?.[subjects.oplog(vdisk)] ?? 0;
    if (messages > 0) left.push(`oplog ${subjects.oplog(vdisk)} (${messages} messages)`);
    return left;
  });
}

/** The nodes whose gateway reports `vdisk` open. */
export function openOnNodes(natsUrl: string, vdisk: bigint): Promise<string[]> {
  return withNats(natsUrl, async (nc) => {
    const hb = await openBucket(nc, buckets.hb, gatewayAttachments);
    const nodes: string[] = [];
    for (const key of await hb.keys(keys.gatewayAttachmentsAll)) {
      const got = await hb.get(key);
      if (got?.value.vdisks.some((v) => v.vdisk === vdisk)) nodes.push(got.value.node);
    }
    return nodes;
  });
}

/** qemu-io in interactive mode: its NBD connection stays open until `close()`. */
export class QemuIoSession {
  private readonly child: ChildProcessWithoutNullStreams;
  output = '';

  constructor(uri: string) {
    this.child = spawn('qemu-io', ['-f', 'raw', uri], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    track(this.child);
    this.child.stdout.on('data', (c: Buffer) => (this.output += c.toString()));
    this.child.stderr.on('data', (c: Buffer) => (this.output += c.toString()));
  }

  /** Quits (the connection closes); killed if it does not within `timeoutMs`. */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
    untrack(this.child);
  }
}
