// One NBD client connection on a socket: the fixed-newstyle handshake, then the
// transmission loop that reads requests, runs many at once against the block device
// and writes each reply whole, in whatever order they finish. The bytes come from
// codec.ts and the decisions from request-rules.ts; this file only does the I/O,
// enforces the limits, and never lets a client's behaviour throw out of it. With TLS
// configured the handshake runs in FORCEDTLS mode (tls-rules.ts): the socket is
// upgraded at NBD_OPT_STARTTLS and everything after it goes over TLS.
import type { Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { StrataError, assert } from '@strata/errors';
import { SpanAttr, SpanKind, recordSpanError, trace, withSpan, type Span } from '@strata/tracing';
import type { BlockDevice, ExportCatalog } from '../backend';
import {
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeOptionError,
  encodeOptionReply,
  encodeServerEntry,
  encodeSimpleReplyHeader,
  parseClientFlags,
  parseExportNameData,
  parseInfoRequest,
  parseOptionHeader,
  parseRequestHeader,
  type ClientFlags,
} from './codec';
import { errnoFor } from './errno';
import {
  BLOCK_SIZE_MAX_BYTES,
  BLOCK_SIZE_MIN_BYTES,
  BLOCK_SIZE_PREFERRED_BYTES,
  CLIENT_FLAGS_BYTES,
  MAX_PAYLOAD_BYTES,
  NbdErrno,
  NbdOpt,
  NbdRep,
  OPTION_HEADER_BYTES,
  REQUEST_HEADER_BYTES,
} from './protocol';
import { decideRequest, transmissionFlags, type BlockOp, type RequestDecision } from './request-rules';
import { EndOfStream, SocketReader } from './socket-reader';
import { gateOption } from './tls-rules';

/** The structural subset of a pino logger the NBD server uses. */
export interface NbdLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: NbdLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Optional observers, for metrics. They must not throw; if they do, it is logged. */
export interface NbdHooks {
  /** A request was answered; `op` is `refused` for one rejected before it ran. */
  requestDone?(op: BlockOp | 'refused', errno: number, durationMs: number): void;
}

export interface ConnectionLimits {
  /** From accept to the end of option haggling; a slower client is dropped. */
  handshakeTimeoutMs: number;
  /** In transmission, a connection with nothing in flight and no traffic for this long is closed; 0 disables. */
  idleTimeoutMs: number;
  /** Requests being served at once; beyond it we stop reading the socket until replies drain. */
  requestsInFlightMax: number;
  /** READ and WRITE bytes held by requests in flight (one request may always run alone). */
  inFlightBytesMax: number;
  /** Options one handshake may send. */
  optionsMax: number;
  /** Option data we parse; longer options are skipped and answered NBD_REP_ERR_TOO_BIG. */
  optionDataMaxBytes: number;
  /** Unread bytes we buffer before pausing the socket. */
  readHighWaterBytes: number;
  /** After we end our side, how long we wait for the client to close before destroying the socket. */
  lingerMs: number;
}

/**
 * TLS for NBD (PEM text): the server's certificate and key, and the CA its clients'
 * certificates must chain to. A client without such a certificate is refused.
 */
export interface NbdTlsCredentials {
  ca: string;
  cert: string;
  key: string;
}

export const defaultConnectionLimits: ConnectionLimits = {
  handshakeTimeoutMs: 10_000,
  // Off by default: a VM's disk may rightly sit idle for hours, and closing it would
  // fail the VM's next I/O. TCP keepalive still finds dead peers.
  idleTimeoutMs: 0,
  requestsInFlightMax: 64,
  inFlightBytesMax: 64 * 1024 * 1024,
  // nbdinfo --list sends one NBD_OPT_INFO per export after NBD_OPT_LIST.
  optionsMax: 4096,
  optionDataMaxBytes: 16 * 1024,
  readHighWaterBytes: 256 * 1024,
  lingerMs: 2_000,
};

/** Checks limits at start-up: a bad one is a configuration bug. */
export function checkLimits(limits: ConnectionLimits): void {
  for (const [key, value] of Object.entries(limits)) assert(Number.isSafeInteger(value) && value >= 0, `${key} must be a non-negative integer`);
  assert(limits.handshakeTimeoutMs > 0, 'handshakeTimeoutMs must be positive');
  assert(limits.requestsInFlightMax > 0, 'requestsInFlightMax must be positive');
  assert(limits.inFlightBytesMax >= MAX_PAYLOAD_BYTES, `inFlightBytesMax must be at least one maximum request (${MAX_PAYLOAD_BYTES} bytes)`);
  assert(limits.optionDataMaxBytes >= 4 + 4096 + 2, 'optionDataMaxBytes must hold an NBD_OPT_GO with a 4096-byte name');
  assert(limits.readHighWaterBytes > 0, 'readHighWaterBytes must be positive');
}

/** The client broke the protocol in a way that ends the connection. */
class ConnectionRefused extends Error {
  override readonly name = 'ConnectionRefused';
}

/** How a backend's refusal reads to an NBD client during negotiation: "not available". */
const REP_BACKEND_FAILED = NbdRep.ERR_UNKNOWN;

let nextConnectionId = 1;

const tracer = trace.getTracer('@strata/gateway');

/** Span names, made once: `nbd write`. */
const spanNames: Readonly<Record<BlockOp, string>> = { read: 'nbd read', write: 'nbd write', flush: 'nbd flush', trim: 'nbd trim', zero: 'nbd zero' };

/**
 * An NBD command is where an I/O's trace starts: a root span (whatever context the
 * transmission loop happens to run in), the server side of the client's request. The
 * bus requests of its pieces are its children.
 */
const commandSpanOptions = { kind: SpanKind.SERVER, root: true } as const;

export class NbdConnection {
  readonly id: number;
  readonly remote: string;
  /** Resolves when the socket is closed. */
  readonly closed: Promise<void>;
  private phase: 'handshake' | 'transmission' = 'handshake';
  /** The socket in use: the accepted one, or the TLS socket over it after NBD_OPT_STARTTLS. */
  private socket: Socket;
  private secured = false;
  private stopping = false;
  private inFlight = 0;
  private inFlightBytes = 0;
  private wakeCapacity: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];
  /** The socket is corked until the end of this turn of the event loop (see writeReply). */
  private corked = false;
  /** Replies handed to the socket and not yet flushed: settled when the socket closes. */
  private readonly pendingWrites = new Set<() => void>();
  private reader: SocketReader;
  private readonly handshakeTimer: NodeJS.Timeout;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly log: NbdLogger;

  private readonly onClose: () => void;

  constructor(
    socket: Socket,
    private readonly catalog: ExportCatalog,
    private readonly limits: ConnectionLimits,
    log: NbdLogger,
    private readonly hooks: NbdHooks = {},
    private readonly tls?: NbdTlsCredentials,
  ) {
    this.id = nextConnectionId++;
    this.socket = socket;
    this.remote = socket.remoteAddress === undefined ? `unix#${this.id}` : `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = log;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    let resolveClosed: () => void = () => {};
    this.closed = new Promise((resolve) => (resolveClosed = resolve));
    let isClosed = false;
    this.onClose = () => {
      if (isClosed) return;
      isClosed = true;
      clearTimeout(this.handshakeTimer);
      if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
      for (const settle of this.pendingWrites) settle();
      this.pendingWrites.clear();
      resolveClosed();
    };
    this.watch(socket);
    this.reader = new SocketReader(socket, limits.readHighWaterBytes);
    this.handshakeTimer = setTimeout(() => {
      this.log.warn({ conn: this.id, remote: this.remote, timeoutMs: limits.handshakeTimeoutMs }, 'handshake timed out; closing the connection');
      this.socket.destroy();
    }, limits.handshakeTimeoutMs);
  }

  /** The connection is closed when `socket` closes; its errors end this connection only. */
  private watch(socket: Socket): void {
    // A socket error (reset by the peer, EPIPE) must never reach the process: it ends
    // this connection only, through 'close'.
    socket.on('error', (err) => this.log.debug({ conn: this.id, remote: this.remote, err }, 'socket error'));
    socket.once('close', this.onClose);
  }

  /** Serves the connection until it ends. Never rejects. */
  async run(): Promise<void> {
    try {
      this.send(encodeGreeting());
      const device = await this.negotiate();
      if (device === undefined) return;
      clearTimeout(this.handshakeTimer);
      this.phase = 'transmission';
      this.log.debug({ conn: this.id, remote: this.remote, export: device.name }, 'transmission started');
      if (this.limits.idleTimeoutMs > 0) {
        this.socket.setTimeout(this.limits.idleTimeoutMs);
        this.socket.on('timeout', () => {
          if (this.inFlight > 0) return;
          this.log.info({ conn: this.id, remote: this.remote, idleTimeoutMs: this.limits.idleTimeoutMs }, 'idle connection closed');
          this.reader.stop();
        });
      }
      const release = device.hold?.();
      try {
        await this.transmit(device);
      } finally {
        release?.();
      }
    } catch (err) {
      if (err instanceof EndOfStream) {
        if (err.partialBytes > 0 || this.phase === 'handshake') this.log.debug({ conn: this.id, remote: this.remote, phase: this.phase, reason: err.message }, 'connection ended');
      } else if (err instanceof ConnectionRefused) {
        this.log.warn({ conn: this.id, remote: this.remote, phase: this.phase, reason: err.message }, 'closing the connection');
      } else {
        // A bug of ours: this connection ends, the others carry on.
        this.log.error({ conn: this.id, remote: this.remote, err }, 'connection failed');
      }
    } finally {
      this.reader.stop();
      await this.drained();
      this.end();
    }
  }

  /** Stops taking requests, lets those in flight answer for up to `graceMs`, then closes. */
  async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.phase === 'handshake') {
      this.socket.destroy();
      return this.closed;
    }
    this.reader.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.drained(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    // Replies that drained are in the kernel's send buffer: closing sends them, then FIN.
    this.socket.destroy();
    await this.closed;
  }

  // ---- Handshake ---------------------------------------------------------------------------

  /**
   * Option haggling; returns the chosen device, or undefined when the client aborted.
   * With TLS configured, the options before NBD_OPT_STARTTLS are refused (tls-rules.ts).
   */
  private async negotiate(): Promise<BlockDevice | undefined> {
    const flags = parseClientFlags(await this.reader.read(CLIENT_FLAGS_BYTES));
    if (!flags.ok) throw new ConnectionRefused(flags.reason);
    for (let count = 0; ; count++) {
      if (this.stopping) return undefined;
      if (count >= this.limits.optionsMax) throw new ConnectionRefused(`more than ${this.limits.optionsMax} options`);
      const header = parseOptionHeader(await this.reader.read(OPTION_HEADER_BYTES));
      if (!header.ok) throw new ConnectionRefused(header.reason);
      const { option, lengthBytes } = header.value;
      this.log.debug({ conn: this.id, remote: this.remote, option, lengthBytes }, 'option received');
      if (lengthBytes > this.limits.optionDataMaxBytes) {
        if (option === NbdOpt.EXPORT_NAME) throw new ConnectionRefused(`NBD_OPT_EXPORT_NAME with ${lengthBytes} bytes of data`);
        // The length tells us where the next option starts, so the client gets an answer.
        await this.reader.skip(lengthBytes);
        this.send(encodeOptionError(option, NbdRep.ERR_TOO_BIG, `option data of ${lengthBytes} bytes exceeds ${this.limits.optionDataMaxBytes}`));
        continue;
      }
      const data = await this.reader.read(lengthBytes);
      const gate = gateOption(option, lengthBytes, { configured: this.tls !== undefined, secured: this.secured });
      if (gate.action === 'close') throw new ConnectionRefused(gate.reason);
      if (gate.action === 'refuse') {
        this.log.debug({ conn: this.id, remote: this.remote, option, reply: gate.reply, message: gate.message }, 'option refused');
        this.send(encodeOptionError(option, gate.reply, gate.message));
        continue;
      }
      if (gate.action === 'starttls') {
        await this.startTls(option);
        continue;
      }
      const device = await this.handleOption(option, data, flags.value);
      if (device === 'abort') return undefined;
      if (device !== undefined) return device;
    }
  }

  /** Answers one option; returns a device to enter transmission, 'abort', or undefined to go on. */
  private async handleOption(option: number, data: Uint8Array, flags: ClientFlags): Promise<BlockDevice | 'abort' | undefined> {
    const fail = (type: NbdRep, message: string): undefined => {
      this.log.debug({ conn: this.id, remote: this.remote, option, reply: type, message }, 'option refused');
      this.send(encodeOptionError(option, type, message));
      return undefined;
    };
    switch (option) {
      case NbdOpt.EXPORT_NAME: {
        // This option has no error reply: the spec says a failure terminates the session.
        const name = parseExportNameData(data);
        if (!name.ok) throw new ConnectionRefused(`NBD_OPT_EXPORT_NAME: ${name.reason}`);
        const device = await this.catalog.open(name.value).catch((err: unknown) => {
          throw new ConnectionRefused(`export ${JSON.stringify(name.value)} is not available: ${describe(err)}`);
        });
        if (device === undefined) throw new ConnectionRefused(`no export named ${JSON.stringify(name.value)}`);
        this.send(encodeExportNameReply(device.sizeBytes, transmissionFlags(device.multiConn, device.readOnly === true), flags.noZeroes));
        return device;
      }
      case NbdOpt.ABORT:
        this.send(encodeOptionReply(option, NbdRep.ACK));
        return 'abort';
      case NbdOpt.LIST: {
        if (data.length !== 0) return fail(NbdRep.ERR_INVALID, 'NBD_OPT_LIST takes no data');
        let exports;
        try {
          exports = await this.catalog.list();
        } catch (err) {
          return fail(REP_BACKEND_FAILED, `the export list is not available: ${describe(err)}`);
        }
        const replies = exports.map((e) => encodeOptionReply(option, NbdRep.SERVER, encodeServerEntry(e.name, e.description)));
        this.send(Buffer.concat([...replies, encodeOptionReply(option, NbdRep.ACK)]));
        return undefined;
      }
      case NbdOpt.INFO:
      case NbdOpt.GO: {
        const request = parseInfoRequest(data);
        if (!request.ok) return fail(NbdRep.ERR_INVALID, request.reason);
        let device: BlockDevice | undefined;
        try {
          device = await this.catalog.open(request.value.name);
        } catch (err) {
          return fail(REP_BACKEND_FAILED, `export ${JSON.stringify(request.value.name)} is not available: ${describe(err)}`);
        }
        if (device === undefined) return fail(NbdRep.ERR_UNKNOWN, `no export named ${JSON.stringify(request.value.name)}`);
        // NBD_INFO_EXPORT is mandatory; the block sizes go along whether asked for or
        // not (the spec allows it), so a client never sends more than 32 MiB at once.
        this.send(
          Buffer.concat([
            encodeOptionReply(option, NbdRep.INFO, encodeInfoExport(device.sizeBytes, transmissionFlags(device.multiConn, device.readOnly === true))),
            encodeOptionReply(option, NbdRep.INFO, encodeInfoBlockSize(BLOCK_SIZE_MIN_BYTES, BLOCK_SIZE_PREFERRED_BYTES, BLOCK_SIZE_MAX_BYTES)),
            encodeOptionReply(option, NbdRep.ACK),
          ]),
        );
        return option === NbdOpt.GO ? device : undefined;
      }
      default:
        // STRUCTURED_REPLY, metadata contexts, extended headers and anything newer:
        // simple replies only, so the client falls back to what we speak.
        return fail(NbdRep.ERR_UNSUP, `option ${option} is not supported`);
    }
  }

  /**
   * Acknowledges NBD_OPT_STARTTLS and runs the TLS handshake over the socket; haggling
   * goes on over TLS. A client that sent anything before the handshake, failed it, or
   * whose certificate does not chain to the CA is refused.
   */
  private async startTls(option: number): Promise<void> {
    assert(this.tls !== undefined, 'STARTTLS passes the gate only with TLS configured');
    const raw = this.socket;
    await new Promise<void>((resolve) => raw.write(encodeOptionReply(option, NbdRep.ACK), () => resolve()));
    const early = this.reader.release();
    if (early > 0) throw new ConnectionRefused(`${early} bytes arrived after NBD_OPT_STARTTLS, before the TLS handshake`);
    // A TLS server that never listens: the socket is handed to it (its documented
    // 'connection' injection), and it runs the handshake and checks the client's
    // certificate against the CA as any tls.Server does. It hands over every client
    // that completes the handshake; the one whose certificate it could not verify (or
    // that sent none) is refused here, by name in the log.
    const server = createTlsServer({ ...this.tls, requestCert: true, rejectUnauthorized: false, handshakeTimeout: this.limits.handshakeTimeoutMs });
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      server.once('secureConnection', resolve);
      server.once('tlsClientError', (err) => reject(new ConnectionRefused(`TLS handshake failed: ${err.message}`)));
      raw.once('close', () => reject(new EndOfStream('the peer closed the connection during the TLS handshake', 0)));
      server.emit('connection', raw);
    });
    this.socket = secure;
    this.watch(secure);
    if (!secure.authorized) throw new ConnectionRefused(`client refused: ${describeClientCertificate(secure)}`);
    this.reader = new SocketReader(secure, this.limits.readHighWaterBytes);
    this.secured = true;
    this.log.debug({ conn: this.id, remote: this.remote, protocol: secure.getProtocol(), subject: secure.getPeerCertificate().subject?.CN }, 'TLS started');
  }

  // ---- Transmission ------------------------------------------------------------------------

  private async transmit(device: BlockDevice): Promise<void> {
    for (;;) {
      if (this.stopping) return;
      const header = parseRequestHeader(await this.reader.read(REQUEST_HEADER_BYTES));
      if (!header.ok) throw new ConnectionRefused(header.reason);
      const { handle } = header.value;
      const decision = decideRequest(header.value, device.sizeBytes, device.readOnly === true);
      switch (decision.action) {
        case 'close':
          throw new ConnectionRefused(decision.reason);
        case 'disconnect':
          this.log.debug({ conn: this.id, remote: this.remote }, 'client disconnected (NBD_CMD_DISC)');
          return;
        case 'refuse': {
          await this.reader.skip(decision.payloadBytes);
          await this.capacity(0);
          this.begin(0);
          this.log.debug({ conn: this.id, remote: this.remote, errno: decision.errno, reason: decision.reason }, 'request refused');
          void this.answer(handle, decision.errno, undefined, 0, 'refused', performance.now());
          break;
        }
        case 'execute': {
          const costBytes = decision.op === 'read' || decision.op === 'write' ? decision.lengthBytes : 0;
          // Wait before reading a WRITE's data, so a full connection holds no more than the limit.
          await this.capacity(costBytes);
          this.begin(costBytes);
          let payload: Buffer | undefined;
          try {
            payload = decision.payloadBytes > 0 ? await this.reader.read(decision.payloadBytes) : undefined;
          } catch (err) {
            this.complete(costBytes);
            throw err;
          }
          void this.execute(device, handle, decision, payload, costBytes);
          break;
        }
      }
    }
  }

  private async execute(device: BlockDevice, handle: bigint, decision: Extract<RequestDecision, { action: 'execute' }>, payload: Buffer | undefined, costBytes: number): Promise<void> {
    const startedMs = performance.now();
    const span = tracer.startSpan(spanNames[decision.op], commandSpanOptions);
    if (span.isRecording()) this.describeSpan(span, device, decision);
    let errno: NbdErrno = NbdErrno.OK;
    let data: Uint8Array | undefined;
    try {
      data = await withSpan(span, () => this.perform(device, decision, payload));
    } catch (err) {
      errno = errnoFor(err);
      data = undefined;
      recordSpanError(span, err);
      const fields = { conn: this.id, remote: this.remote, export: device.name, op: decision.op, offset: decision.offset, lengthBytes: decision.lengthBytes, errno, err };
      if (err instanceof StrataError) this.log.warn(fields, 'request failed');
      else this.log.error(fields, 'request failed with an unexpected error');
    }
    try {
      await this.answer(handle, errno, data, costBytes, decision.op, startedMs);
    } finally {
      // The span covers the reply too: it ends when the reply is in the socket's hands.
      span.setAttribute(SpanAttr.nbdErrno, errno);
      span.end();
    }
  }

  /** Runs one command against the device; a read's data, else undefined. */
  private async perform(device: BlockDevice, decision: Extract<RequestDecision, { action: 'execute' }>, payload: Buffer | undefined): Promise<Uint8Array | undefined> {
    switch (decision.op) {
      case 'read': {
        const data = await device.read(decision.offset, decision.lengthBytes);
        // A short or long payload would desynchronise the client for good.
        if (data.length !== decision.lengthBytes) throw new Error(`backend returned ${data.length} bytes for a read of ${decision.lengthBytes}`);
        return data;
      }
      case 'write':
        assert(payload !== undefined && payload.length === decision.lengthBytes, 'a write has its payload');
        await device.write(decision.offset, payload, decision.fua);
        return undefined;
      case 'flush':
        await device.flush();
        return undefined;
      case 'trim':
      case 'zero':
        await device.zero(decision.offset, decision.lengthBytes);
        return undefined;
    }
  }

  private describeSpan(span: Span, device: BlockDevice, decision: Extract<RequestDecision, { action: 'execute' }>): void {
    span.setAttributes({
      [SpanAttr.vdiskName]: device.name,
      [SpanAttr.ioOp]: decision.op,
      [SpanAttr.nbdConnection]: this.id,
      ...(device.vdisk === undefined ? {} : { [SpanAttr.vdisk]: String(device.vdisk) }),
      ...(decision.op === 'flush' ? {} : { [SpanAttr.offset]: decision.offset, [SpanAttr.length]: decision.lengthBytes }),
      ...(decision.fua ? { [SpanAttr.nbdFua]: true } : {}),
    });
  }

  /** Writes one reply (header and data together), then releases the request's share of the limits. */
  private async answer(handle: bigint, errno: number, data: Uint8Array | undefined, costBytes: number, op: BlockOp | 'refused', startedMs: number): Promise<void> {
    try {
      await this.writeReply(handle, errno, data);
    } finally {
      this.complete(costBytes);
      try {
        this.hooks.requestDone?.(op, errno, performance.now() - startedMs);
      } catch (err) {
        this.log.error({ err }, 'requestDone hook failed');
      }
    }
  }

  private writeReply(handle: bigint, errno: number, data: Uint8Array | undefined): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) {
        resolve();
        return;
      }
      const settle = (): void => {
        this.pendingWrites.delete(settle);
        resolve();
      };
      this.pendingWrites.add(settle);
      // Both writes go into the socket's buffer in the same tick, so no other reply can
      // come between a header and its data. Replies finished in the same turn of the
      // event loop leave in one system call: the socket stays corked until its end.
      this.corkUntilTurnEnds();
      if (data === undefined) {
        this.socket.write(encodeSimpleReplyHeader(errno, handle), settle);
      } else {
        this.socket.write(encodeSimpleReplyHeader(errno, handle));
        this.socket.write(data, settle);
      }
    });
  }

  private corkUntilTurnEnds(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  // ---- Limits ------------------------------------------------------------------------------

  private async capacity(costBytes: number): Promise<void> {
    while (this.inFlight >= this.limits.requestsInFlightMax || (this.inFlight > 0 && this.inFlightBytes + costBytes > this.limits.inFlightBytesMax)) {
      await new Promise<void>((resolve) => (this.wakeCapacity = resolve));
    }
  }

  private begin(costBytes: number): void {
    this.inFlight++;
    this.inFlightBytes += costBytes;
  }

  private complete(costBytes: number): void {
    this.inFlight--;
    this.inFlightBytes -= costBytes;
    assert(this.inFlight >= 0 && this.inFlightBytes >= 0, 'in-flight accounting never goes negative');
    const wake = this.wakeCapacity;
    this.wakeCapacity = undefined;
    wake?.();
    if (this.inFlight === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  private drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  // ---- Socket ------------------------------------------------------------------------------

  private send(bytes: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Ends our side after the replies flush; destroys the socket if the client never closes its side. */
  private end(): void {
    if (this.socket.destroyed) return;
    this.socket.end();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), this.limits.lingerMs);
  }
}

/** Why a TLS client was not authorized: it sent no certificate, or OpenSSL's verdict on the one it sent. */
function describeClientCertificate(secure: TLSSocket): string {
  const certificate = secure.getPeerCertificate();
  if (certificate === null || Object.keys(certificate).length === 0) return 'it sent no certificate (the gateway verifies clients against its CA)';
  const error = secure.authorizationError;
  const cn = certificate.subject?.CN;
  return `its certificate (${Array.isArray(cn) ? cn.join(', ') : (cn ?? 'no CN')}) does not verify against the gateway's CA: ${typeof error === 'string' ? error : (error?.message ?? 'unknown error')}`;
}

function describe(err: unknown): string {
  return err instanceof StrataError ? err.toString() : err instanceof Error ? err.message : String(err);
}
