// Every fuzz target by name, for the bounded jest pass and the long runner.
import { cborTarget } from './cbor';
import { handshakeTarget } from './handshake';
import { nbdParserTarget } from './nbd-parser';
import type { FuzzTarget } from './target';

export const targets: readonly FuzzTarget<never>[] = [nbdParserTarget as FuzzTarget<never>, handshakeTarget as FuzzTarget<never>, cborTarget as FuzzTarget<never>];
export { fuzzProperty, type FuzzTarget } from './target';
