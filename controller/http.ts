// The controller's web port: the ops dashboard (/), its live feed (/api/overview as JSON,
// /api/stream as server-sent events), Prometheus metrics (/metrics) and a health check (/healthz).
// Read-only: nothing served here changes a migration.
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { Logger } from '../lib/logger.ts';
import type { DashboardFeed } from './dashboard/collect.ts';
import type { ControllerMetrics } from './metrics.ts';

const PAGE = new URL('./dashboard/page.html', import.meta.url);
/** How often the live feed sends a fresh overview while someone watches. */
const STREAM_MS = 500;

export interface HttpDeps {
  metrics: ControllerMetrics;
  feed: DashboardFeed;
  log: Logger;
}

/** The live feed: a fresh overview every STREAM_MS to every watcher, and only while someone watches. */
class LiveFeed {
  private readonly streams = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private last = '';

  constructor(private readonly feed: DashboardFeed) {}

  private async push(): Promise<void> {
    const data = await this.feed.snapshot().then(
      (o) => JSON.stringify(o),
      (err: Error) => JSON.stringify({ error: err.message }),
    );
    this.last = data;
    for (const res of this.streams) res.write(`data: ${data}\n\n`);
  }

  watch(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    if (this.last) res.write(`data: ${this.last}\n\n`);
    this.streams.add(res);
    this.timer ??= setInterval(() => void this.push(), STREAM_MS);
    void this.push();
    res.on('close', () => {
      this.streams.delete(res);
      if (!this.streams.size && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const res of this.streams) res.end();
  }
}

/** Answers one GET by its path. */
function route(
  deps: HttpDeps,
  page: Buffer,
  live: LiveFeed,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const fail = (err: Error) => {
    deps.log.warn({ err: err.message, path: url.pathname }, 'dashboard request failed');
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`${err.message}\n`);
  };
  if (req.method !== 'GET') return void res.writeHead(405, { allow: 'GET' }).end();
  switch (url.pathname) {
    case '/favicon.ico':
      return void res.writeHead(204).end();
    case '/healthz':
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    case '/metrics':
      return void deps.metrics.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(text))
        .catch(fail);
    case '/':
      return void res
        .writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          // The page loads nothing from elsewhere and runs only its own script.
          'content-security-policy':
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        })
        .end(page);
    case '/api/overview':
      return void deps.feed
        .snapshot()
        .then((o) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(o)))
        .catch(fail);
    case '/api/stream':
      return live.watch(res);
    default:
      res.writeHead(404, { 'content-type': 'text/plain' }).end('ferry controller: / (dashboard), /metrics\n');
  }
}

/** Serves on `port` (0: any free port); resolves to the port it listens on. */
export async function serveHttp(
  deps: HttpDeps,
  port: number,
  host = '127.0.0.1',
): Promise<{ port: number; server: Server; close(): void }> {
  const page = await readFile(PAGE);
  const live = new LiveFeed(deps.feed);
  const server = createServer((req, res) => route(deps, page, live, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    server,
    close() {
      live.close();
      server.close();
    },
  };
}
