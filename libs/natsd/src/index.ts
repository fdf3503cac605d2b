// Runs nats-server processes: the embedded server of `strata up` and the servers of
// the integration tests. One server, or several routed into one JetStream cluster on
// loopback; each with its own store directory, stopped by PID.
export { NatsServerProcess, checkServerVersion, planNatsServers, startNatsServers, waitForJetStream, freePort, portIsFree, type NatsServerSpec, type NatsServersOptions } from './server';
export { NATS_SERVER_MIN_VERSION, NATS_SERVER_PINNED, natsServerBinary, natsServerVersion, natsServerCacheDir, versionAtLeast } from './version';
export { FSYNC_ENV, fsyncVerdict, readFsyncReport, requireFsync, type FsyncReport, type FsyncVerdict } from './fsync-check';
export { Role, authorizationBlock, grantAllows, permissionTable, subjectMatches, configGrant, gatewayGrant, ioDirectorGrant, admissionGrant, vdiskControllerGrant, extentStoreGrant, metadataShardGrant, curatorGrant, haAgentGrant, nodeHostGrant, NODE_ACTOR_GRANTS, type Grant, type NatsUser, type NodeScope, type NodeActorRole } from './permissions';
export { NATS_USER_ENV, NATS_PASSWORD_ENV, NATS_CA_ENV, clientSecurityFromEnv, securityEnv, securityOptions, type ClientSecurity } from './client-security';
export { ensureNbdTlsDirs, ensureTlsFiles, ensurePasswords, randomPassword, type NbdTlsDirs, type TlsFiles } from './credentials';
