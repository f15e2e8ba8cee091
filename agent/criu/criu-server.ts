// CRIU's long-running helpers: `criu page-server` (receives a streamed dump, or serves pages
// lazily) and `criu lazy-pages` (the target's userfaultfd daemon). Each is started with
// --status-fd, so we know when it listens, and is watched until it exits or is stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FerryError, type ErrorCode } from '../../lib/errors.ts';
import { noSpaceLeft } from '../../lib/space.ts';
import { criuErrorLines } from './criu-log.ts';

export interface CriuServer {
  pid: number | undefined;
  /** Resolves once the helper exits; rejects, quoting CRIU's log, if it failed. */
  done: Promise<void>;
  /** Whether it is still running. */
  running(): boolean;
  stop(): Promise<void>;
}

/**
 * Starts `criu <args> --status-fd 3 -o <logFile>` and resolves when CRIU says it is ready, or
 * rejects with CRIU's own error lines if it exits first.
 */
export function startCriuServer(
  criuPath: string,
  args: string[],
  logFile: string,
  errorCode: ErrorCode,
  what: string,
): Promise<CriuServer> {
  return startWithStatusFd(
    criuPath,
    [...args, '--status-fd', '3', '-o', logFile, '-v4'],
    logFile,
    errorCode,
    what,
  );
}

/**
 * Starts a command that writes a byte to fd 3 once ready (CRIU's --status-fd, also runc's for a
 * lazy checkpoint); `logFile` is the CRIU log to quote if it fails. It runs in its own process
 * group, so stopping it also stops the CRIU that runc started.
 */
export async function startWithStatusFd(
  cmd: string,
  args: string[],
  logFile: string,
  errorCode: ErrorCode,
  what: string,
): Promise<CriuServer> {
  // A file, not a pipe: runc insists that its --status-fd is writable, and a pipe Node makes for
  // fd 3 is not. The byte CRIU writes there is seen by polling the file's size.
  const statusFile = `${logFile}.status`;
  const statusFd = openSync(statusFile, 'w', 0o600);
  const child: ChildProcess = spawn(cmd, args, {
    stdio: ['ignore', 'ignore', 'pipe', statusFd],
    detached: true,
  });
  closeSync(statusFd);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const failure = async (code: number | null, signal: string | null) => {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    const lines = criuErrorLines(log);
    const why = lines.length ? lines.join(' | ') : stderr.trim() || `exit ${code ?? signal}`;
    // A CRIU that wrote no error at all may not have been able to: its log's filesystem is full.
    const full = !lines.length && (await noSpaceLeft(path.dirname(logFile)));
    if (full)
      return new FerryError(
        'InsufficientSpace',
        `${what}: CRIU says: ${why}; no space left on ${path.dirname(logFile)} (not even for its log)`,
      );
    return new FerryError(errorCode, `${what}: CRIU says: ${why}`);
  };
  let exitedYet = false;
  void exited.then(() => (exitedYet = true));
  const ready = (async () => {
    while (!exitedYet) {
      if ((await stat(statusFile).catch(() => undefined))?.size) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  })();
  const first = await Promise.race([ready, exited.then(() => false)]);
  if (!first) {
    const [code, signal] = await exited;
    throw await failure(code, signal);
  }
  let alive = true;
  const done = exited.then(async ([code, signal]) => {
    alive = false;
    if (code !== 0) throw await failure(code, signal);
  });
  done.catch(() => undefined); // observed by whoever awaits it; never an unhandled rejection
  return {
    pid: child.pid,
    done,
    running: () => alive,
    async stop() {
      if (!alive) return;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}
