// Clients of real software, run against a container while it moves (the demo's Redis, its tests,
// bench/real-workloads.ts). Each keeps the moments it saw an operation succeed, so the pause it
// felt and its throughput before, during and after a move can be read afterwards.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { get } from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { exec, run } from './exec.ts';

/** Moments (performance.now(), ms) and the amount done by then (operations or bytes). */
export class Timeline {
  readonly points: Array<{ at: number; done: number }> = [];
  add(done: number): void {
    this.points.push({ at: performance.now(), done });
  }
  /** The longest time between two successive points within [from, to]. */
  longestGap(from = 0, to = Infinity): number {
    let gap = 0;
    const p = this.points.filter((x) => x.at >= from && x.at <= to);
    for (let i = 1; i < p.length; i++) gap = Math.max(gap, p[i]!.at - p[i - 1]!.at);
    return gap;
  }
  /** Amount per second over [from, to]. */
  rate(from: number, to: number): number {
    const inside = this.points.filter((x) => x.at >= from && x.at <= to);
    if (inside.length < 2) return 0;
    return ((inside.at(-1)!.done - inside[0]!.done) / (inside.at(-1)!.at - inside[0]!.at)) * 1000;
  }
}

/**
 * One connection to the Redis at `host`, never re-opened: a break is an error for the caller to
 * see, not something to paper over. Waits up to `timeoutMs` for it to answer.
 */
export async function connectRedisOnce(host: string, timeoutMs: number): Promise<Redis> {
  const opts = { host, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 };
  for (const end = Date.now() + timeoutMs; ; await sleep(100)) {
    const r = new Redis({ ...opts, enableOfflineQueue: false });
    if (
      await r.connect().then(
        () => true,
        () => false,
      )
    )
      return r;
    r.disconnect();
    if (Date.now() > end) throw new Error(`Redis at ${host} does not answer`);
  }
}

/**
 * Writes `live:N` and reads back `live:N-1`, one at a time on one connection, until stopped; every
 * acknowledged write goes into `expected`. A failure ends it and is kept.
 */
export function redisWriter(r: Redis, expected: Map<string, string>) {
  let stopped = false;
  let acked = 0;
  const failures: string[] = [];
  const timeline = new Timeline();
  const done = (async () => {
    for (let n = 1; !stopped; n++) {
      try {
        await r.set(`live:${n}`, String(n));
        expected.set(`live:${n}`, String(n));
        acked = n;
        timeline.add(n);
        if (n > 1 && (await r.get(`live:${n - 1}`)) !== String(n - 1))
          failures.push(`live:${n - 1} read back wrong`);
      } catch (e) {
        failures.push((e as Error).message);
        return;
      }
    }
  })();
  return {
    acked: () => acked,
    failures,
    timeline,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** Every key and value of a Redis, as one count and digest. */
export async function keyspaceDigest(r: Redis): Promise<{ count: number; digest: string }> {
  const all: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'COUNT', 5000);
    cursor = next;
    if (keys.length) {
      const values = await r.mget(...keys);
      keys.forEach((k, i) => all.push(`${k}=${values[i]}`));
    }
  } while (cursor !== '0');
  return { count: all.length, digest: createHash('sha256').update(all.sort().join('\n')).digest('hex') };
}

/** The digest keyspaceDigest gives for exactly these keys and values. */
export const digestOf = (m: Map<string, string>): string =>
  createHash('sha256')
    .update(
      [...m]
        .map(([k, v]) => `${k}=${v}`)
        .sort()
        .join('\n'),
    )
    .digest('hex');

/**
 * Downloads `url`, reading at most `pace.rate` bytes a second (changeable while it runs; Infinity
 * for full speed); resolves to the body's sha256, length and status.
 */
