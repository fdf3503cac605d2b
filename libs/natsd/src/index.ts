// Runs nats-server processes: the embedded server of `strata up` and the servers of
// the integration tests. One server, or several routed into one JetStream cluster on
// loopback; each with its own store directory, stopped by PID.
export { NatsServerProcess, startNatsServers, waitForJetStream, natsServerBinary, freePort, type NatsServerSpec } from './server';
