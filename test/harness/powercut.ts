// Power cuts of a whole local cluster. The cluster's data directory lives on lazyfs
// (test/powercut/lazyfs), a FUSE file system that keeps file data written but not yet
// fsynced in its own memory. A power cut freezes and SIGKILLs every process of the
// cluster and the lazyfs process, then detaches the mount: the backing directory holds
// exactly what was fsynced. Remounting the same backing directory is the power coming
// back. lazyfs is built on demand with `go build` into the user's cache; where FUSE or
// Go is missing, lazyFsSupport() says why, so a test can skip with that reason.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigClient } from '@strata/config-client';
import type { ClientSecurity } from '@strata/natsd';
import { adminSecurity } from '../../cli/src/local-auth';
import { NatsServerProcess, clientSecurityFromEnv, waitForJetStream } from '@strata/natsd';
import { repoRoot, run, startNode, startProgram, type ActorProcess } from './processes';
import { childPids, freePortRun, type WrittenBlock } from './strata';
import { seedUpAuth, suiteServerOptions } from './suite-security';
import { track, untrack, waitFor } from './util';

const lazyFsSources = join(repoRoot, 'test', 'powercut', 'lazyfs');

/** The lazyfs binary, or why power-cut tests cannot run on this machine. */
export type LazyFsSupport = { binary: string; skip?: undefined } | { binary?: undefined; skip: string };

let support: LazyFsSupport | undefined;

/** The sources the binary is built from: a change to any of them builds a new one. */
function sourceHash(): string {
  const hash = createHash('sha256');
  const files = readdirSync(lazyFsSources)
    .filter((f) => (f.endsWith('.go') && !f.endsWith('_test.go')) || f === 'go.mod' || f === 'go.sum')
    .sort();
  for (const f of files) hash.update(`${f}\0`).update(readFileSync(join(lazyFsSources, f))).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/** Builds lazyfs into ${XDG_CACHE_HOME:-~/.cache}/strata/lazyfs/<hash>/ unless it is there; returns its path. */
function buildLazyFs(): string {
  const cache = process.env.XDG_CACHE_HOME !== undefined && process.env.XDG_CACHE_HOME !== '' ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  const dir = join(cache, 'strata', 'lazyfs', sourceHash());
  const binary = join(dir, 'lazyfs');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  // Built under a temporary name and renamed: a concurrent build never runs half a binary.
  const partial = `${binary}.${process.pid}.partial`;
  // Bounded: the first build downloads go-fuse through the module proxy; later ones take a second or two.
  const built = spawnSync('go', ['build', '-o', partial, '.'], { cwd: lazyFsSources, env: { ...process.env, CGO_ENABLED: '0' }, encoding: 'utf8', timeout: 240_000 });
  if (built.status !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`go build of ${lazyFsSources} failed (${built.status ?? built.signal ?? built.error?.message}): ${built.stderr}${built.stdout}`);
  }
  renameSync(partial, binary);
  return binary;
}

/**
 * Whether this machine can run power-cut tests: /dev/fuse, a Go toolchain, and a
 * mount that works (`lazyfs -probe` mounts a temporary directory and checks it).
 * Synchronous, so a test file can choose describe or describe.skip; decided once.
 * A build that fails on a machine with Go is an error, not a reason to skip.
 */
export function lazyFsSupport(): LazyFsSupport {
  if (support !== undefined) return support;
  if (!existsSync('/dev/fuse')) return (support = { skip: 'no /dev/fuse on this machine' });
  const go = spawnSync('go', ['version'], { encoding: 'utf8', timeout: 20_000 });
  if (go.error !== undefined || go.status !== 0) return (support = { skip: `no Go toolchain to build lazyfs (go version: ${go.error?.message ?? go.stderr.trim()})` });
  const binary = buildLazyFs();
  const probe = spawnSync(binary, ['-probe'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status !== 0) return (support = { skip: `FUSE mount refused (lazyfs -probe: ${(probe.stderr ?? '').trim() || probe.error?.message || probe.signal})` });
  return (support = { binary });
}

/** Runs lazyfs's Go unit tests (the overlay against a model); fails with their output. */
export async function runLazyFsUnitTests(timeoutMs = 180_000): Promise<void> {
  const { code, stdout, stderr } = await run('go', ['test', '-count=1', './...'], { cwd: lazyFsSources, env: { CGO_ENABLED: '0' }, timeoutMs });
  if (code !== 0) throw new Error(`go test in ${lazyFsSources} failed (${code}): ${stdout}${stderr}`);
}

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
}

