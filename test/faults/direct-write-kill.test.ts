// kill -9 of the owner's vdisk-controller, and of an extent store that holds a
// replica, at each step of a large (direct) write and of the drain that adopts its
// staging extent: every acknowledged write reads back, and every request of a write
// that was not acknowledged reads back all old or all new, never a mix. The cluster
// runs one process per actor (`strata up --separate`), so each victim dies alone.
//
// The controller runs with faultHoldAt, which holds it 300 ms at each step of every
// direct write (staged, written to the replicas, committed) and at the drain step
// that adopts staging extents, logging `fault hold at <step>`; the test finds its
// victim's PID before the write, kills it as soon as the log shows the step, and
// requires the kill to land within the hold. Block 0 (1 MiB) is written whole first, then
// the write under test covers its first 768 KiB: three requests of 256 KiB (the
// gateway's largest) into one staging extent, which drain adopts after filling in
// the last 256 KiB from the block's old content.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigClient } from '@strata/config-client';
import { childMatching, qemuIo, run, sleep, UpClusters, waitForDrained, type UpCluster } from '../harness';

const MiB = 2 ** 20;
const CHUNK = 256 * 1024;
// Three holds in a write stay within the gateway's 3 s attempt; the log is polled every
// 20 ms and the victim's PID is known beforehand, so the kill lands inside the hold.
const HOLD_MS = 300;
const STEPS = ['direct-staged', 'direct-written', 'direct-committed', 'drain-adopted'] as const;
const VICTIMS = [
  { name: 'the owner controller', pattern: /vdisk-controller\/dist\/main\.js --node n1( |$)/ },
  { name: "the owner node's extent store", pattern: /extent-store\/dist\/main\.js --node n1( |$)/ },
] as const;

const clusters = new UpClusters('direct-kill');

/** The controller's log lines of holds at `step`. */
function holdLines(cluster: UpCluster, step: string): string[] {
  const text = readFileSync(join(cluster.dir, 'logs', 'n1-vdisk-controller.log'), 'utf8');
  return text.split('\n').filter((line) => line.includes(`"msg":"fault hold at ${step}"`));
}

/** How many times the controller's log shows a hold at `step`. */
function holds(cluster: UpCluster, step: string): number {
  return holdLines(cluster, step).length;
}

/** When the last hold at `step` began (its log line's time). */
function lastHoldAtMs(cluster: UpCluster, step: string): number {
  return Date.parse((JSON.parse(holdLines(cluster, step).at(-1)!) as { time: string }).time);
}

async function waitForHold(cluster: UpCluster, step: string, before: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (holds(cluster, step) <= before) {
    if (Date.now() > deadline) throw new Error(`the controller never held at ${step}`);
    await sleep(20);
  }
}

/**
 * Which of the 256 KiB requests at `offsets` read as `pattern` through `uri`, all in
 * one qemu-io (it runs every command, whatever the one before found). A read that
 * fails is an error, not a no.
 */
async function readAs(uri: string, offsets: readonly number[], pattern: number): Promise<boolean[]> {
  const { code, stdout, stderr } = await run('qemu-io', ['-f', 'raw', uri, ...offsets.flatMap((at) => ['-c', `read -P ${pattern} ${at} ${CHUNK}`])], { timeoutMs: 30_000 });
  const out = stdout + stderr;
  const mismatched = offsets.map((at) => out.includes(`Pattern verification failed at offset ${at},`));
  const failedOtherwise = out.split('\n').some((line) => /error|failed/i.test(line) && !line.startsWith('Pattern verification failed at offset'));
  const unread = offsets.filter((at) => !out.includes(`read ${CHUNK}/${CHUNK} bytes at offset ${at}\n`));
  if (failedOtherwise || unread.length > 0 || (code !== 0 && !mismatched.includes(true))) {
    throw new Error(`read of ${offsets.join(',')} through ${uri} failed (${code}): ${out.slice(-300)}`);
  }
  return mismatched.map((m) => !m);
}

