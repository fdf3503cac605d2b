// `strata console`: the web console, served on loopback by default. GET / is the page,
// GET /api/state one state as JSON, GET /api/stream the states as server-sent events,
// one a second while anyone watches. A state that cannot be gathered is sent as
// {"error": ...}, and the next second tries again.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { consolePage } from './page';
import type { ConsoleState, StateGatherer } from './state';

export interface ConsoleOptions {
  host: string;
  port: number;
  tracingUrl?: string;
  /** Between two states of the stream. */
  intervalMs: number;
}

export class ConsoleServer {
  private readonly server: Server;
  private readonly watchers = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private latest: string | undefined;
  private gathering = false;

  constructor(
    private readonly gatherer: StateGatherer,
    private readonly o: ConsoleOptions,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => resolve((this.server.address() as { port: number }).port));
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const w of this.watchers) w.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://console').pathname;
    if (req.method !== 'GET') return this.send(res, 405, 'text/plain', 'only GET\n');
    if (path === '/') return this.send(res, 200, 'text/html; charset=utf-8', consolePage(this.o.tracingUrl));
    if (path === '/api/state') return this.send(res, 200, 'application/json', await this.state());
    if (path === '/api/stream') return this.watch(res);
    this.send(res, 404, 'text/plain', `no page ${path}; the console is at /\n`);
  }

  private send(res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  }

  private watch(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    this.watchers.add(res);
    res.on('close', () => {
      this.watchers.delete(res);
      if (this.watchers.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    });
    if (this.latest !== undefined) res.write(`data: ${this.latest}\n\n`);
    this.timer ??= setInterval(() => void this.tick(), this.o.intervalMs);
    void this.tick();
  }

  /** One state to every watcher; skipped while the last one is still being gathered. */
  private async tick(): Promise<void> {
    if (this.gathering) return;
    this.gathering = true;
    try {
      this.latest = await this.state();
      for (const w of this.watchers) w.write(`data: ${this.latest}\n\n`);
    } finally {
      this.gathering = false;
    }
  }

  private async state(): Promise<string> {
    try {
      const state: ConsoleState = await this.gatherer.gather();
      return JSON.stringify(state);
    } catch (err) {
      return JSON.stringify({ error: err instanceof Error ? err.message : String(err) });
    }
  }
}
