// The cluster's consistency check, pure: from every config vDisk, every metadata map,
// the `own` keys, the oplog subjects and every extent store's listing of its disks,
// what is garbage (something nothing live names and nothing ever will: space the
// curator should have freed) and what is a dangling reference (something live that
// names what is not there: data a reader would miss). The crash-injection test runs it
// after a curator scan (test/harness/checker.ts reads the cluster); it states, in one
// place, what "an interrupted operation left nothing behind" means.
//
// The rules follow the sweep (plan.ts), so the check and the curator agree on what is
// live: a vDisk marked deleting, or a snapshot or clone whose making was interrupted
// (older than the creating timeout), is being removed; a row of it names nothing. An
// extent group is garbage when no row of a live vDisk names it and either its writer
// is gone or being removed, or it is sealed (created below its writer's generation).
// An unsealed extent group of a live writer that no row names yet is not garbage: its
// writer may still allocate in it.
import type { EgroupEntry, ObjectOf, VdiskRow } from '@strata/proto';
import { CREATING_TIMEOUT_MS_DEFAULT, referencesOf, removedVdisks, vdiskOfRowKey } from './plan';

export interface DiskContents {
  node: string;
  disk: bigint;
  /** The extent groups with a replica file on the disk. */
  egroups: readonly bigint[];
}

export interface CheckInput {
  vdisks: ReadonlyArray<Pick<ObjectOf<'vdisk'>, 'id' | 'name' | 'spec'>>;
  /** The disk ids of the configuration. */
  disks: readonly bigint[];
  /** Every row of md-vdisk. */
  rows: ReadonlyArray<{ key: string; value: VdiskRow }>;
  /** Every entry of md-extent (extent id to extent group). */
  extents: ReadonlyArray<{ key: string; egroup: bigint }>;
  /** Every entry of md-egroup. */
  egroups: ReadonlyArray<{ id: bigint; entry: EgroupEntry }>;
  /** Each vDisk's generation (its ownership record's); absent: 0. */
  generations: ReadonlyMap<bigint, number>;
  /** Every key of `own`. */
  ownKeys: readonly string[];
  /** The oplog subjects that hold messages, with how many. */
  oplog: ReadonlyMap<string, number>;
  /** What each listed disk holds; a disk not listed (its node down) is not judged. */
  listings: readonly DiskContents[];
  nowMs: number;
  creatingTimeoutMs?: number;
}

export interface Finding {
  /** Garbage: nothing live names it. Dangling: something live names what is not there. */
  kind: 'garbage' | 'dangling';
  /** What, as a person would look for it: `md-egroup 1234`, `replica of egroup 1234 on disk 101 (n1)`. */
  what: string;
  why: string;
}

const vdiskKey = /^(?:vdisk|takeover)\.([0-9]+)$/;
const oplogSubject = /^oplog\.([0-9]+)$/;

