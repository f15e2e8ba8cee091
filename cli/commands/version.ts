// `ferry version`: this CLI's version, and each controller's that runs for the cluster (each says
// its own in the cluster's Redis while it runs: lib/version.ts). Works with no cluster up.
import { errorMessage } from '../../lib/errors.ts';
import { controllerVersions, VERSION } from '../../lib/version.ts';
import { table } from '../format.ts';
import { say, type Cli } from '../program.ts';

export function versionCommand(cli: Cli): void {
  cli.program
    .command('version')
    .description("this ferry's version, and each running controller's (they can differ during an upgrade)")
    .action(async () => {
      const rows = [['client', VERSION, '-', '-']];
      try {
        await cli.withClient(async (c) => {
          const found = await controllerVersions(c.redis, c.config.name);
          if (!found.length) rows.push(['controller', '-', '-', 'none running']);
          for (const v of found) rows.push(['controller', v.version, v.store, v.who]);
        });
      } catch (err) {
        rows.push(['controller', '-', '-', `cannot ask: ${errorMessage(err)}`]);
      }
      say(table(['COMPONENT', 'VERSION', 'STORE', 'WHERE'], rows));
    });
}