/** One running lazyfs: `mountDir` shows `backingDir` with unflushed data in the process's memory. */
export class LazyFs {
  /** Set before the power cut kills it: any other exit is reported with its output. */
  private killing = false;

  private constructor(
    readonly binary: string,
    readonly backingDir: string,
    readonly mountDir: string,
    readonly proc: ActorProcess,
  ) {
    void proc.exited().then((how) => {
      if (!this.killing) console.error(`lazyfs on ${mountDir} exited unexpectedly (${how}): ${proc.output().slice(-4000)}`);
    });
  }

  /** SIGKILLs the process (the power cut's last step). */
  kill(): void {
    this.killing = true;
    signal(this.pid(), 'SIGKILL');
  }

  /** Mounts backingDir at mountDir and waits (bounded) until the mount serves. */
  static async mount(binary: string, backingDir: string, mountDir: string): Promise<LazyFs> {
    if (isMounted(mountDir)) throw new Error(`${mountDir} is still mounted`);
    const proc = startProgram(binary, [backingDir, mountDir], { name: `lazyfs ${mountDir}` });
    try {
      await proc.waitForOutput(/^mounted /m, 15_000);
    } catch (err) {
      await proc.stop(1_000);
      throw err;
    }
    return new LazyFs(binary, backingDir, mountDir, proc);
  }

  pid(): number {
    return this.proc.pid();
  }

  /** Detaches the mount (MNT_DETACH, alive or dead) and checks it is gone. */
  async detach(): Promise<void> {
    if (!isMounted(this.mountDir)) return;
    const { code, stderr } = await run(this.binary, ['-unmount', this.mountDir], { timeoutMs: 10_000 });
    if (isMounted(this.mountDir)) throw new Error(`cannot detach ${this.mountDir} (${code}): ${stderr}`);
  }

  /** The power coming back: a new lazyfs over the same backing directory. */
  remount(): Promise<LazyFs> {
    return LazyFs.mount(this.binary, this.backingDir, this.mountDir);
  }
}

/** Every descendant of `pid` (children, their children, …), parents before children. */
export async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const child of await childPids(pid).catch(() => [])) out.push(child, ...(await descendants(child)));
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false; // gone already
  }
}

/** Whether `pid` still runs (a zombie, dead but not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** What a power cut did. */
export interface PowerCut {
  /** Date.now() at the instant every process was frozen. */
  atMs: number;
  /** The processes killed, the lazyfs process last. */
  killed: number[];
}

/**
 * The power cut: SIGSTOP every process under `roots` (and the roots) and the lazyfs
 * process, so nothing runs past this instant; look again for children spawned
 * meanwhile; SIGKILL them all (lazyfs last, which fails whatever request a killed
 * process still had in it); wait for them to be gone; detach the mount. Bounded.
 */
export async function cutPower(roots: readonly number[], fs: LazyFs): Promise<PowerCut> {
  const tree = async (): Promise<number[]> => {
    const pids: number[] = [];
    for (const root of roots) pids.push(root, ...(await descendants(root)));
    return pids;
  };
  const frozen = await tree();
  for (const pid of frozen) signal(pid, 'SIGSTOP');
  signal(fs.pid(), 'SIGSTOP');
  const atMs = Date.now();
  // Stopped processes fork no more: whatever was spawned before the stop is found now.
  const all = [...new Set([...frozen, ...(await tree())])];
  const killed = all.filter((pid) => signal(pid, 'SIGKILL'));
  fs.kill();
  killed.push(fs.pid());
  await waitFor('the killed processes to be gone', 15_000, () => killed.every((pid) => !alive(pid)));
  await fs.detach();
  return { atMs, killed };
}

