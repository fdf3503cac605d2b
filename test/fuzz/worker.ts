// The worker thread of the long fuzz run: runs the batches main.ts sends, one at a
// time, and answers each with its result. A worker, so that an input which makes a
// synchronous decoder loop forever is caught: main.ts stops a batch that does not
// answer in time and calls it a hang.
import { parentPort } from 'node:worker_threads';
import { runBatch, type BatchJob } from './batch';

const port = parentPort;
if (port === null) throw new Error('worker.ts runs as a worker thread of main.ts');
port.on('message', (job: BatchJob) => {
  void runBatch(job).then(
    (result) => port.postMessage(result),
    (err: unknown) => port.postMessage({ inputs: 0, skipped: 0, failure: { path: '(none)', counterexample: '(none)', error: `the batch itself failed: ${(err as Error).stack ?? String(err)}` } }),
  );
});
