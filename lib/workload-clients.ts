// Clients of real software, run against a container while it moves (the demo's Redis, its tests,
// bench/real-workloads.ts). Each keeps the moments it saw an operation succeed, so the pause it
// felt and its throughput before, during and after a move can be read afterwards.
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

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
