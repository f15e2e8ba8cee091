// kubectl's verbs on Migrations: get, describe, delete, and abort (which sets spec.abort).
import { Option } from 'commander';
import { stringify } from 'yaml';
import type { StoredMigration } from '../../api/v1alpha1/migration.ts';
import { parseSelector, selects } from '../../lib/kube/selectors.ts';
import { MIGRATION_COLUMNS, describe, migrationRow, table } from '../format.ts';
import { Cli, say } from '../program.ts';
import { waitForMigration } from '../watch.ts';

function checkResource(r: string): void {
  if (!['migration', 'migrations', 'mig'].includes(r))
    throw new Error(`unknown resource "${r}": ferry knows "migrations"`);
}

const NAMESPACE_HELP = "namespace (default: the kubeconfig context's, else default)";

/** The rows a watch prints after its first table: what is new or changed since. Pure. */
export function changedRows(before: Map<string, string>, rows: string[][], key: (r: string[]) => string) {
  const out: string[][] = [];
  for (const r of rows) {
    const k = key(r);
    const text = r.join('\t');
    if (before.get(k) !== text) out.push(r);
    before.set(k, text);
  }
  return out;
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
    .option('-n, --namespace <ns>', NAMESPACE_HELP)
    .option('-A, --all-namespaces', 'every namespace (a NAMESPACE column first)')
    .option('-l, --selector <selector>', 'only Migrations whose labels match, as kubectl: a=b,c!=d,e,!f')
    .option('-w, --watch', 'after the list, print each Migration again as it changes (Ctrl-C ends)')
    .addOption(output)
    .action(
      async (
        resource: string,
        name: string | undefined,
        o: {
          namespace?: string;
          allNamespaces?: boolean;
          selector?: string;
          watch?: boolean;
          output: string;
        },
      ) => {
        checkResource(resource);
        const selector = o.selector === undefined ? undefined : parseSelector(o.selector);
        await cli.withClient(async (c) => {
          const ns = o.allNamespaces ? undefined : Cli.namespace(o.namespace, c);
          const read = async () =>
            (await c.store.list(ns)).filter(
              (m) =>
                (!name || m.metadata.name === name) &&
                (!selector || selects(selector, m.metadata.labels ?? {})),
            );
          const columns = o.allNamespaces ? ['NAMESPACE', ...MIGRATION_COLUMNS] : MIGRATION_COLUMNS;
          const row = (m: StoredMigration) =>
            o.allNamespaces ? [m.metadata.namespace, ...migrationRow(m)] : migrationRow(m);
          const list = await read();
          if (name && !list.length && !o.watch) throw new Error(`migration "${name}" not found`);
          const doc = name ? list[0] : { apiVersion: 'v1', kind: 'List', items: list };
          if (o.output === 'json') say(JSON.stringify(doc, null, 2));
          else if (o.output === 'yaml') say(stringify(doc));
          else if (!list.length) say(`No migrations found${ns ? ` in ${ns} namespace` : ''}.`);
          else say(table(columns, list.map(row)));
          if (!o.watch) return;
          // As kubectl -w: the rows that change, as they change; the store is polled, whichever it is.
          const key = (m: StoredMigration) => `${m.metadata.namespace}/${m.metadata.name}`;
          const seen = new Map<string, string>();
          const phaseOf = new Map<string, StoredMigration>();
          const rowsOf = (ms: StoredMigration[]) => {
            for (const m of ms) phaseOf.set(key(m), m);
            return ms.map((m) => [key(m), ...row(m)]);
          };
          changedRows(seen, rowsOf(list), (r) => r[0]!);
          for (;;) {
            await new Promise((r) => setTimeout(r, 1000));
            for (const r of changedRows(seen, rowsOf(await read()), (x) => x[0]!)) {
              const m = phaseOf.get(r[0]!)!;
              say(o.output === 'table' ? table(columns, [r.slice(1)]).split('\n')[1]! : JSON.stringify(m));
            }
          }
        });
      },
    );
}

function describeCommand(cli: Cli): void {
  cli.program
    .command('describe')
    .description('a Migration in detail, with its phase timeline')
    .argument('<resource>', 'migration')
    .argument('<name>')
    .option('-n, --namespace <ns>', NAMESPACE_HELP)
    .action(async (resource: string, name: string, o: { namespace?: string }) => {
      checkResource(resource);
      await cli.withClient(async (c) => {
        const ns = Cli.namespace(o.namespace, c);
        const m = await c.store.get(ns, name);
        if (!m) throw new Error(`migration "${name}" not found`);
        say(describe(m, await c.store.events(ns, name)));
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
    .option('-n, --namespace <ns>', NAMESPACE_HELP)
    .option('--wait', 'wait until it is gone')
    .action(async (resource: string, name: string, o: { namespace?: string; wait?: boolean }) => {
      checkResource(resource);
      await cli.withClient(async (c) => {
        const ns = Cli.namespace(o.namespace, c);
        const r = await c.store.delete(ns, name);
        if (r === 'notfound') throw new Error(`migration "${name}" not found`);
        if (r === 'deleting') {
          say(`migration.ferry.dev "${name}" is being deleted: it is aborted and rolled back first`);
          if (!o.wait) return;
          while (await c.store.get(ns, name)) await new Promise((res) => setTimeout(res, 200));
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
    .option('-n, --namespace <ns>', NAMESPACE_HELP)
    .option('--wait', 'follow it until it ends')
    .action(async (name: string, o: { namespace?: string; wait?: boolean }) =>
      cli.withClient(async (c) => {
        const ns = Cli.namespace(o.namespace, c);
        const m = await c.store.get(ns, name);
        if (!m) throw new Error(`migration "${name}" not found`);
        await c.store.updateSpec(ns, name, { ...m.spec, abort: true });
        say(`migration.ferry.dev/${name} abort requested`);
        if (!o.wait) return;
        const done = await waitForMigration(c, ns, name, say);
        say(describe(done, await c.store.events(ns, name)));
      }),
    );
}

export function resourceCommands(cli: Cli): void {
  getCommand(cli);
  describeCommand(cli);
  deleteCommand(cli);
  abortCommand(cli);
}
