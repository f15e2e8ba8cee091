// Runs external commands with argument arrays (never a shell string) and turns failures into
// FerryErrors that quote the command's own error output.
import { spawn } from 'node:child_process';
import { FerryError, type ErrorCode } from './errors.ts';
import { currentScope } from './step-scope.ts';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
  /** The signal that ended it, when one did (a killed CRIU). */
  signal?: NodeJS.Signals;
}

export interface ExecOptions {
  /** Error code to raise on a non-zero exit; without it the result is returned whatever the exit. */
  errorCode?: ErrorCode;
  input?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * For commands that leave a daemon behind (`runc run --detach`): the daemon would inherit output
   * pipes and hold them open forever, so output is discarded and the exit is awaited instead.
   */
  detached?: boolean;
}

export function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const scope = currentScope();
  if (scope?.stopped)
    return Promise.reject(new FerryError('StepDeadline', `not running ${cmd}: ${scope.stopped}`));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: opts.detached ? 'ignore' : [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    // Detached or not, the child is the command itself (runc's CLI), never the daemon it leaves.
    scope?.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) =>
      reject(
        new FerryError(opts.errorCode ?? 'Internal', `cannot run ${cmd}: ${err.message}`, { cause: err }),
      ),
    );
    child.on(opts.detached ? 'exit' : 'close', (code, signal) => {
      const result = { stdout, stderr, code: code ?? -1, ...(signal ? { signal } : {}) };
      if (result.code !== 0 && opts.errorCode) {
        const detail = (stderr.trim() || stdout.trim()).split('\n').slice(-5).join('\n');
        reject(new FerryError(opts.errorCode, `${cmd} ${args.join(' ')} exited ${result.code}: ${detail}`));
      } else resolve(result);
    });
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined); // a command that exits early is reported by its status
      child.stdin?.end(opts.input);
    }
  });
}

/** Like exec with an error code: resolves to stdout, rejects with the command's stderr. */
export async function run(
  cmd: string,
  args: readonly string[],
  errorCode: ErrorCode = 'Internal',
): Promise<string> {
  return (await exec(cmd, args, { errorCode })).stdout;
}
