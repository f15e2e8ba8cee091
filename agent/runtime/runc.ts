// The runc adapter: one node's containers, driven through runc's command line with its own state
// root and the CRIU wrapper installed by scripts/setup.sh.
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { exec, type ExecResult } from '../../lib/exec.ts';
import { FerryError, type ErrorCode } from '../../lib/errors.ts';
import { criuErrorLines } from '../criu/criu-log.ts';
import type { ContainerInfo } from '../../api/v1alpha1/jobs.ts';

/**
 * What CRIU should carry on both ends: file locks and established TCP connections (it refuses to
 * dump them otherwise). Dump and restore must agree, so they share this list.
 */
const CRIU_FEATURES = ['--file-locks', '--tcp-established'];

export class Runc {
  constructor(
    readonly root: string,
    readonly criuPath: string,
  ) {}

  private async runc(args: string[], errorCode: ErrorCode = 'RuntimeFailed'): Promise<string> {
    return (await exec('runc', ['--root', this.root, '--criu', this.criuPath, ...args], { errorCode }))
      .stdout;
  }

  /**
   * For commands that leave the container running behind them: its processes must not inherit our
   * pipes, so runc's errors are read back from its --log file instead.
   */
  private async runcDetached(args: string[], logFile: string, errorCode: ErrorCode): Promise<void> {
    await rm(logFile, { force: true });
    const r = await exec(
      'runc',
      ['--root', this.root, '--criu', this.criuPath, '--log', logFile, '--log-format', 'json', ...args],
      { detached: true },
    );
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

  /** Starts a container detached; its stdio goes nowhere (it logs inside its own filesystem). */
  async run(id: string, bundle: string): Promise<void> {
    await this.runcDetached(
      ['run', '--detach', '--bundle', bundle, id],
      path.join(bundle, 'runc.log'),
      'RuntimeFailed',
    );
  }

  async state(id: string): Promise<ContainerInfo | undefined> {
    const r = await exec('runc', ['--root', this.root, 'state', id]);
    if (r.code !== 0) return undefined;
    const s = JSON.parse(r.stdout) as { id: string; status: string; pid?: number };
    return { id: s.id, status: s.status, ...(s.pid ? { pid: s.pid } : {}) };
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
  async checkpointLeavingStopped(id: string, imageDir: string, workDir: string): Promise<void> {
    try {
      await this.runc(
        [
          'checkpoint',
          '--leave-running',
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
      throw await withCriuLog(err, path.join(workDir, 'dump.log'), 'CriuDumpFailed');
    }
  }

  async restore(id: string, bundle: string, imageDir: string, workDir: string): Promise<void> {
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    try {
      await this.runcDetached(
        [
          'restore',
          '--detach',
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
      );
    } catch (err) {
      throw await withCriuLog(err, path.join(workDir, 'restore.log'), 'CriuRestoreFailed');
    }
  }
}

async function withCriuLog(err: unknown, logFile: string, code: ErrorCode): Promise<FerryError> {
  const log = await readFile(logFile, 'utf8').catch(() => '');
  const lines = criuErrorLines(log);
  const base = err instanceof Error ? err.message.split('\n')[0] : String(err);
  const msg = lines.length ? `CRIU says: ${lines.join(' | ')}` : (base ?? 'runc failed');
  return new FerryError(code, msg, { cause: err });
}
