// One batch of the long fuzz run: a target, a seed, a number of inputs; what fast-check
// found, as plain data that crosses a worker boundary.
import fc from 'fast-check';
import { fuzzProperty, targets } from './targets';

export interface BatchJob {
  target: string;
  seed: number;
  runsPerSeed: number;
}

export interface BatchResult {
  inputs: number;
  skipped: number;
  failure?: { path: string; counterexample: string; error: string };
}

export async function runBatch(job: BatchJob): Promise<BatchResult> {
  const target = targets.find((t) => t.name === job.target);
  if (target === undefined) throw new Error(`no target named ${job.target}`);
  const details = await fc.check(fuzzProperty(target), { seed: job.seed, numRuns: job.runsPerSeed });
  const result: BatchResult = { inputs: details.numRuns, skipped: details.numSkips };
  if (details.failed) {
    const err = details.errorInstance;
    result.failure = {
      path: details.counterexamplePath ?? '(none)',
      counterexample: details.counterexample === null ? '(none)' : fc.stringify(details.counterexample[0]),
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    };
  }
  return result;
}