/** What each 256 KiB request of [0, 1 MiB) reads as through `uri`: 'old', 'new', or 'mixed'. */
async function chunkStates(uri: string, oldPattern: number, newPattern: number): Promise<string[]> {
  const offsets = [0, CHUNK, 2 * CHUNK, 3 * CHUNK];
  const isNew = await readAs(uri, offsets, newPattern);
  const notNew = offsets.filter((_, i) => !isNew[i]);
  const isOld = notNew.length === 0 ? [] : await readAs(uri, notNew, oldPattern);
  return offsets.map((at, i) => (isNew[i] ? 'new' : isOld[notNew.indexOf(at)] ? 'old' : 'mixed'));
}

describe('kill -9 at each step of a direct write', () => {
  let cluster: UpCluster;
  let container: bigint;
  let passedCases = 0;

  beforeAll(async () => {
    cluster = await clusters.start({ env: { STRATA_FAULT_HOLD_AT: `${STEPS.join(',')}:${HOLD_MS}` }, layout: 'separate' });
    const client = await ConfigClient.connect(cluster.natsUrl);
    try {
      container = (await client.get({ kind: 'container', name: 'default' })).id;
    } finally {
      await client.close();
    }
  }, 120_000);
  afterAll(() => clusters.stopAll());

  const cases = STEPS.flatMap((step) => VICTIMS.map((victim) => ({ step, victim })));
  it.each(cases.map((c, i) => [c.step, c.victim.name, i] as const))('at %s, of %s: acknowledged data reads back, unacknowledged requests read all old or all new', async (step, _victim, i) => {
    const victim = cases[i]!.victim;
    const name = `dw-${i}`;
    const client = await ConfigClient.connect(cluster.natsUrl);
    let vdisk: bigint;
    try {
      vdisk = (await client.create({ kind: 'vdisk', name, spec: { container, sizeBytes: 16 * MiB } })).id;
    } finally {
      await client.close();
    }
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/${name}`;
    const [oldPattern, newPattern] = [0x11 + i, 0x81 + i];
    await qemuIo(uri, [`write -P ${oldPattern} 0 1M`]);
    // Drained (its staging extent adopted) before the write under test.
    await waitForDrained(cluster.natsUrl, vdisk, 20_000);

    const before = holds(cluster, step);
    const pid = await childMatching(cluster.up.pid(), victim.pattern);
    const write = run('qemu-io', ['-f', 'raw', uri, '-c', `write -P ${newPattern} 0 768k`], { timeoutMs: 60_000 });
    await waitForHold(cluster, step, before);
    process.kill(pid, 'SIGKILL');
    // The kill landed while the controller held at the step (or the case tested another moment).
    const killedAfterMs = Date.now() - lastHoldAtMs(cluster, step);
    console.info(`direct-write-kill: ${victim.name} killed ${killedAfterMs} ms into the ${HOLD_MS} ms hold at ${step}`);
    expect({ step, killedWithinHold: killedAfterMs < HOLD_MS }).toEqual({ step, killedWithinHold: true });
    const result = await write;
    const acknowledged = result.code === 0 && !/error|failed/i.test(result.stdout + result.stderr);

    // Read at once (through the index, mostly), and again once drained (through the adopted extent).
    for (const when of ['at once', 'drained']) {
      if (when === 'drained') await waitForDrained(cluster.natsUrl, vdisk, 30_000);
      for (const port of [cluster.nbdPort, cluster.nbdPort + 1]) {
        const states = await chunkStates(`nbd://127.0.0.1:${port}/${name}`, oldPattern, newPattern);
        const unwritten = states[3];
        expect({ when, port, acknowledged, states, unwritten }).toEqual({
          when,
          port,
          acknowledged,
          states: acknowledged ? ['new', 'new', 'new', 'old'] : expect.not.arrayContaining(['mixed']),
          unwritten: 'old',
        });
      }
    }
    passedCases++;
  }, 120_000);

  // The data and logs are deleted only when every case passed.
  it('passed', () => {
    cluster.passed = passedCases === cases.length;
  });
});
