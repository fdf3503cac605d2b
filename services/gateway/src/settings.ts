// The gateway's settings (flags or STRATA_* variables), checked at start-up: where
// to listen, TLS, and the limits on connections, requests and time.
import { z } from 'zod';
import { isLoopbackHost, millis } from '@strata/actor';
import { objectName } from '@strata/proto';

const MiB = 1024 * 1024;
const count = (defaultValue: number): z.ZodDefault<z.ZodCoercedNumber<unknown>> => z.coerce.number().int().positive().default(defaultValue);

export const gatewaySettings = z
  .object({
    /** The node this gateway runs on; its io-director serves the I/O (`n1`). */
    node: objectName,
    /**
     * TCP address of the NBD listener: loopback unless told otherwise. Plain NBD has no
     * authentication, so any other address needs nbdTlsDir (or nbdInsecure).
     */
    nbdHost: z.string().min(1).default('127.0.0.1'),
    /**
     * NBD over TLS: a directory with ca-cert.pem, server-cert.pem and server-key.pem
     * (QEMU's names; `strata auth init` writes nbd-server/). Every client must then
     * NBD_OPT_STARTTLS and present a certificate signed by ca-cert.pem.
     */
    nbdTlsDir: z.string().min(1).optional(),
    /** Serve plain NBD on a non-loopback nbdHost anyway (a network the operator trusts). */
    nbdInsecure: z.stringbool().default(false),
    /** 10809 is NBD's IANA port; 0 picks a free one (the log says which). */
    nbdPort: z.coerce.number().int().min(0).max(65_535).default(10_809),
    /** Also listen on this unix socket path. */
    unixSocket: z.string().min(1).optional(),
    /** From accept to the end of option haggling. */
    handshakeTimeoutMs: millis(10_000),
    /** Close a transmission-phase connection idle this long; 0 (the default) never does. */
    idleTimeoutMs: z.coerce.number().int().nonnegative().default(0),
    /** Budget of one NBD request at the cluster, retries included; beyond it the client gets EIO. */
    requestTimeoutMs: millis(30_000),
    /**
     * One attempt of one piece; a lost reply is retried after this long. A request in
     * flight at a vdisk-controller that crashes gets no reply at all, so this bounds
     * the I/O pause of a controller crash (bench:failover measures it).
     */
    attemptTimeoutMs: millis(3_000),
    /**
     * Budget of an export's open (attaching the vDisk at this node's io-director),
     * retries included; part of the handshake, so it must end before handshakeTimeoutMs.
     */
    openTimeoutMs: millis(8_000),
    /** Requests served at once per connection; beyond it the socket is not read (backpressure). */
    requestsInFlightMax: count(64),
    /** READ/WRITE bytes held at once per connection; at least one 32 MiB request. */
    inFlightBytesMax: z.coerce.number().int().min(32 * MiB).default(64 * MiB),
    /** Bus messages in flight for one NBD request. */
    piecesInFlightMax: count(16),
    /** NBD connections served at once. */
    connectionsMax: count(128),
    /** On SIGTERM, how long connections get to answer what is in flight. */
    stopGraceMs: millis(5_000),
    /** How often the report of open vDisks (hb `attach.<node>`) is rewritten besides each change. */
    attachmentsIntervalMs: millis(5_000),
  })
  .strict()
  .refine((s) => s.nbdTlsDir !== undefined || s.nbdInsecure || isLoopbackHost(s.nbdHost), {
    message: 'plain NBD has no authentication: a listener beyond loopback needs --nbd-tls-dir DIR (TLS with client certificates), or --nbd-insecure true to serve it in plain text anyway',
    path: ['nbdHost'],
  })
  .refine((s) => s.attemptTimeoutMs <= s.requestTimeoutMs, { message: 'attemptTimeoutMs must not exceed requestTimeoutMs', path: ['attemptTimeoutMs'] })
  .refine((s) => s.openTimeoutMs < s.handshakeTimeoutMs, { message: 'openTimeoutMs must be less than handshakeTimeoutMs', path: ['openTimeoutMs'] })
  // runActor forces an exit 10 s after SIGTERM; the grace must end before that.
  .refine((s) => s.stopGraceMs <= 8_000, { message: 'stopGraceMs must be at most 8000', path: ['stopGraceMs'] });
export type GatewaySettings = z.output<typeof gatewaySettings>;
