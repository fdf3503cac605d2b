// `npm run soak -- [--minutes N] [--seed S] [--mean-gap-ms M]`: the nemesis soak (see
// soak.ts). Prints every fault as it happens, then the report; exits 1 unless the run
// was clean (no client-visible error, no acknowledged write lost). `--seed` repeats a
// run's schedule of faults.
import { parseArgs } from 'node:util';
import { formatReport, runSoak } from './soak';

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`soak: --${name} must be a positive number, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({ options: { minutes: { type: 'string' }, seed: { type: 'string' }, 'mean-gap-ms': { type: 'string' } }, strict: true }));
  } catch (err) {
    process.stderr.write(`soak: ${(err as Error).message}\nusage: npm run soak -- [--minutes N] [--seed S] [--mean-gap-ms M]\n`);
    process.exit(2);
  }
  const minutes = positive('minutes', values.minutes, 5);
  const seed = Math.floor(positive('seed', values.seed, Date.now() % 1_000_000));
  const meanGapMs = positive('mean-gap-ms', values['mean-gap-ms'], 8_000);
  const report = await runSoak({ minutes, seed, meanGapMs, log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write(`${formatReport(report)}\n`);
  process.exit(report.clean ? 0 : 1);
}

void main().catch((err: unknown) => {
  process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
