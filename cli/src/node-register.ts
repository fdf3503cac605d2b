// What `strata node run` registers before it starts a node's actors: the node, its
// disks and the host of the same name. planRegistration() is the decision, pure: from
// what the config service holds and what the command line asks, the objects to create
// or change, or a refusal that changes nothing. register() carries the plan out.
// Running it again with the same flags changes nothing: it is safe in a unit file that
// runs at every boot.
import { resolve } from 'node:path';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError } from '@strata/errors';
import { Tier } from '@strata/proto';
import { UsageError, formatSize, parseSize } from './units';

/** One `--disk PATH:CAPACITY[:TIER]`. */
export interface DiskWanted {
  path: string;
  capacityBytes: number;
  tier: Tier;
}

const DISK_SYNTAX = 'PATH:CAPACITY[:TIER] (e.g. /srv/strata/d1:100G:ssd)';

/**
 * Parses `--disk PATH:CAPACITY[:TIER]`, from the right so that a path may hold a
 * colon; a relative path is resolved against `cwd` (the CLI runs on the node itself).
 */
export function parseDiskArg(text: string, cwd: string): DiskWanted {
  const parts = text.split(':');
  const tierText = parts.length >= 3 && (Object.values(Tier) as string[]).includes(parts.at(-1)!) ? parts.pop() : undefined;
  const capacity = parts.length >= 2 ? parts.pop()! : undefined;
  const path = parts.join(':');
  if (capacity === undefined || path === '') throw new UsageError(`--disk: "${text}" is not ${DISK_SYNTAX}`);
  if (!/^\s*\d/.test(capacity)) throw new UsageError(`--disk: "${text}": "${capacity}" is not a capacity nor the path's end; the form is ${DISK_SYNTAX}, TIER one of ${Object.values(Tier).join(', ')}`);
  const capacityBytes = parseSize(capacity, `--disk "${text}"`);
  if (capacityBytes <= 0) throw new UsageError(`--disk: "${text}": the capacity must be more than 0`);
  return { path: resolve(cwd, path), capacityBytes, tier: (tierText ?? Tier.ssd) as Tier };
}

/** Every `--disk` of the command line, parsed; a path given twice is a usage error. */
export function parseDiskArgs(texts: readonly string[], cwd: string): DiskWanted[] {
  const disks = texts.map((t) => parseDiskArg(t, cwd));
  const paths = disks.map((d) => d.path);
  const twice = paths.find((p, i) => paths.indexOf(p) !== i);
  if (twice !== undefined) throw new UsageError(`--disk: ${twice} is given twice`);
  return disks;
}

/** What `node run` asks to be registered (its disks' paths distinct, as parseDiskArgs gives them). */
export interface RegistrationRequest {
  node: string;
  /** Where the node runs (its host name or address); disks of nodes at the same address share a file system. */
  address: string;
  disks: DiskWanted[];
  host: { cpuCount: number; memoryBytes: number };
}

/** The registered objects the plan looks at (ids as the config service gives them). */
export interface Registered {
  nodes: Array<{ id: bigint; name: string; spec: { address?: string } }>;
  disks: Array<{ id: bigint; name: string; spec: { node: bigint; path: string; tier: Tier; capacityBytes: number } }>;
  hosts: Array<{ id: bigint; name: string; spec: { node?: bigint; cpuCount: number; memoryBytes: number } }>;
}

/** One change to the config service; `node` fields name the node being registered, whose id may not exist yet. */
export type RegistrationStep =
  | { op: 'create-node'; name: string; address: string }
  | { op: 'create-disk'; name: string; disk: DiskWanted }
  | { op: 'update-disk'; name: string; disk: DiskWanted; was: DiskWanted }
  | { op: 'create-host'; name: string; cpuCount: number; memoryBytes: number }
  | { op: 'update-host'; name: string; cpuCount: number; memoryBytes: number };

export interface RegistrationPlan {
  steps: RegistrationStep[];
  /** Lines for the operator about what stays as it is (disks registered but not given). */
  notes: string[];
}

/** A registration the cluster's state forbids: nothing is changed, exit code 1. */
function conflict(message: string): StrataError {
  return new StrataError(ErrorCode.CONFLICT, message);
}

/**
 * The steps that make the config service hold `req`, or a refusal. A disk is known by
 * its path on the node: one already registered to this node is kept (its capacity or
 * tier updated when the flag changed them); a new one is named `<node>-d<k>` with the
 * smallest free k. Refused: a path registered to another node at
 * the same address (one directory, two extent stores); a host of this name on another node.
 */
