// nbdcopy into a fresh vDisk while the owner's vdisk-controller is killed -9 at
// random moments: every copy that nbdcopy reports successful reads back byte for
// byte, through the gateway it was written through and through another node's.
//
// This is how a user once lost 54 MiB of acknowledged data: several connections and
// large requests fill the oplog with big entries, so the restarted controller replays
// a long tail of them (see libs/oplog/src/tail.ts). The old
// fault tests wrote 4 KiB blocks one at a time and never saw it.
//
// Each run copies a 48 MiB random file with nbdcopy (4 connections, 4 MiB requests)
// through node 1's gateway into a new vDisk (node 1 owns it: its gateway opened it
// first) and kills node 1's vdisk-controller once or twice at seeded random moments
// of the copy; `strata up` restarts it. nbdcopy must exit 0 (the gateway retries what
// the dead controller never answered), and the vDisk must read back equal to the
// source. STRATA_KILL_COPY_RUNS sets the number of runs (default 3; 20 for a longer
// check), STRATA_KILL_COPY_SEED the seed (printed).
//
// Every run kills at least once, the owner: before it starts, node 1's controller has
// run for 11 s (the supervisor backs off only a child that dies within 10 s of its
// start, and a controller restarted late lets node 1 be declared dead and the vDisks
// go elsewhere), and the first kill finds node 1 named as the vDisk's owner. Without
// this, half the runs of an earlier 20-run check killed nothing.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigClient } from '@strata/config-client';
import { childMatching, readOwnership, run, sleep, UpClusters, type UpCluster } from '../harness';
import { seededRandom } from '../harness/random';

const MiB = 2 ** 20;
const COPY_BYTES = 48 * MiB;
const RUNS = Number(process.env.STRATA_KILL_COPY_RUNS ?? 3);
const SEED = Number(process.env.STRATA_KILL_COPY_SEED ?? Date.now() % 1_000_000);

const clusters = new UpClusters('kill-copy');

const CONTROLLER = /vdisk-controller\/dist\/main\.js --node n1( |$)/;

/** Node 1's controller once it has run for `minMs` (bounded): its PID. */
async function settledController(cluster: UpCluster, minMs: number): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pid = await childMatching(cluster.up.pid(), CONTROLLER).catch(() => undefined);
    if (pid !== undefined) {
      const { stdout } = await run('ps', ['-o', 'etimes=', '-p', String(pid)], { timeoutMs: 5_000 });
      if (Number(stdout.trim()) * 1_000 >= minMs) return pid;
    }
    if (Date.now() > deadline) throw new Error(`node 1's controller did not stay up for ${minMs} ms within 60 s`);
    await sleep(250);
  }
}

/** Copies `uri` into a file and returns its first `bytes` bytes. */
async function readBack(uri: string, dir: string, bytes: number): Promise<Buffer> {
  const out = join(dir, 'readback.img');
  const { code, stderr } = await run('nbdcopy', [uri, out], { timeoutMs: 120_000 });
  if (code !== 0) throw new Error(`nbdcopy ${uri} -> file exited ${code}: ${stderr.slice(-500)}`);
  const data = readFileSync(out).subarray(0, bytes);
  rmSync(out);
  return data;
}

/** The first MiB at which `a` and `b` differ, and how many MiB differ, or undefined when equal. */
function firstDifference(a: Buffer, b: Buffer): { firstMiB: number; differentMiB: number } | undefined {
  let first: number | undefined;
  let count = 0;
  for (let at = 0; at < a.length; at += MiB) {
    if (a.subarray(at, at + MiB).equals(b.subarray(at, at + MiB))) continue;
    first ??= at / MiB;
    count++;
  }
  return first === undefined ? undefined : { firstMiB: first, differentMiB: count };
}

describe('kill -9 of the owner controller during nbdcopy', () => {
  let cluster: UpCluster;
  let dir: string;
  let source: Buffer;
  let container: bigint;

  beforeAll(async () => {
    // One process per actor: the test kills the controller alone.
    cluster = await clusters.start({ layout: 'separate' });
    dir = mkdtempSync(join(tmpdir(), 'strata-kill-copy-'));
    source = randomBytes(COPY_BYTES);
    writeFileSync(join(dir, 'source.img'), source);
    const client = await ConfigClient.connect(cluster.natsUrl);
    try {
      container = (await client.get({ kind: 'container', name: 'default' })).id;
    } finally {
      await client.close();
    }
    console.log(`controller-kill copy: seed ${SEED}, ${RUNS} runs`);
  }, 120_000);
  afterAll(async () => {
    await clusters.stopAll();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it(`every successful copy reads back byte for byte (${RUNS} runs, kills at random moments)`, async () => {
    const rand = seededRandom(SEED);
    const client = await ConfigClient.connect(cluster.natsUrl);
    try {
      for (let runNo = 1; runNo <= RUNS; runNo++) {
        const name = `copy-${runNo}`;
        const vdisk = (await client.create({ kind: 'vdisk', name, spec: { container, sizeBytes: 64 * MiB } })).id;
        const uri = `nbd://127.0.0.1:${cluster.nbdPort}/${name}`;
        let pid: number | undefined = await settledController(cluster, 11_000);
        const copy = run('nbdcopy', ['--connections=4', '--request-size=4194304', '--flush', join(dir, 'source.img'), uri], { timeoutMs: 180_000 });
        // One or two kills, the first between 0.3 s and 3 s into the copy.
        const kills = 1 + Math.floor(rand() * 2);
        const killedAt: number[] = [];
        const started = Date.now();
        let ownerAtKill: string | undefined;
        for (let k = 0; k < kills; k++) {
          await sleep(300 + Math.floor(rand() * 2_700));
          // The second kill finds the controller restarted after the first, or is skipped.
          pid ??= await childMatching(cluster.up.pid(), CONTROLLER).catch(() => undefined);
          if (pid === undefined) continue;
          if (k === 0) ownerAtKill = (await readOwnership(cluster.natsUrl, vdisk))?.owner;
          process.kill(pid, 'SIGKILL');
          pid = undefined;
          killedAt.push(Date.now() - started);
        }
        const result = await copy;
        const what = `run ${runNo} (seed ${SEED}, killed at ${killedAt.join(', ')} ms)`;
        expect({ what, kills: killedAt.length > 0, ownerAtKill }).toEqual({ what, kills: true, ownerAtKill: 'n1' });
        expect({ what, code: result.code, stderr: result.stderr.slice(-500) }).toEqual({ what, code: 0, stderr: expect.any(String) as string });
        for (const port of [cluster.nbdPort, cluster.nbdPort + 1]) {
          const back = await readBack(`nbd://127.0.0.1:${port}/${name}`, dir, COPY_BYTES);
          expect({ what, port, difference: firstDifference(source, back) }).toEqual({ what, port, difference: undefined });
        }
        console.log(`${what}: nbdcopy exit 0 after ${Date.now() - started} ms, read back equal through two gateways`);
      }
      cluster.passed = true;
    } finally {
      await client.close();
    }
  }, 120_000 + RUNS * 90_000);
});
