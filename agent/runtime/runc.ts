// The runc adapter: one node's containers, driven through runc's command line with its own state
// root and the CRIU wrapper installed by scripts/setup.sh.
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { exec, type ExecResult } from '../../lib/exec.ts';
import { FerryError, type ErrorCode } from '../../lib/errors.ts';
import { FERRY_OPT } from '../../lib/paths.ts';
import { noSpaceLeft } from '../../lib/space.ts';
import { criuFailure } from '../criu/criu-log.ts';
import { keepLog } from '../criu/kept-logs.ts';
import type { ContainerInfo } from '../../api/v1alpha1/job-results.ts';
import { startWithStatusFd, type CriuServer } from '../criu/criu-server.ts';

/** scripts/run-logged.sh, as scripts/setup.sh installs it. */
const RUN_LOGGED = `${FERRY_OPT}/bin/ferry-run-logged`;

/**
 * What CRIU should carry on both ends: file locks and established TCP connections (it refuses to
 * dump them otherwise). Dump and restore must agree, so they share this list.
 */
const CRIU_FEATURES = ['--file-locks', '--tcp-established'];

export class Runc {
  constructor(
    readonly root: string,
    readonly criuPath: string,
    /** Where the CRIU log of a failed dump or restore is kept: a rollback removes the work folder. */
    readonly keptLogs?: string,
  ) {}

  private async runc(args: string[], errorCode: ErrorCode = 'RuntimeFailed'): Promise<string> {
    return (await exec('runc', ['--root', this.root, '--criu', this.criuPath, ...args], { errorCode }))
      .stdout;
  }

  /**
   * For commands that leave the container running behind them: its processes must not inherit our
   * pipes, so runc's errors are read back from its --log file instead.
   */
  private async runcDetached(
    args: string[],
    logFile: string,
    errorCode: ErrorCode,
    output?: string,
  ): Promise<void> {
    await rm(logFile, { force: true });
    const runc = ['--root', this.root, '--criu', this.criuPath, '--log', logFile, '--log-format', 'json'];
    // With `output`, the container's stdout and stderr go to that file through a pipe (ferry logs).
    const r = output
      ? await exec(RUN_LOGGED, [output, 'runc', ...runc, ...args], { detached: true })
      : await exec('runc', [...runc, ...args], { detached: true });
    if (r.code === 0) return;
    const lines = (await readFile(logFile, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        try {
          return (JSON.parse(l) as { msg?: string }).msg ?? l;
        } catch {
          return l;
        }
      });
    throw new FerryError(
      errorCode,
      `runc ${args[0]} ${args.at(-1)} exited ${r.code}: ${lines.slice(-3).join(' | ') || 'no log'}`,
    );
  }

  /**
   * Starts a container detached; its stdout and stderr go to `output` (a file on the node), or
   * nowhere (ferry's test programs log inside their own filesystem).
   */
  async run(id: string, bundle: string, output?: string): Promise<void> {
    await this.runcDetached(
      ['run', '--detach', '--bundle', bundle, id],
      path.join(bundle, 'runc.log'),
      'RuntimeFailed',
      output,
    );
  }

  /**
   * Makes a container without starting its process (`runc create`), so ferry can join the network
   * namespace runc made for it to the node first; `start` then runs it. Output as for `run`.
   */
  async create(id: string, bundle: string, output?: string): Promise<void> {
    await this.runcDetached(
      ['create', '--bundle', bundle, id],
      path.join(bundle, 'runc.log'),
      'RuntimeFailed',
      output,
    );
  }

  async start(id: string): Promise<void> {
    await this.runc(['start', id]);
  }

  async state(id: string): Promise<ContainerInfo | undefined> {
    const r = await exec('runc', ['--root', this.root, 'state', id]);
    if (r.code !== 0) return undefined;
    let s: { id: string; status: string; pid?: number };
    try {
      s = JSON.parse(r.stdout) as typeof s;
    } catch {
      // runc's state file could not be written whole: most often its folder's filesystem is full.
      const full = (await noSpaceLeft(this.root)) ? `: no space left on ${this.root}` : '';
      throw new FerryError(
        'RuntimeFailed',
        `runc state ${id} is unreadable (${r.stderr.trim() || 'empty output'})${full}`,
      );
    }
    return { id: s.id, status: s.status, ...(s.pid ? { pid: s.pid } : {}) };
  }

  /** The folder of a container's bundle (its config.json), as runc recorded it. */
  async bundle(id: string): Promise<string> {
    const s = JSON.parse(await this.runc(['state', id])) as { bundle?: string };
    if (!s.bundle) throw new FerryError('RuntimeFailed', `runc state ${id} names no bundle`);
    return s.bundle;
  }

  async list(): Promise<ContainerInfo[]> {
    const out = await this.runc(['list', '--format', 'json']);
    const rows = (JSON.parse(out || 'null') ?? []) as Array<{ id: string; status: string; pid?: number }>;
    return rows.map((r) => ({ id: r.id, status: r.status, ...(r.pid ? { pid: r.pid } : {}) }));
  }

  /** Runs a command inside the container and returns its output, whatever its exit. */
  exec(id: string, args: string[]): Promise<ExecResult> {
    return exec('runc', ['--root', this.root, 'exec', id, ...args]);
  }

