// The integration test harness: real nats-servers and real child processes.
export { startTopology, connectClient, type NatsTopology, type SecureServers } from './nats';
export { startNode, startProgram, run, repoRoot, type ActorProcess, type StartOptions } from './processes';
export { sleep, waitFor } from './util';
export { startConfigReplica, waitForLeader, testTimings, ConfigClient } from './config';
export { freePort } from '@strata/natsd';

/** Both topologies every core integration suite runs against. */
export const topologies = ['single', 'cluster'] as const;

/** A name unique to this test run, for buckets, streams and subjects. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
export { readEvents } from './events';
export {
  freePortRun,
  childPids,
  children,
  childMatching,
  commandLine,
  killIfUnchanged,
  qemuIo,
  qemuImageArgs,
  readBackAcked,
  longestAckGap,
  AckedWriter,
  readDrainState,
  readOwnership,
  createdId,
  waitForDrained,
  sampleDrain,
  type DrainSampler,
  type AckedBlock,
  type AckedWriterOptions,
  type DrainState,
  type RoundFailure,
  type WrittenBlock,
} from './strata';
export { UpClusters, type UpCluster, type UpClusterOptions } from './up-cluster';
export { startZipkin, zipkinTrace, screenshot, type ZipkinServer, type ZipkinSpan } from './zipkin';