export function checkCluster(input: CheckInput): Finding[] {
  const out: Finding[] = [];
  const garbage = (what: string, why: string): number => out.push({ kind: 'garbage', what, why });
  const dangling = (what: string, why: string): number => out.push({ kind: 'dangling', what, why });
  const timing = { nowMs: input.nowMs, creatingTimeoutMs: input.creatingTimeoutMs ?? CREATING_TIMEOUT_MS_DEFAULT };
  const existing = new Set(input.vdisks.map((v) => v.id));
  const removed = removedVdisks({ vdisks: input.vdisks, ...timing });
  const live = (id: bigint): boolean => existing.has(id) && !removed.has(id);
  const entries = new Map(input.egroups.map((e) => [e.id, e.entry]));

  for (const v of input.vdisks) {
    if (!removed.has(v.id)) continue;
    const state = v.spec.deletingSinceMs !== undefined ? 'marked deleting' : 'an interrupted snapshot or clone (creatingSinceMs past the timeout)';
    garbage(`vdisk ${v.name} (${v.id})`, `it is ${state} and still in the configuration after a scan`);
  }

  // Rows: those of a vDisk that is not live are garbage; a live one's block naming no entry is dangling.
  for (const { key, value } of input.rows) {
    const vdisk = vdiskOfRowKey(key);
    if (vdisk === undefined || !live(vdisk)) {
      garbage(`md-vdisk ${key}`, vdisk === undefined ? 'the key names no vdisk row' : `vdisk ${vdisk} is ${existing.has(vdisk) ? 'being removed' : 'gone'}`);
      continue;
    }
    for (const [block, location] of Object.entries(value.blocks)) {
      if (!entries.has(location.egroup)) dangling(`md-vdisk ${key} block ${block}`, `it names egroup ${location.egroup}, which has no md-egroup entry`);
    }
  }
  for (const { key, egroup } of input.extents) {
    if (!entries.has(egroup)) dangling(`md-extent ${key}`, `it names egroup ${egroup}, which has no md-egroup entry`);
  }

  // Extent-group entries: referenced by a live row, or garbage once no writer can use them again.
  const liveRows = input.rows.filter((r) => {
    const vdisk = vdiskOfRowKey(r.key);
    return vdisk !== undefined && live(vdisk);
  });
  const references = referencesOf(liveRows);
  const extentNamed = new Set(input.extents.map((e) => e.egroup));
  const configDisks = new Set(input.disks);
  for (const { id, entry } of input.egroups) {
    if (!references.has(id) && !extentNamed.has(id)) {
      const why = !existing.has(entry.vdisk)
        ? `no live vdisk names it and its writer, vdisk ${entry.vdisk}, is gone`
        : removed.has(entry.vdisk)
          ? `no live vdisk names it and its writer, vdisk ${entry.vdisk}, is being removed`
          : (entry.gen ?? 0) < (input.generations.get(entry.vdisk) ?? 0)
            ? `no live vdisk names it and it is sealed (generation ${entry.gen ?? 0} < ${input.generations.get(entry.vdisk)} of vdisk ${entry.vdisk})`
            : undefined;
      if (why !== undefined) garbage(`md-egroup ${id}`, why);
    }
    for (const r of entry.replicas) {
      if (!configDisks.has(r.disk)) dangling(`md-egroup ${id} replica on disk ${r.disk} (${r.node})`, 'the disk is not in the configuration');
    }
  }

  // Replica files: each must be one its entry names; each replica an entry names (written, version > 0) must have its file.
  const listed = new Map(input.listings.map((l) => [l.disk, new Set(l.egroups)]));
  for (const l of input.listings) {
    for (const egroup of l.egroups) {
      const entry = entries.get(egroup);
      if (entry?.replicas.some((r) => r.disk === l.disk) === true) continue;
      garbage(`replica of egroup ${egroup} on disk ${l.disk} (${l.node})`, entry === undefined ? 'its extent group has no md-egroup entry' : `its entry names disks ${entry.replicas.map((r) => r.disk).join(', ')}`);
    }
  }
  for (const { id, entry } of input.egroups) {
    if (entry.version === 0) continue;
    for (const r of entry.replicas) {
      const files = listed.get(r.disk);
      if (files !== undefined && !files.has(id)) dangling(`md-egroup ${id} replica on disk ${r.disk} (${r.node})`, 'the disk has no file for it');
    }
  }

  // `own` records and oplog subjects of vDisks that are gone.
  for (const key of input.ownKeys) {
    const match = vdiskKey.exec(key);
    if (match !== null && !existing.has(BigInt(match[1]!))) garbage(`own ${key}`, `vdisk ${match[1]} is gone`);
  }
  for (const [subject, messages] of input.oplog) {
    const match = oplogSubject.exec(subject);
    if (match !== null && messages > 0 && !existing.has(BigInt(match[1]!))) garbage(`oplog ${subject}`, `${messages} messages of vdisk ${match[1]}, which is gone`);
  }
  return out;
}

/** One line per finding, for a test's failure message. */
export function describeFindings(findings: readonly Finding[]): string {
  return findings.map((f) => `${f.kind}: ${f.what}: ${f.why}`).join('\n');
}

