// Bare process trees (spec.source.pid), the way P.Haul moved them: no container, no PID namespace.
// Their PIDs are the kernel's own, so on one kernel the restore needs them free: the dump ends the
// source, and its image stays on the source so a failed restore can bring it back there.
import { mkdir, readFile, readlink, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import { FerryError, type ErrorCode } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import type { AgentContext } from './context.ts';
import { criuFailure } from './criu/criu-log.ts';
import { keepLog } from './criu/kept-logs.ts';
import { keptLogsDir } from '../lib/paths.ts';

/** Carried on both ends, as for containers (see runtime/runc.ts). */
const CRIU_FEATURES = ['--file-locks', '--tcp-established'];

export async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) [ZX] /.test(stat);
}

/** The tree's PIDs as dumped, sent with the images: the restore needs every one of them free. */
export const TREE_PIDS_FILE = 'tree-pids.json';

/** Who holds each of `pids` now, in words; empty when all are free. */
export async function pidHolders(pids: readonly number[]): Promise<string[]> {
  const out: string[] = [];
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    // pid (comm) state ppid ...; comm may hold spaces and parentheses: split at the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(' ');
    const parent = (await readFile(`/proc/${ppid}/comm`, 'utf8').catch(() => '?')).trim();
    out.push(
      state === 'Z'
        ? `${pid} (a zombie its parent ${ppid} (${parent}) has not reaped)`
        : `${pid} (${comm}, running, parent ${ppid})`,
    );
  }
  return out;
}

/** Waits, up to `ms`, until every one of `pids` is free; resolves to who still holds them. */
export async function waitForFreePids(pids: readonly number[], ms: number): Promise<string[]> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100)))
    if (!(await pidHolders(pids)).length) return [];
  return pidHolders(pids);
}

/** The PIDs the dump recorded for migration `uid`, as this node received or kept them. */
export async function treePidsOf(ctx: AgentContext, uid: string): Promise<number[]> {
  const raw = await readFile(path.join(ctx.layout.images(uid), TREE_PIDS_FILE), 'utf8').catch(() => '[]');
  return (JSON.parse(raw) as unknown[]).filter((p): p is number => typeof p === 'number');
}

/** The process and all its descendants, from /proc's children lists. */
export async function treePids(root: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    out.push(pid);
    for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      const kids = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
      queue.push(...kids.split(/\s+/).filter(Boolean).map(Number));
    }
  }
  return out;
}

/** Before anything stops: the process runs here, in this node's network namespace. */
export async function requireProcess(ctx: AgentContext, pid: number): Promise<number[]> {
  if (!(await alive(pid)))
    throw new FerryError('ContainerNotFound', `process ${pid} is not running on ${ctx.config.node}`);
  const [theirs, ours] = await Promise.all([
    readlink(`/proc/${pid}/ns/net`).catch(() => ''),
    readlink('/proc/self/ns/net'),
  ]);
  if (theirs !== ours)
    throw new FerryError(
      'UnsupportedWorkload',
      `process ${pid} is not in ${ctx.config.node}'s network namespace, so it is not this node's to move`,
    );
  return treePids(pid);
}

async function criu(ctx: AgentContext, args: string[], log: string, code: ErrorCode, what: string) {
  const r = await exec(ctx.config.criuPath, [...args, ...CRIU_FEATURES, '-o', log, '-v4']);
  if (r.code === 0) return;
  const text = await readFile(log, 'utf8').catch(() => '');
  const why = criuFailure(
    text,
    r.signal ? `killed by ${r.signal}` : `exit ${r.code}`,
    code === 'CriuRestoreFailed' ? 'restore' : 'dump',
  );
  // The log outlives the migration's folders, which a rollback removes.
  const kept = await keepLog(log, keptLogsDir(ctx.config.fsRoot));
  throw new FerryError(code, `${what}: ${why}${kept ? ` (CRIU's log: ${kept})` : ''}`);
}

/** Dumps the tree and thereby ends it; the images stay here until the target runs it. */
export async function dumpProcess(ctx: AgentContext, job: JobOf<'checkpoint'>, pid: number) {
  const { layout } = ctx;
  const uid = job.migration.uid;
  await criu(
    ctx,
    ['dump', '-t', String(pid), '-D', layout.checkpoint(uid), '-W', layout.work(uid)],
    path.join(layout.work(uid), 'dump.log'),
    'CriuDumpFailed',
    `dump of process ${pid}`,
  );
}

const pidFile = (ctx: AgentContext, uid: string) => path.join(ctx.layout.images(uid), 'restored.pid');

/** Restores the tree from this node's copy of the images, detached; returns its root's PID. */
export async function restoreProcess(ctx: AgentContext, uid: string, where: string): Promise<number> {
  const { layout } = ctx;
  const file = pidFile(ctx, uid);
  await mkdir(layout.work(uid), { recursive: true, mode: 0o700 });
  await criu(
    ctx,
    ['restore', '-D', layout.checkpoint(uid), '-W', layout.work(uid), '-d', '--pidfile', file],
    path.join(layout.work(uid), `restore-${Date.now()}.log`),
    'CriuRestoreFailed',
    `restore of the process tree ${where}`,
  );
  return Number((await readFile(file, 'utf8')).trim());
}

/** The PID a restore on this node gave the tree, if it did. */
export async function restoredPid(ctx: AgentContext, uid: string): Promise<number | undefined> {
  const n = Number((await readFile(pidFile(ctx, uid), 'utf8').catch(() => '')).trim());
  return n > 1 ? n : undefined;
}

/** Rollback on the target: ends the copy this migration restored here, and only that one. */
export async function killRestored(ctx: AgentContext, uid: string): Promise<boolean> {
  const pid = await restoredPid(ctx, uid);
  if (!pid || !(await alive(pid))) return false;
  for (const p of (await treePids(pid)).reverse()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await rm(pidFile(ctx, uid), { force: true });
  return true;
}