export function pacedDownload(url: string, pace: { rate: number }) {
  const timeline = new Timeline();
  const progress = { bytes: 0 };
  const done = new Promise<{ sha256: string; bytes: number; status: number }>((resolve, reject) => {
    get(url, (res) => {
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        progress.bytes += chunk.length;
        timeline.add(progress.bytes);
        if (!Number.isFinite(pace.rate)) return;
        res.pause();
        setTimeout(() => res.resume(), (chunk.length / pace.rate) * 1000);
      });
      res.on('end', () =>
        resolve({ sha256: hash.digest('hex'), bytes: progress.bytes, status: res.statusCode ?? 0 }),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
  return { done, progress, timeline };
}

/** PostgreSQL's own programs on the host (Debian's postgresql-15; scripts/setup.sh installs it). */
export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** One SQL statement through psql, as the postgres user; its output, unaligned. */
export async function psql(host: string, sql: string): Promise<string> {
  return (
    await run(`${PG_BIN}/psql`, ['-h', host, '-U', 'postgres', '-X', '-A', '-t', '-c', sql, 'postgres'])
  ).trim();
}

/** Waits up to `timeoutMs` for the PostgreSQL at `host` to take connections. */
export async function pgReady(host: string, timeoutMs: number): Promise<void> {
  for (const end = Date.now() + timeoutMs; ; await sleep(200)) {
    if ((await exec(`${PG_BIN}/pg_isready`, ['-q', '-h', host, '-U', 'postgres'])).code === 0) return;
    if (Date.now() > end) throw new Error(`PostgreSQL at ${host} does not answer`);
  }
}

/** Waits for the PostgreSQL at `host`, then makes pgbench's tables at `scale` (100 000 accounts each). */
export async function pgbenchInit(host: string, scale: number): Promise<void> {
  await pgReady(host, 30_000);
  await run(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale), '-h', host, '-U', 'postgres', 'postgres']);
}

/** What pgbench reported at its end. */
export interface PgbenchReport {
  code: number | null;
  output: string;
  /** "number of transactions actually processed": each one committed. */
  processed: number;
  failed: number;
  /** A client that lost its connection or met an error ends ("client N aborted"). */
  aborted: boolean;
}

/** Reads pgbench's closing report. Pure. */
export function parsePgbench(code: number | null, output: string): PgbenchReport {
  const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? NaN);
  return {
    code,
    output,
    processed: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/) || 0,
    aborted: /\baborted\b/.test(output),
  };
}

/**
 * The moments pgbench's transactions ended, from its per-transaction logs (`-l`: client, number,
 * latency in µs, script, epoch seconds, µs), as a Timeline of transactions done. Pure.
 */
export function pgbenchTimeline(logs: string[]): Timeline {
  const ends = logs
    .flatMap((text) => text.split('\n'))
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 6)
    .map((f) => Number(f[4]) * 1000 + Number(f[5]) / 1000 - performance.timeOrigin)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const t = new Timeline();
  ends.forEach((at, i) => t.points.push({ at, done: i + 1 }));
  return t;
}

/**
 * pgbench's TPC-B-like transactions against `host` for `seconds`, from `clients` connections held
 * throughout (pgbench's default: never re-opened), each transaction logged in `logDir`. `progress`
 * counts its per-second progress lines; `timeline` reads the logs once it has ended.
 */
export function pgbench(host: string, o: { clients: number; seconds: number; logDir: string }) {
  const args = ['-h', host, '-U', 'postgres', '-c', String(o.clients), '-j', String(Math.min(o.clients, 2))];
  args.push('-T', String(o.seconds), '-P', '1', '-l', '--log-prefix', path.join(o.logDir, 'tx'), 'postgres');
  const child = spawn(`${PG_BIN}/pgbench`, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const progress = { lines: 0 };
  let output = '';
  const take = (b: Buffer) => {
    output += b.toString();
    progress.lines = output.split('progress:').length - 1;
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const done = new Promise<PgbenchReport>((resolve) =>
    child.on('close', (code) => resolve(parsePgbench(code, output))),
  );
  const timeline = async () => {
    const files = (await readdir(o.logDir)).filter((f) => f.startsWith('tx.'));
    return pgbenchTimeline(await Promise.all(files.map((f) => readFile(path.join(o.logDir, f), 'utf8'))));
  };
  return { done, progress, timeline };
}
