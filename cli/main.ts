// The ferry command line. It speaks kubectl's language for Migrations and adds the local
// cluster's own verbs; each group of commands is a file in cli/commands/. Run `ferry --help` or
// `ferry COMMAND --help`.
import { CommanderError } from 'commander';
import { errorMessage } from '../lib/errors.ts';
import { addCommands } from './commands/index.ts';
import { exitCodeFor } from './exit-codes.ts';
import { Cli, rootCommand } from './program.ts';

const cli = new Cli(rootCommand());
addCommands(cli);

// Exit codes: cli/exit-codes.ts (commander has printed its own usage errors already).
cli.program
  .parseAsync()
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((err: unknown) => {
    if (!(err instanceof CommanderError)) console.error(`error: ${errorMessage(err)}`);
    process.exit(exitCodeFor(err));
  });
