// `npm run fuzz -- [--minutes N] [--target nbd-parser|handshake|cbor|all] [--runs-per-seed R] [--seed S]`:
// the long fuzz run. Runs each chosen target with fast-check, R inputs per random
// seed, seed after seed, until the time is up (targets take turns when there are
// several); prints the inputs run and the failures per target. A failure prints its
// seed, path and shrunk counterexample and is written under .fuzz/failures/ (git
// ignores it); `--seed S --runs-per-seed R --target T` replays that batch. Exits 1 if
// anything failed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { fuzzProperty, targets, type FuzzTarget } from './targets';

const usage = 'usage: npm run fuzz -- [--minutes N] [--target nbd-parser|handshake|cbor|all] [--runs-per-seed R] [--seed S]';
const failuresDir = join(__dirname, '..', '..', '.fuzz', 'failures');

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

function chosenTargets(name: string): FuzzTarget<never>[] {
  if (name === 'all') return [...targets];
  const target = targets.find((t) => t.name === name);
  if (target === undefined) fail(`no target named ${JSON.stringify(name)}; the targets are ${targets.map((t) => t.name).join(', ')}, all`);
  return [target];
}

/** A seed fast-check accepts: a 32-bit signed integer. */
const randomSeed = (): number => (Math.random() * 2 ** 32) | 0;

/** Prints and files one failure, with everything needed to replay it. */
function report(target: FuzzTarget<never>, runsPerSeed: number, details: fc.RunDetails<[never]>): void {
  const counterexample = details.counterexample === null ? '(none)' : fc.stringify(details.counterexample[0]);
  const error = details.errorInstance instanceof Error ? (details.errorInstance.stack ?? details.errorInstance.message) : String(details.errorInstance);
  const text = [
    `target: ${target.name}`,
    `seed: ${details.seed}`,
    `path: ${details.counterexamplePath ?? '(none)'}`,
    `replay: npm run fuzz -- --target ${target.name} --seed ${details.seed} --runs-per-seed ${runsPerSeed}`,
    `counterexample: ${counterexample}`,
    `error: ${error}`,
    '',
  ].join('\n');
  process.stdout.write(`\nFAILURE\n${text}\n`);
  mkdirSync(failuresDir, { recursive: true });
  const file = join(failuresDir, `${target.name}-${details.seed}.txt`);
  writeFileSync(file, text);
  process.stdout.write(`written to ${file}\n`);
}

async function runBatch(target: FuzzTarget<never>, seed: number, runsPerSeed: number, tally: Tally): Promise<void> {
  const started = Date.now();
  const details = await fc.check(fuzzProperty(target), { seed, numRuns: runsPerSeed });
  tally.elapsedMs += Date.now() - started;
  tally.inputs += details.numRuns;
  tally.skipped += details.numSkips;
  tally.seeds++;
  if (details.failed) {
    tally.failures++;
    report(target, runsPerSeed, details);
  }
}

function summary(name: string, t: Tally): string {
  return `${name}: ${t.inputs} inputs (${t.skipped} skipped) in ${(t.elapsedMs / 60_000).toFixed(1)} min, ${t.seeds} seeds, ${t.failures} failures`;
}

async function main(): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({ options: { minutes: { type: 'string' }, target: { type: 'string' }, 'runs-per-seed': { type: 'string' }, seed: { type: 'string' } }, strict: true }));
  } catch (err) {
    fail((err as Error).message);
  }
  const minutes = positiveNumber('minutes', values.minutes, 10);
  const runsPerSeed = Math.floor(positiveNumber('runs-per-seed', values['runs-per-seed'], 1000));
  const chosen = chosenTargets(values.target ?? 'all');
  const tallies = new Map(chosen.map((t) => [t.name, { inputs: 0, skipped: 0, seeds: 0, failures: 0, elapsedMs: 0 } satisfies Tally]));
  const tallyOf = (t: FuzzTarget<never>): Tally => tallies.get(t.name)!;

  if (values.seed !== undefined) {
    // A replay: the one batch the seed names, once per chosen target.
    const seed = Number(values.seed);
    if (!Number.isSafeInteger(seed)) fail(`--seed must be an integer, not ${JSON.stringify(values.seed)}`);
    for (const target of chosen) await runBatch(target, seed, runsPerSeed, tallyOf(target));
  } else {
    const deadline = Date.now() + minutes * 60_000;
    let lastProgress = Date.now();
    process.stdout.write(`fuzzing ${chosen.map((t) => t.name).join(', ')} for ${minutes} min, ${runsPerSeed} inputs per seed\n`);
    for (let turn = 0; Date.now() < deadline; turn++) {
      const target = chosen[turn % chosen.length]!;
      const seed = randomSeed();
      await runBatch(target, seed, runsPerSeed, tallyOf(target));
      if (Date.now() - lastProgress >= 60_000) {
        lastProgress = Date.now();
        for (const [name, t] of tallies) process.stdout.write(`${new Date().toISOString()} ${summary(name, t)}\n`);
      }
    }
  }
  process.stdout.write('\n');
  for (const [name, t] of tallies) process.stdout.write(`${summary(name, t)}\n`);
  process.exit([...tallies.values()].some((t) => t.failures > 0) ? 1 : 0);
}

void main().catch((err: unknown) => {
  process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
