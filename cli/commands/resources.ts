// kubectl's verbs on Migrations: get, describe, delete, and abort (which sets spec.abort).
import { Option } from 'commander';
import { stringify } from 'yaml';
import { MIGRATION_COLUMNS, describe, migrationRow, table } from '../format.ts';
import { say, type Cli } from '../program.ts';
import { waitForMigration } from '../watch.ts';

function checkResource(r: string): void {
  if (!['migration', 'migrations', 'mig'].includes(r))
    throw new Error(`unknown resource "${r}": ferry knows "migrations"`);
}

function getCommand(cli: Cli): void {
  const output = new Option('-o, --output <format>', 'output format')
    .choices(['table', 'yaml', 'json'])
    .default('table');
  cli.program
    .command('get')
    .description('list Migrations (kubectl-style)')
    .argument('<resource>', 'migrations | migration')
    .argument('[name]')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .addOption(output)
    .action(async (resource: string, name: string | undefined, o: { namespace: string; output: string }) => {
      checkResource(resource);
      await cli.withClient(async (c) => {
        const list = (await c.store.list(o.namespace)).filter((m) => !name || m.metadata.name === name);
        if (name && !list.length) throw new Error(`migration "${name}" not found`);
        const doc = name ? list[0] : { apiVersion: 'v1', kind: 'List', items: list };
        if (o.output === 'json') say(JSON.stringify(doc, null, 2));
        else if (o.output === 'yaml') say(stringify(doc));
        else if (!list.length) say(`No migrations found in ${o.namespace} namespace.`);
        else
          say(
            table(
              MIGRATION_COLUMNS,
              list.map((m) => migrationRow(m)),
            ),
          );
      });
    });
}

function describeCommand(cli: Cli): void {
  cli.program
    .command('describe')
    .description('a Migration in detail, with its phase timeline')
    .argument('<resource>', 'migration')
    .argument('<name>')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action(async (resource: string, name: string, o: { namespace: string }) => {
      checkResource(resource);
      await cli.withClient(async (c) => {
        const m = await c.store.get(o.namespace, name);
        if (!m) throw new Error(`migration "${name}" not found`);
        say(describe(m, await c.store.events(o.namespace, name)));
      });
    });
}

function deleteCommand(cli: Cli): void {
  cli.program
    .command('delete')
    .description(
      'delete a Migration; one still running is first aborted and rolled back (its finalizer holds it until then)',
    )
    .argument('<resource>', 'migration')
    .argument('<name>')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--wait', 'wait until it is gone')
    .action(async (resource: string, name: string, o: { namespace: string; wait?: boolean }) => {
      checkResource(resource);
      await cli.withClient(async (c) => {
        const r = await c.store.delete(o.namespace, name);
        if (r === 'notfound') throw new Error(`migration "${name}" not found`);
        if (r === 'deleting') {
          say(`migration.ferry.dev "${name}" is being deleted: it is aborted and rolled back first`);
          if (!o.wait) return;
          while (await c.store.get(o.namespace, name)) await new Promise((res) => setTimeout(res, 200));
        }
        say(`migration.ferry.dev "${name}" deleted`);
      });
    });
}

function abortCommand(cli: Cli): void {
  cli.program
    .command('abort')
    .description('abort a running Migration (sets spec.abort); after the freeze the source resumes')
    .argument('<name>')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--wait', 'follow it until it ends')
    .action(async (name: string, o: { namespace: string; wait?: boolean }) =>
      cli.withClient(async (c) => {
        const m = await c.store.get(o.namespace, name);
        if (!m) throw new Error(`migration "${name}" not found`);
        await c.store.updateSpec(o.namespace, name, { ...m.spec, abort: true });
        say(`migration.ferry.dev/${name} abort requested`);
        if (!o.wait) return;
        const done = await waitForMigration(c, o.namespace, name, say);
        say(describe(done, await c.store.events(o.namespace, name)));
      }),
    );
}

export function resourceCommands(cli: Cli): void {
  getCommand(cli);
  describeCommand(cli);
  deleteCommand(cli);
  abortCommand(cli);
}