/** A `strata up` started by PowerCutRig.startStrataUp. */
export interface StrataUp {
  up: ActorProcess;
  dir: string;
  /** Node k's gateway listens on nbdPort + k - 1; every gateway exports `demo`. */
  nbdPort: number;
  natsUrl: string;
  /** How the test's own clients connect: `strata up`'s admin on its own servers, anonymous on the test's. */
  security: ClientSecurity;
  demoId: bigint;
}

export interface StrataUpOptions {
  /** The data directory (--dir). */
  dir: string;
  /** An existing NATS server (NATS_URL) instead of the embedded one. */
  natsUrl?: string;
  /** Settings for every actor (STRATA_*), and for `strata up` itself. */
  env?: Record<string, string>;
}

/** What reading back a set of written blocks found. */
export interface ReadBack {
  intact: number;
  /** Blocks that read back other bytes than their pattern. */
  lost: WrittenBlock[];
  /** Blocks whose read failed (an I/O error, or no answer). */
  unreadable: WrittenBlock[];
}

/**
 * Reads every block through qemu-io with its pattern check, 100 commands per run,
 * and sorts each block into intact, lost (other bytes) or unreadable. qemu-io goes on
 * after a failed command, so one bad block does not hide the others.
 */
export async function readBack(uri: string, blocks: readonly WrittenBlock[], timeoutMs = 60_000): Promise<ReadBack> {
  const result: ReadBack = { intact: 0, lost: [], unreadable: [] };
  const sorted = [...blocks].sort((a, b) => a.offset - b.offset);
  for (let i = 0; i < sorted.length; i += 100) {
    const batch = sorted.slice(i, i + 100);
    const { stdout, stderr } = await run('qemu-io', ['-f', 'raw', uri, ...batch.flatMap((b) => ['-c', `read -P ${b.pattern} ${b.offset} ${b.length}`])], { timeoutMs });
    const out = stdout + stderr;
    const wrong = new Set([...out.matchAll(/Pattern verification failed at offset (\d+)/g)].map((m) => Number(m[1])));
    const read = new Set([...out.matchAll(/^read (\d+)\/(\d+) bytes at offset (\d+)$/gm)].filter((m) => m[1] === m[2]).map((m) => Number(m[3])));
    for (const b of batch) {
      if (wrong.has(b.offset)) result.lost.push(b);
      else if (read.has(b.offset)) result.intact++;
      else result.unreadable.push(b);
    }
  }
  return result;
}

/**
 * The directories of one power-cut run under a fresh temporary directory: the
 * backing directory, the mount point, and a logs directory off the lazy fs (logs are
 * never fsynced, and a failed run's logs must survive its power cut).
 */
export interface PowerCutDirs {
  root: string;
  backing: string;
  mount: string;
  logs: string;
  /** Set by the test at its end: the directories are deleted only then. */
  passed: boolean;
}

/**
 * The power-cut runs of one test file: lazyfs mounts, `strata up`s and nats-servers,
 * each recorded the moment it starts, so that cleanup() kills every one by PID (with
 * its children) and detaches every mount, whatever step a failed test stopped at.
 */
export class PowerCutRig {
  private readonly roots = new Set<number>();
  private readonly mounts = new Set<LazyFs>();
  private readonly runs: PowerCutDirs[] = [];

  /** `label` names the temporary directories (strata-<label>-…). */
  constructor(
    readonly binary: string,
    private readonly label: string,
  ) {}

  /** Fresh directories for a run. */
  dirs(): PowerCutDirs {
    const root = mkdtempSync(join(tmpdir(), `strata-${this.label}-`));
    const dirs = { root, backing: join(root, 'backing'), mount: join(root, 'mnt'), logs: join(root, 'logs'), passed: false };
    for (const d of [dirs.backing, dirs.mount, dirs.logs]) mkdirSync(d);
    this.runs.push(dirs);
    return dirs;
  }

  /** Mounts lazyfs over the run's backing directory. */
  async mount(dirs: PowerCutDirs): Promise<LazyFs> {
    return this.track(await LazyFs.mount(this.binary, dirs.backing, dirs.mount));
  }

