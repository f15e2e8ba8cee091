// Long-running processes of the local cluster (agents, controller): started detached with their
// output in a log file, found again through a pid file, stopped with TERM then KILL.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

/** The repository root, so processes run the same code as the CLI that starts them. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Bundled (scripts/bundle.ts), this code runs from a .mjs file in the bundle's dist folder, and the
 * processes it starts are that bundle's entry points: there is no TypeScript or tsx beside it.
 */
const BUNDLE_DIR = import.meta.url.endsWith('.mjs')
  ? path.dirname(fileURLToPath(import.meta.url))
  : undefined;
const BUNDLED: Record<string, string> = { 'agent/main.ts': 'agent', 'controller/main.ts': 'controller' };

/** How to run one of ferry's TypeScript entry points with node. */
export function nodeEntry(script: string, args: string[]): string[] {
  if (BUNDLE_DIR) {
    const name = BUNDLED[script];
    if (!name) throw new Error(`${script} is not in ferry's bundle (scripts/bundle.ts)`);
    return [process.execPath, path.join(BUNDLE_DIR, `${name}.mjs`), ...args];
  }
  return [
    process.execPath,
    '--import',
    `file://${path.join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')}`,
    path.join(REPO_ROOT, script),
    ...args,
  ];
}

async function readPid(pidFile: string): Promise<number | undefined> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  return pid > 0 ? pid : undefined;
}

/** The pid in `pidFile` if that process still runs and its command line contains (matches) `marker`. */
export async function runningPid(pidFile: string, marker: string | RegExp): Promise<number | undefined> {
  const pid = await readPid(pidFile);
  if (!pid) return undefined;
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
  return (typeof marker === 'string' ? cmdline.includes(marker) : marker.test(cmdline)) ? pid : undefined;
}

export async function startDetached(argv: string[], logFile: string, pidFile: string): Promise<number> {
  const fd = openSync(logFile, 'a', 0o600);
  const [cmd, ...args] = argv;
  const child = spawn(cmd!, args, { cwd: REPO_ROOT, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`cannot start ${argv.join(' ')}`);
  await writeFile(pidFile, String(child.pid), { mode: 0o600 });
  return child.pid;
}

export async function stopProcess(pidFile: string, marker: string | RegExp): Promise<void> {
  const pid = await runningPid(pidFile, marker);
  if (pid) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && (await runningPid(pidFile, marker)); i++) await sleep(100);
    if (await runningPid(pidFile, marker)) process.kill(pid, 'SIGKILL');
  }
  await rm(pidFile, { force: true });
}
