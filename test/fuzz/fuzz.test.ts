// The bounded fuzz pass of CI: each target of test/fuzz/targets for a fixed number of
// inputs from a fixed seed, so that a run is the same every time and fast (under
// fifteen seconds in all on a busy two-core machine). The long, random-seeded runs
// are `npm run fuzz`; what they find is kept in regressions.test.ts.
import fc from 'fast-check';
import { cborTarget } from './targets/cbor';
import { handshakeTarget } from './targets/handshake';
import { nbdParserTarget } from './targets/nbd-parser';
import { fuzzProperty, type FuzzTarget } from './targets/target';

const SEED = 20261206;

const passes: [FuzzTarget<never>, number][] = [
  [nbdParserTarget as FuzzTarget<never>, 3000],
  [handshakeTarget as FuzzTarget<never>, 2000],
  [cborTarget as FuzzTarget<never>, 4000],
];

describe('fuzz targets, bounded', () => {
  it.each(passes.map(([target, numRuns]) => [target.name, numRuns, target] as const))('%s: %d inputs from a fixed seed', async (_name, numRuns, target) => {
    await fc.assert(fuzzProperty(target), { seed: SEED, numRuns });
  });
});
