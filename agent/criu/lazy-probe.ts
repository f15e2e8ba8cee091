// Whether PostCopy can work on this node: `criu check --feature uffd-noncoop` only says the kernel
// has userfaultfd. CRIU's remote lazy pages also need its page server to splice pages to a socket,
// which fails on some kernel and CRIU pairs ("page-pipe: splice: Bad file descriptor" with CRIU
// 4.2.1 on Linux 6.18). So the agent tries one real round trip at start-up on a throwaway process
// in its own PID namespace (its restored copy cannot collide with the original's PIDs).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../lib/exec.ts';
import { errorMessage } from '../../lib/errors.ts';
import { startCriuServer, type CriuServer } from './criu-server.ts';
import { criuErrorLines } from './criu-log.ts';
import { freePort } from '../transfer/tunnels.ts';

async function children(pid: number): Promise<number[]> {
  const s = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return s.trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The process at the bottom of a chain of single children (unshare → setsid → sleep). */
async function leaf(pid: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const kids = await children(pid);
    if (kids.length === 1 && kids[0]) pid = kids[0];
    else if ((await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'sleep') return pid;
    else await new Promise((r) => setTimeout(r, 20));
  }
  return pid;
}

/** Resolves to undefined when lazy pages work end to end, else to what failed. */
export async function probeLazyPages(criu: string, workDir: string): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(workDir, 'lazy-probe-'));
  const holder = spawn('unshare', ['--pid', '--fork', '--kill-child', 'setsid', 'sleep', '600'], {
    stdio: 'ignore',
  });
  const servers: CriuServer[] = [];
  let restored: number | undefined;
  try {
    const pid = await leaf(holder.pid!);
    const port = await freePort();
    servers.push(
      await startCriuServer(
        criu,
        [
          'dump',
          '-t',
          String(pid),
          '-D',
          dir,
          '--lazy-pages',
          '--address',
          '127.0.0.1',
          '--port',
          String(port),
        ],
        path.join(dir, 'dump.log'),
        'CriuDumpFailed',
        'lazy dump',
      ),
    );
    servers.push(
      await startCriuServer(
        criu,
        [
          'lazy-pages',
          '--page-server',
          '--address',
          '127.0.0.1',
          '--port',
          String(port),
          '-D',
          dir,
          '-W',
          dir,
        ],
        path.join(dir, 'lazy-pages.log'),
        'CriuRestoreFailed',
        'lazy-pages daemon',
      ),
    );
    const pidFile = path.join(dir, 'restored.pid');
    const r = await exec(
      criu,
      ['restore', '-D', dir, '-W', dir, '--lazy-pages', '-d', '--pidfile', pidFile].concat([
        '-o',
        path.join(dir, 'restore.log'),
      ]),
    );
    restored = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim()) || undefined;
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('timed out'), 10_000).unref());
    const daemon = await Promise.race([servers[1]!.done.then(() => undefined, errorMessage), timeout]);
    const dump = await Promise.race([servers[0]!.done.then(() => undefined, errorMessage), timeout]);
    if (r.code === 0 && !daemon && !dump) return undefined;
    // The source side's reason comes first: it is usually the cause of the others.
    const restoreLog = await readFile(path.join(dir, 'restore.log'), 'utf8').catch(() => '');
    return dump ?? daemon ?? criuErrorLines(restoreLog).join(' | ') ?? `criu restore exited ${r.code}`;
  } catch (err) {
    return errorMessage(err);
  } finally {
    for (const s of servers) await s.stop();
    if (restored) {
      try {
        process.kill(restored, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    holder.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}