  /** The power coming back: lazyfs again over the same backing directory. */
  async remount(fs: LazyFs): Promise<LazyFs> {
    return this.track(await fs.remount());
  }

  private track(fs: LazyFs): LazyFs {
    this.mounts.add(fs);
    return fs;
  }

  /**
   * Makes `dataDir` (on the mount) a strata data directory whose logs/ is a symlink
   * to the run's logs directory (off the mount; the symlink itself passes through).
   */
  dataDir(dirs: PowerCutDirs, name: string): string {
    const dataDir = join(dirs.mount, name);
    mkdirSync(dataDir, { recursive: true });
    if (!existsSync(join(dataDir, 'logs'))) symlinkSync(dirs.logs, join(dataDir, 'logs'));
    return dataDir;
  }

  /**
   * Starts `strata up --nodes 3 --nats 1 --config-replicas 1` on free ports (as
   * UpClusters does, on a data directory of the caller's) and waits for `ready`.
   */
  async startStrataUp(options: StrataUpOptions): Promise<StrataUp> {
    const nbdPort = await freePortRun(3);
    const natsPort = await freePortRun(1);
    // On its own server, `up` runs secure with the suite's admin (so this process's clients reach it).
    if (options.natsUrl === undefined) seedUpAuth(options.dir);
    const up = startNode(
      'cli/dist/main.js',
      ['--dir', options.dir, 'up', '--nodes', '3', '--nats', '1', '--config-replicas', '1', '--nbd-port', String(nbdPort), '--nats-port', String(natsPort)],
      { name: 'strata up', env: { NATS_URL: options.natsUrl ?? '', ...options.env } },
    );
    this.roots.add(up.pid());
    await up.waitForOutput(/^ready$/m, 90_000);
    const natsUrl = readFileSync(join(options.dir, 'nats.url'), 'utf8').trim();
    // `strata up`'s own servers take its admin (TLS, a user per process); an existing cluster's, the environment's.
    const security = adminSecurity(options.dir) ?? clientSecurityFromEnv(process.env);
    const client = await ConfigClient.connect(natsUrl, undefined, security);
    try {
      const demoId = (await client.get({ kind: 'vdisk', name: 'demo' })).id;
      return { up, dir: options.dir, nbdPort, natsUrl, security, demoId };
    } finally {
      await client.close();
    }
  }

  /**
   * Starts one nats-server with its store under `dir` (on the mount) and waits for
   * JetStream. `syncAlways: false` runs it without `sync_interval: always`: what
   * `strata up` never does, for the run that shows what is lost without it.
   */
  async startNatsServer(dir: string, port: number, syncAlways: boolean): Promise<NatsServerProcess> {
    const secure = suiteServerOptions();
    const server = new NatsServerProcess({ name: 'nats-1', port, dir, syncAlways, ...secure });
    try {
      await server.start();
    } finally {
      const child = server.process();
      if (child?.pid !== undefined) {
        this.roots.add(child.pid);
        track(child);
        child.once('exit', () => untrack(child));
      }
    }
    await waitForJetStream(server.url, 30_000, secure.probe ?? {});
    return server;
  }

  /** Kills everything by PID, detaches every mount, and deletes the directories of the runs that passed. */
  async cleanup(): Promise<void> {
    const pids: number[] = [];
    for (const root of this.roots) if (alive(root)) pids.push(root, ...(await descendants(root)));
    for (const pid of pids) signal(pid, 'SIGKILL');
    for (const fs of this.mounts) if (alive(fs.pid())) fs.kill();
    await waitFor('the test processes to be gone', 15_000, () => [...pids, ...[...this.mounts].map((m) => m.pid())].every((pid) => !alive(pid)));
    for (const fs of this.mounts) await fs.detach();
    for (const dirs of this.runs) {
      if (dirs.passed) rmSync(dirs.root, { recursive: true, force: true });
      else console.warn(`${this.label}: the failed run's backing directory and logs are kept in ${dirs.root}`);
    }
    this.roots.clear();
    this.mounts.clear();
    this.runs.length = 0;
  }
}
