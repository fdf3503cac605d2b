// A short nemesis soak with a fixed seed (see test/soak/soak.ts): a minute and a half
// of single faults (kill -9 or SIGSTOP/SIGCONT of any process of a three-node,
// three-server cluster with one process per actor, one at a time) under verifying NBD writers on a shared and
// two unshared vDisks. No client-visible error, no acknowledged write lost, and every
// acknowledged block reads back through every gateway. `npm run soak` runs longer
// and with other seeds.
import { formatReport, runSoak } from '../soak/soak';

const SEED = Number(process.env.STRATA_SOAK_SEED ?? 1);
// Seed 1's plan for 1.5 minutes: six faults in its first 60 s (the last 30 s have none).
const MINUTES = Number(process.env.STRATA_SOAK_MINUTES ?? 1.5);

test(`a ${MINUTES}-minute soak with seed ${SEED}: no client-visible error, no acknowledged write lost`, async () => {
  const report = await runSoak({ minutes: MINUTES, seed: SEED, log: (line) => process.stdout.write(`${line}\n`) });
  const text = formatReport(report);
  console.info(text);
  expect(report.faults.length).toBeGreaterThan(5);
  expect({ errors: report.errors, wrong: report.wrong }).toEqual({ errors: [], wrong: [] });
  expect(report.verified).toBeGreaterThan(0);
}, (MINUTES * 60 + 240) * 1000);
