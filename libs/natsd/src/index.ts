// Runs nats-server processes: the embedded server of `strata up` and the servers of
// the integration tests. One server, or several routed into one JetStream cluster on
// loopback; each with its own store directory, stopped by PID.
export { NatsServerProcess, checkServerVersion, planNatsServers, startNatsServers, waitForJetStream, freePort, portIsFree, type NatsServerSpec, type NatsServersOptions } from './server';
export { NATS_SERVER_MIN_VERSION, NATS_SERVER_PINNED, natsServerBinary, natsServerVersion, natsServerCacheDir, versionAtLeast } from './version';
export { FSYNC_ENV, fsyncVerdict, readFsyncReport, requireFsync, type FsyncReport, type FsyncVerdict } from './fsync-check';
