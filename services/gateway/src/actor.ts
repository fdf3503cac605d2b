// The gateway as an actor definition: the NBD server over the bus backend, so every
// vDisk in the configuration is an export. Run alone by main.ts, or with the node's
// other actors in one process.
import type { ActorDefinition } from '@strata/actor';
import { ConfigClient } from '@strata/config-client';
import { WatchCache, openBucket } from '@strata/kv';
import { leaseRecord } from '@strata/lease';
import { buckets, gatewayAttachments, ioChunkBytes, keys } from '@strata/proto';
import { Attachments } from './attachments';
import { BusCatalog } from './bus-backend';
import { PowerOnGuard } from './lease-guard';
import { NbdServer } from './nbd/server';
import { readNbdTlsDir } from './tls-files';
import type { GatewaySettings } from './settings';

export function gatewayActor(s: GatewaySettings): ActorDefinition {
  return {
    actor: 'gateway',
    instance: s.node,
    node: s.node,
    start: async ({ bus, log, metrics }) => {
      // Read first: a bad TLS directory stops the gateway before it opens anything.
      const tls = s.nbdTlsDir === undefined ? undefined : readNbdTlsDir(s.nbdTlsDir);
      const requests = metrics.counter('strata_gateway_requests_total', 'NBD requests answered, by operation and errno (0: success)', ['op', 'errno']);
      const latency = metrics.histogram('strata_gateway_request_seconds', 'Time from reading an NBD request to writing its reply', ['op']);
      const connections = metrics.gauge('strata_gateway_connections', 'Open NBD connections');
      const config = new ConfigClient(bus);
      // The VMs' power-on leases: a VM's vDisk is served only to its current instance.
      const leaseBucket = await openBucket(bus.nc, buckets.ha, leaseRecord);
      const leases = await WatchCache.start(leaseBucket, { key: keys.powerOnLeaseAll, onBadEntry: (key, err) => log.warn({ key, err }, 'skipped a power-on lease that does not decode') });
      const guard = new PowerOnGuard({ leases, readLease: (key) => leaseBucket.get(key), config, node: s.node });
      const hb = await openBucket(bus.nc, buckets.hb, gatewayAttachments);
      const attachments = new Attachments({
        node: s.node,
        intervalMs: s.attachmentsIntervalMs,
        put: (report) => hb.put(keys.gatewayAttachments(s.node), report),
        remove: () => hb.delete(keys.gatewayAttachments(s.node)),
        warn: (err, what) => log.warn({ err }, what),
      });
      const catalog = new BusCatalog({
        bus,
        config,
        guard,
        attachments,
        node: s.node,
        requestTimeoutMs: s.requestTimeoutMs,
        attemptTimeoutMs: s.attemptTimeoutMs,
        openTimeoutMs: s.openTimeoutMs,
        piecesInFlightMax: s.piecesInFlightMax,
        chunkBytes: ioChunkBytes(bus.nc.info?.max_payload),
      });
      const server = new NbdServer({
        catalog,
        log,
        tls,
        connectionsMax: s.connectionsMax,
        limits: {
          handshakeTimeoutMs: s.handshakeTimeoutMs,
          idleTimeoutMs: s.idleTimeoutMs,
          requestsInFlightMax: s.requestsInFlightMax,
          inFlightBytesMax: s.inFlightBytesMax,
        },
        hooks: {
          requestDone: (op, errno, durationMs) => {
            requests.inc({ op, errno: String(errno) });
            latency.observe({ op }, durationMs / 1000);
          },
        },
        onConnectionCount: (n) => connections.set(n),
      });
      const tcp = await server.listenTcp(s.nbdPort, s.nbdHost);
      const host = tcp.host.includes(':') ? `[${tcp.host}]` : tcp.host;
      const scheme = s.nbdTlsDir === undefined ? 'nbd' : 'nbds';
      log.info({ host: tcp.host, port: tcp.port, tls: s.nbdTlsDir !== undefined, uri: `${scheme}://${host}:${tcp.port}/<vdisk>` }, `NBD${s.nbdTlsDir === undefined ? '' : ' over TLS'} listening on ${host}:${tcp.port}`);
      if (s.unixSocket !== undefined) {
        const path = await server.listenUnix(s.unixSocket);
        log.info({ path, uri: `nbd+unix:///<vdisk>?socket=${path}` }, `NBD listening on ${path}`);
      }
      return async () => {
        leases.stop();
        await server.close(s.stopGraceMs);
        await attachments.stop();
        log.info({ stopGraceMs: s.stopGraceMs }, 'NBD listeners and connections closed');
      };
    },
  };
}
