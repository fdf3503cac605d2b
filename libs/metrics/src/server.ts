// The scrape endpoint: GET /metrics (Prometheus text format) and GET /healthz on a small
// node:http server, bound to loopback unless the caller says otherwise.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics';

export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (read the real one from the result). */
  port: number;
  /** Interface to bind. Default 127.0.0.1: metrics are not for the open network unless asked. */
  host?: string;
}

export interface MetricsServer {
  /** The port actually bound (the chosen one when 0 was asked for). */
  readonly port: number;
  readonly host: string;
  /** Stops listening and drops open connections (a scrape in progress is cut). Idempotent. */
  close(): Promise<void>;
}

// Limits: a scrape is small and quick; anything slower is a stuck or hostile client.
const REQUEST_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 5_000;
const CONNECTIONS_MAX = 32;

function reply(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(metrics: Metrics, req: IncomingMessage, res: ServerResponse): void {
  // Only the path matters; Prometheus may add query parameters.
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method === 'GET' && path === '/metrics') {
    metrics.registry.metrics().then(
      (text) => reply(res, 200, metrics.registry.contentType, text),
      (err: unknown) => reply(res, 500, 'text/plain; charset=utf-8', `collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
    return;
  }
  if (req.method === 'GET' && path === '/healthz') {
    reply(res, 200, 'text/plain; charset=utf-8', 'ok');
    return;
  }
  reply(res, 404, 'text/plain; charset=utf-8', 'not found\n');
}

/** Serves `metrics` over HTTP. Resolves once listening; rejects if the port cannot be bound. */
export function startMetricsServer(metrics: Metrics, options: MetricsServerOptions): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1';
  const { port } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(new Error(`metrics server: port ${port} is not an integer from 0 to 65535`));
  }
  const server = createServer((req, res) => handle(metrics, req, res));
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.maxConnections = CONNECTIONS_MAX;

  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`metrics server cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      let closing: Promise<void> | undefined;
      resolve({
        port: (server.address() as AddressInfo).port,
        host,
        close: () =>
          (closing ??= new Promise<void>((done, fail) => {
            server.close((err) => (err === undefined ? done() : fail(err)));
            // close() alone waits for keep-alive connections (a scraper's) to go idle.
            server.closeAllConnections();
          })),
      });
    });
  });
}
