// The processes a step started, so that a step stopped at its deadline takes them with it. exec()
// registers every child it spawns in the scope of the step running it (an AsyncLocalStorage, so
// no call in between has to pass anything on); stopping the scope kills them (SIGKILL: a hung CRIU
// answers nothing else) and refuses any new one, so the abandoned step fails at its next command.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ChildProcess } from 'node:child_process';

export class StepScope {
  private readonly children = new Set<ChildProcess>();
  stopped: string | undefined;

  add(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /** Kills what the step still runs, and marks it stopped with the reason. */
  stop(why: string): number {
    this.stopped = why;
    let n = 0;
    for (const c of this.children) if (c.kill('SIGKILL')) n++;
    return n;
  }
}

const storage = new AsyncLocalStorage<StepScope>();

export const runInScope = <T>(scope: StepScope, fn: () => Promise<T>): Promise<T> => storage.run(scope, fn);

export const currentScope = (): StepScope | undefined => storage.getStore();
