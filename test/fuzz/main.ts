// `npm run fuzz -- [--minutes N] [--target nbd-parser|handshake|cbor|all] [--runs-per-seed R] [--seed S] [--hang-seconds H]`:
// the long fuzz run. Runs each chosen target with fast-check, R inputs per random
// seed, seed after seed, until the time is up (targets take turns when there are
// several), in a worker thread: a batch that does not finish within H seconds is a
// hang. Prints the inputs run and the failures per target. A failure prints its seed,
// path and shrunk counterexample (a hang: its seed) and is written under
// .fuzz/failures/ (git ignores it); `--seed=S --runs-per-seed R --target T` replays
// that batch. Every seed run is appended to .fuzz/seeds/<target>.txt. Exits 1 if
// anything failed.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { BatchJob, BatchResult } from './batch';
import { targets } from './targets';

const usage = 'usage: npm run fuzz -- [--minutes N] [--target nbd-parser|handshake|cbor|all] [--runs-per-seed R] [--seed S] [--hang-seconds H]';
const repoRoot = join(__dirname, '..', '..');
const failuresDir = join(repoRoot, '.fuzz', 'failures');
const seedsDir = join(repoRoot, '.fuzz', 'seeds');

interface Tally {
  inputs: number;
  skipped: number;
  seeds: number;
  failures: number;
  elapsedMs: number;
}

function fail(message: string): never {
  process.stderr.write(`fuzz: ${message}\n${usage}\n`);
  process.exit(2);
}

function positiveNumber(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) fail(`--${name} must be a positive number, not ${JSON.stringify(text)}`);
  return n;
}

function chosenTargets(name: string): string[] {
  const names = targets.map((t) => t.name);
  if (name === 'all') return names;
  if (!names.includes(name)) fail(`no target named ${JSON.stringify(name)}; the targets are ${names.join(', ')}, all`);
  return [name];
}

/** A seed fast-check accepts: a 32-bit signed integer. */
const randomSeed = (): number => (Math.random() * 2 ** 32) | 0;

/** Runs batches in a worker thread, and replaces the worker when one hangs. */
class BatchRunner {
  private worker: Worker | undefined;

  constructor(private readonly hangMs: number) {}

  async run(job: BatchJob): Promise<BatchResult | 'hang'> {
    const worker = (this.worker ??= startWorker());
    let timer: NodeJS.Timeout | undefined;
    const outcome = await new Promise<BatchResult | 'hang'>((resolve, reject) => {
      timer = setTimeout(() => resolve('hang'), this.hangMs);
      worker.once('message', (result: BatchResult) => resolve(result));
      worker.once('error', reject);
      worker.postMessage(job);
    });
    clearTimeout(timer);
    worker.removeAllListeners('message');
    worker.removeAllListeners('error');
    if (outcome === 'hang') {
      await worker.terminate();
      this.worker = undefined;
    }
    return outcome;
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
  }
}

/** The worker loads the TypeScript sources the way this process does (test/fixtures/register-ts.js). */
function startWorker(): Worker {
  const register = join(repoRoot, 'test', 'fixtures', 'register-ts.js');
  const script = join(__dirname, 'worker.ts');
  return new Worker(`require(${JSON.stringify(register)}); require(${JSON.stringify(script)});`, { eval: true });
}

/** Prints and files one failure, with everything needed to replay it. */
function report(job: BatchJob, result: BatchResult | 'hang', hangMs: number): void {
  const found =
    result === 'hang'
      ? ['what: a hang: the batch did not finish in ' + `${hangMs / 1000} s`]
      : [`path: ${result.failure!.path}`, `counterexample: ${result.failure!.counterexample}`, `error: ${result.failure!.error}`];
  const text = [`target: ${job.target}`, `seed: ${job.seed}`, `replay: npm run fuzz -- --target ${job.target} --seed=${job.seed} --runs-per-seed ${job.runsPerSeed}`, ...found, ''].join('\n');
  process.stdout.write(`\nFAILURE\n${text}\n`);
  mkdirSync(failuresDir, { recursive: true });
  const file = join(failuresDir, `${job.target}-${job.seed}.txt`);
  writeFileSync(file, text);
  process.stdout.write(`written to ${file}\n`);
}

async function runOne(runner: BatchRunner, job: BatchJob, tally: Tally, hangMs: number): Promise<void> {
  // Every seed run is kept, so that any batch of a long run can be replayed.
  mkdirSync(seedsDir, { recursive: true });
  appendFileSync(join(seedsDir, `${job.target}.txt`), `${job.seed} ${job.runsPerSeed}\n`);
  const started = Date.now();
  const result = await runner.run(job);
  tally.elapsedMs += Date.now() - started;
  tally.seeds++;
  if (result !== 'hang') {
    tally.inputs += result.inputs;
    tally.skipped += result.skipped;
  }
  if (result === 'hang' || result.failure !== undefined) {
    tally.failures++;
    report(job, result, hangMs);
  }
}

function summary(name: string, t: Tally): string {
  return `${name}: ${t.inputs} inputs (${t.skipped} skipped) in ${(t.elapsedMs / 60_000).toFixed(1)} min, ${t.seeds} seeds, ${t.failures} failures`;
}

async function main(): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    const options = { minutes: { type: 'string' }, target: { type: 'string' }, 'runs-per-seed': { type: 'string' }, seed: { type: 'string' }, 'hang-seconds': { type: 'string' } } as const;
    ({ values } = parseArgs({ options, strict: true }));
  } catch (err) {
    fail((err as Error).message);
  }
  const minutes = positiveNumber('minutes', values.minutes, 10);
  const runsPerSeed = Math.floor(positiveNumber('runs-per-seed', values['runs-per-seed'], 1000));
  // A batch takes a few seconds; two minutes is a hang even on a loaded machine.
  const hangMs = positiveNumber('hang-seconds', values['hang-seconds'], 120) * 1000;
  const chosen = chosenTargets(values.target ?? 'all');
  const tallies = new Map(chosen.map((name) => [name, { inputs: 0, skipped: 0, seeds: 0, failures: 0, elapsedMs: 0 } satisfies Tally]));
  const runner = new BatchRunner(hangMs);

  if (values.seed !== undefined) {
    // A replay: the one batch the seed names, once per chosen target.
    const seed = Number(values.seed);
    if (!Number.isSafeInteger(seed)) fail(`--seed must be an integer, not ${JSON.stringify(values.seed)}`);
    for (const target of chosen) await runOne(runner, { target, seed, runsPerSeed }, tallies.get(target)!, hangMs);
  } else {
    const deadline = Date.now() + minutes * 60_000;
    let lastProgress = Date.now();
    process.stdout.write(`fuzzing ${chosen.join(', ')} for ${minutes} min, ${runsPerSeed} inputs per seed\n`);
    for (let turn = 0; Date.now() < deadline; turn++) {
      const target = chosen[turn % chosen.length]!;
      await runOne(runner, { target, seed: randomSeed(), runsPerSeed }, tallies.get(target)!, hangMs);
      if (Date.now() - lastProgress >= 60_000) {
        lastProgress = Date.now();
        for (const [name, t] of tallies) process.stdout.write(`${new Date().toISOString()} ${summary(name, t)}\n`);
      }
    }
  }
  await runner.close();
  process.stdout.write('\n');
  for (const [name, t] of tallies) process.stdout.write(`${summary(name, t)}\n`);
  process.exit([...tallies.values()].some((t) => t.failures > 0) ? 1 : 0);
}

void main().catch((err: unknown) => {
  process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
