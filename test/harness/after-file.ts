// Set up for every integration, fault and end-to-end test file (jest's
// setupFilesAfterEnv): the suite's bus credentials are set before the file runs,
// and after it whatever child process the file left running is killed by
// PID and named. Tests stop what they start; this catches a set-up that failed half
// way (a cluster started, then an assertion threw before the test held it).
import { applySuiteSecurity } from './suite-security';
import { killTracked } from './util';

// Before the file: the bus credentials of the suite (suite-security.ts).
applySuiteSecurity();

afterAll(async () => {
  const killed = await killTracked();
  if (killed.length > 0) console.warn(`killed ${killed.length} processes this test file left running:\n${killed.join('\n')}`);
}, 10_000);
