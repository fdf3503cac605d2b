// What the benchmark scripts share: fio with its nbd engine (one job per process,
// figures read from its JSON), the strata CLI, and a local cluster started with
// `strata up` on free ports. Measurements only: nothing here asserts a speed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientSecurity } from '@strata/natsd';
import { adminSecurity } from '../cli/src/local-auth';
import { freePort, repoRoot, run, startNode, startProgram, waitFor, type ActorProcess } from '../test/harness';

export { createdId } from '../test/harness';

export interface FioJob {
  /** A name for files and messages. */
  name: string;
  rw: 'randwrite' | 'randread' | 'write' | 'read';
  bs: string;
  iodepth: number;
  /** The region fio works in, e.g. 256M. */
  size: string;
  runtimeS: number;
  /** Seconds at the start that are not counted (warm-up, a cap's burst). */
  rampS: number;
  /** false: write or read the region once instead of running for runtimeS (which then only bounds the wait). */
  timeBased?: boolean;
}

export interface Figures {
  iops: number;
  mbps: number;
  /** I/Os completed in the measured time (after the ramp). */
  ios: number;
  meanUs: number;
  p50us: number;
  p99us: number;
  /** The slowest I/O: at QD1, the longest pause the client saw. */
  maxUs: number;
}

interface FioSide {
  iops: number;
  bw_bytes: number;
  total_ios: number;
  clat_ns: { percentile: Record<string, number>; mean: number; max: number };
}
interface FioJobResult {
  error: number;
  read: FioSide;
  write: FioSide;
}

/** Runs one fio job against an NBD URI and returns its figures; throws if fio fails or reports an error. */
export async function fio(uri: string, job: FioJob, scratch: string): Promise<Figures> {
  const output = join(scratch, `fio-${job.name.replace(/[^a-zA-Z0-9]+/g, '-')}-${process.hrtime.bigint()}.json`);
  const args = [
    `--name=${job.rw}`,
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--iodepth=${job.iodepth}`,
    `--size=${job.size}`,
    ...(job.timeBased === false ? [] : ['--time_based', `--runtime=${job.runtimeS}`, `--ramp_time=${job.rampS}`]),
    '--output-format=json',
    `--output=${output}`,
  ];
  const { code, stdout, stderr } = await run('fio', args, { timeoutMs: (job.runtimeS + job.rampS + 60) * 1000 });
  if (code !== 0) throw new Error(`fio ${job.name} against ${uri} failed (${code}): ${(stdout + stderr).slice(-2000)}`);
  const result = (JSON.parse(readFileSync(output, 'utf8')) as { jobs: FioJobResult[] }).jobs[0]!;
  if (result.error !== 0) throw new Error(`fio ${job.name} against ${uri} reported error ${result.error}`);
  const side = job.rw === 'read' || job.rw === 'randread' ? result.read : result.write;
  return {
    iops: Math.round(side.iops),
    mbps: Math.round((side.bw_bytes / 1e6) * 10) / 10,
    ios: side.total_ios,
    meanUs: Math.round(side.clat_ns.mean / 1000),
    p50us: Math.round((side.clat_ns.percentile['50.000000'] ?? Number.NaN) / 1000),
    p99us: Math.round((side.clat_ns.percentile['99.000000'] ?? Number.NaN) / 1000),
    maxUs: Math.round(side.clat_ns.max / 1000),
  };
}

/** Runs the strata CLI against the cluster kept in `dir`; its stdout, or an error with its stderr. */
export async function strata(dir: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await run(process.execPath, [join(repoRoot, 'cli', 'dist', 'main.js'), '--dir', dir, ...args], { timeoutMs: 60_000 });
  if (code !== 0) throw new Error(`strata ${args.join(' ')} failed (${code}): ${stderr}`);
  return stdout;
}

export interface LocalCluster {
  dir: string;
  /** Node 1's NBD port (node k listens on nbdPort + k - 1). */
  nbdPort: number;
  natsUrl: string;
  /** How the bench's own clients connect: `strata up`'s admin (TLS, a user per process by default). */
  security: ClientSecurity;
  /** The `strata up` process (its children are the actors). */
  up: ActorProcess;
  /** Stops the cluster; removes its directory unless `keep` (then says where it is). */
  stop(keep?: boolean): Promise<void>;
}

/**
 * `strata up` with `nodes` nodes (3 unless given) on free ports in a fresh directory,
 * in its default layout (one node-host process per node) unless `upArgs` has
 * `--separate`; resolves once it printed `ready`.
 */
export async function startCluster(name: string, upArgs: string[], env: Record<string, string> = {}, nodes = 3): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), `strata-bench-${name}-`));
  const nbdPort = await freePort();
  const natsPort = await freePort();
  let up: ActorProcess | undefined;
  const stop = async (keep = false): Promise<void> => {
    await up?.stop(20_000);
    if (keep) process.stderr.write(`the ${name} cluster's data and logs are kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
  try {
    up = startNode('cli/dist/main.js', ['--dir', dir, 'up', '--nodes', String(nodes), '--nats-port', String(natsPort), '--nbd-port', String(nbdPort), ...upArgs], {
      name: `strata up (${name})`,
      env: { NATS_URL: '', ...env },
    });
    await up.waitForOutput(/^ready$/m, 120_000);
    return { dir, nbdPort, natsUrl: readFileSync(join(dir, 'nats.url'), 'utf8').trim(), security: adminSecurity(dir) ?? {}, up, stop };
  } catch (err) {
    await stop(true);
    throw err;
  }
}

/** nbdkit's memory plugin (1 GiB) on a free loopback port, the baseline the benchmarks divide by; resolves once it answers. */
export async function startNbdkit(): Promise<{ uri: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const nbdkit = startProgram('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', '1G'], { name: 'nbdkit' });
  const uri = `nbd://127.0.0.1:${port}/`;
  try {
    await waitFor('nbdkit to listen', 10_000, async () => (await run('nbdinfo', [uri], { timeoutMs: 5_000 })).code === 0);
  } catch (err) {
    await nbdkit.stop(5_000);
    throw err;
  }
  return { uri, pid: nbdkit.pid(), stop: () => nbdkit.stop(5_000) };
}