export function planRegistration(req: RegistrationRequest, reg: Registered): RegistrationPlan {
  const paths = req.disks.map((d) => d.path);
  const steps: RegistrationStep[] = [];
  const node = reg.nodes.find((n) => n.name === req.node);
  if (node === undefined) steps.push({ op: 'create-node', name: req.node, address: req.address });
  const address = node === undefined ? req.address : node.spec.address;
  const nodeById = new Map(reg.nodes.map((n) => [n.id, n]));
  const ownDisks = reg.disks.filter((d) => node !== undefined && d.spec.node === node.id);
  const names = new Set(reg.disks.map((d) => d.name));

  for (const want of req.disks) {
    const mine = ownDisks.find((d) => d.spec.path === want.path);
    if (mine !== undefined) {
      const was = { path: mine.spec.path, capacityBytes: mine.spec.capacityBytes, tier: mine.spec.tier };
      if (was.capacityBytes !== want.capacityBytes || was.tier !== want.tier) steps.push({ op: 'update-disk', name: mine.name, disk: want, was });
      continue;
    }
    const other = reg.disks.find((d) => d.spec.path === want.path && d.spec.node !== node?.id && nodeById.get(d.spec.node)?.spec.address === address);
    if (other !== undefined) {
      const otherNode = nodeById.get(other.spec.node)?.name ?? String(other.spec.node);
      throw conflict(`disk path ${want.path} is registered to node ${otherNode} (disk ${other.name}, same address ${address ?? '(none)'}); give node ${req.node} a directory of its own`);
    }
    let k = 1;
    while (names.has(`${req.node}-d${k}`)) k++;
    const name = `${req.node}-d${k}`;
    names.add(name);
    steps.push({ op: 'create-disk', name, disk: want });
  }
  const notes = ownDisks.filter((d) => !paths.includes(d.spec.path)).map((d) => `disk ${d.name} (${d.spec.path}) stays registered to node ${req.node} though no --disk names it; "strata disk rm ${d.name}" removes it`);

  const host = reg.hosts.find((h) => h.name === req.node);
  if (host === undefined) steps.push({ op: 'create-host', name: req.node, ...req.host });
  else if (host.spec.node !== undefined && host.spec.node !== node?.id) throw conflict(`host ${req.node} is registered for another node (id ${host.spec.node}); a node and its host share a name`);
  else if (host.spec.node === undefined || host.spec.cpuCount !== req.host.cpuCount || host.spec.memoryBytes !== req.host.memoryBytes) steps.push({ op: 'update-host', name: req.node, ...req.host });
  return { steps, notes };
}

/** The line that says what a step did. */
export function describeStep(step: RegistrationStep): string {
  switch (step.op) {
    case 'create-node':
      return `node ${step.name} registered (address ${step.address})`;
    case 'create-disk':
      return `disk ${step.name} registered: ${step.disk.path}, ${formatSize(step.disk.capacityBytes)}, ${step.disk.tier}`;
    case 'update-disk':
      return `disk ${step.name} changed: ${formatSize(step.was.capacityBytes)} ${step.was.tier} -> ${formatSize(step.disk.capacityBytes)} ${step.disk.tier}`;
    case 'create-host':
      return `host ${step.name} registered: ${step.cpuCount} CPUs and ${formatSize(step.memoryBytes)} of memory for VMs`;
    case 'update-host':
      return `host ${step.name} changed: ${step.cpuCount} CPUs and ${formatSize(step.memoryBytes)} of memory for VMs`;
  }
}

/** Reads what the plan needs from the config service. */
export async function readRegistered(client: ConfigClient): Promise<Registered> {
  const [nodes, disks, hosts] = await Promise.all([client.list('node'), client.list('disk'), client.list('host')]);
  return { nodes, disks, hosts };
}

/** Carries out `steps` in order (the node first, so its id exists); returns a line per step. */
export async function register(client: ConfigClient, nodeName: string, steps: RegistrationStep[]): Promise<string[]> {
  const nodeId = async (): Promise<bigint> => (await client.get({ kind: 'node', name: nodeName })).id;
  for (const step of steps) {
    switch (step.op) {
      case 'create-node':
        await client.create({ kind: 'node', name: step.name, spec: { address: step.address } });
        break;
      case 'create-disk':
      case 'update-disk': {
        const spec = { node: await nodeId(), path: step.disk.path, tier: step.disk.tier, capacityBytes: step.disk.capacityBytes };
        if (step.op === 'create-disk') await client.create({ kind: 'disk', name: step.name, spec });
        else await client.update({ kind: 'disk', name: step.name, spec: { ...(await client.get({ kind: 'disk', name: step.name })).spec, ...spec } });
        break;
      }
      case 'create-host':
      case 'update-host': {
        const spec = { node: await nodeId(), cpuCount: step.cpuCount, memoryBytes: step.memoryBytes };
        if (step.op === 'create-host') await client.create({ kind: 'host', name: step.name, spec });
        else await client.update({ kind: 'host', name: step.name, spec: { ...(await client.get({ kind: 'host', name: step.name })).spec, ...spec } });
        break;
      }
    }
  }
  return steps.map(describeStep);
}
