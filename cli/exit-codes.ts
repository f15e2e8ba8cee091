// ferry's exit codes, as scripts read them: 0 done; 1 failed (a refusal by the cluster, a migration
// that ended Failed, a node or store that does not answer); 2 usage (the command line or the input
// it names was refused as invalid before anything was changed: an unknown command or flag, a
// missing argument, a flag value or a manifest field that fails its check). Pure.
import { CommanderError } from 'commander';
import { FerryError } from '../lib/errors.ts';
import { ImmutableFieldError } from '../lib/store/migration-store.ts';
import { ManifestError } from './manifest.ts';

export const EXIT = { done: 0, failed: 1, usage: 2 } as const;

/** The exit code for an error a command ended with. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError)
    return ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(err.code)
      ? EXIT.done
      : EXIT.usage;
  if (err instanceof ManifestError || err instanceof ImmutableFieldError) return EXIT.usage;
  if (err instanceof FerryError && err.code === 'InvalidInput') return EXIT.usage;
  return EXIT.failed;
}