  /** Host pids of every process in the container. */
  async pids(id: string): Promise<number[]> {
    return JSON.parse((await this.runc(['ps', '--format', 'json', id])) || '[]') as number[];
  }

  pause(id: string): Promise<string> {
    return this.runc(['pause', id]);
  }

  resume(id: string): Promise<string> {
    return this.runc(['resume', id]);
  }

  kill(id: string, signal = 'KILL'): Promise<string> {
    return this.runc(['kill', id, signal]);
  }

  /** Removes the container whatever its state; absent is fine. */
  async remove(id: string): Promise<void> {
    if (!(await this.state(id))) return;
    await this.runc(['delete', '--force', id]);
  }

  /**
   * Dumps a paused container and leaves it paused: CRIU restores the freezer state it found, so the
   * source stays stopped (never killed) until the controller says whether to resume or remove it.
   */
  async checkpointLeavingStopped(
    id: string,
    imageDir: string,
    workDir: string,
    opts: { pageServerPort?: number; parent?: string } = {},
  ): Promise<void> {
    // With a page server, memory pages go to that port as CRIU dumps; the rest stays in imageDir.
    // With a parent (PreCopy), pages unchanged since that pre-dump are referred to, not sent.
    const ps = opts.pageServerPort ? ['--page-server', `127.0.0.1:${opts.pageServerPort}`] : [];
    if (opts.parent) ps.push('--parent-path', `../${opts.parent}`);
    try {
      await this.runc(
        [
          'checkpoint',
          '--leave-running',
          ...ps,
          ...CRIU_FEATURES,
          '--image-path',
          imageDir,
          '--work-path',
          workDir,
          id,
        ],
        'CriuDumpFailed',
      );
    } catch (err) {
      throw await withCriuLog(err, path.join(workDir, 'dump.log'), 'CriuDumpFailed', this.keptLogs);
    }
  }

  /**
   * One PreCopy round: copies the memory of the running container (dirty since `parent`, when
   * given) to the page server, without stopping it for longer than the copy of its page tables.
   * Needs soft-dirty tracking in the kernel.
   */
  async preDump(id: string, imageDir: string, workDir: string, port: number, parent?: string): Promise<void> {
    await mkdir(imageDir, { recursive: true, mode: 0o700 });
    const args = ['checkpoint', '--pre-dump', '--page-server', `127.0.0.1:${port}`];
    if (parent) args.push('--parent-path', `../${parent}`);
    try {
      await this.runc([...args, '--image-path', imageDir, '--work-path', workDir, id], 'CriuDumpFailed');
    } catch (err) {
      throw await withCriuLog(err, path.join(workDir, 'pre-dump.log'), 'CriuDumpFailed', this.keptLogs);
    }
  }

  /**
   * PostCopy's dump: CRIU writes everything but the anonymous memory, says so on the status fd,
   * and then serves those pages from the frozen source on `port` until the target has them all;
   * only then does it kill the source (and runc delete it). Killing this CRIU before that leaves
   * the source running where it was: the rollback.
   */
  async checkpointLazy(id: string, imageDir: string, workDir: string, port: number): Promise<CriuServer> {
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    return startWithStatusFd(
      'runc',
      ['--root', this.root, '--criu', this.criuPath, 'checkpoint', '--lazy-pages']
        .concat(['--page-server', `127.0.0.1:${port}`, '--status-fd', '3', ...CRIU_FEATURES])
        .concat(['--image-path', imageDir, '--work-path', workDir, id]),
      path.join(workDir, 'dump.log'),
      'CriuDumpFailed',
      `lazy checkpoint of ${id}`,
    );
  }

  /** Restores a container; `lazy` when a lazy-pages daemon will fill in its memory (PostCopy). */
  async restore(
    id: string,
    bundle: string,
    imageDir: string,
    workDir: string,
    opts: { lazy?: boolean; output?: string } = {},
  ): Promise<void> {
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    try {
      await this.runcDetached(
        [
          'restore',
          '--detach',
          ...(opts.lazy ? ['--lazy-pages'] : []),
          ...CRIU_FEATURES,
          '--image-path',
          imageDir,
          '--work-path',
          workDir,
          '--bundle',
          bundle,
          id,
        ],
        path.join(workDir, 'runc.log'),
        'CriuRestoreFailed',
        opts.output,
      );
    } catch (err) {
      throw await withCriuLog(err, path.join(workDir, 'restore.log'), 'CriuRestoreFailed', this.keptLogs);
    }
  }
}

/**
 * The error of a failed CRIU run through runc: CRIU's own words (criu-log.ts), and where its whole
 * log is kept, a copy outside the migration's folders that the rollback removes.
 */
async function withCriuLog(
  err: unknown,
  logFile: string,
  code: ErrorCode,
  keptLogs: string | undefined,
): Promise<FerryError> {
  const log = await readFile(logFile, 'utf8').catch(() => '');
  const runner = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
  const what = code === 'CriuRestoreFailed' ? 'restore' : 'dump';
  const copy = log && keptLogs ? await keepLog(logFile, keptLogs) : undefined;
  const kept = copy ? ` (CRIU's log: ${copy})` : '';
  return new FerryError(code, `${criuFailure(log, runner, what)}${kept}`, { cause: err });
}
