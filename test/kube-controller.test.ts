// The controller on the Kubernetes store: a Migration created through the (fake) API server moves a
// real workload between the test cluster's nodes; status goes through the status subresource only
// when it changed; Events are recorded; the CLI reads it all with --kubeconfig; deletion waits for
// the finalizer; `kubectl wait --for=condition=Succeeded` (or Failed), done as kubectl does it (a
// list, then a watch from its resourceVersion), tells success from failure.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_VERSION, TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import type { Client } from '../cli/client.ts';
import { nodeEntry, REPO_ROOT } from '../cluster/processes.ts';
import { readClusterConfig } from '../cluster/cluster.ts';
import { KubeMigrationStore, loadKubeConfig } from '../lib/store/kube-store.ts';
import { createLogger } from '../lib/logger.ts';
import { CustomObjectsApi, Watch } from '@kubernetes/client-node';
import { FakeApiServer } from './fake-apiserver.ts';
import { CLUSTER, list, runWorkload, testCluster, unique, verify } from './helpers.ts';

const fake = new FakeApiServer();
let c: Client;
let kubeconfig: string;
let controller: ChildProcess;
let store: KubeMigrationStore;

before(async () => {
  c = await testCluster();
  await fake.start();
  kubeconfig = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-kube-')), 'config');
  await writeFile(kubeconfig, fake.kubeconfig(), { mode: 0o600 });
  const [cmd, ...args] = nodeEntry('controller/main.ts', ['--cluster', CLUSTER, '--kubeconfig', kubeconfig]);
  controller = spawn(cmd!, args, { cwd: REPO_ROOT, stdio: 'ignore' });
  store = new KubeMigrationStore(loadKubeConfig(kubeconfig), createLogger('test', '/dev/null'));
});
after(async () => {
  controller.kill('SIGTERM');
  await new Promise((r) => controller.once('exit', r));
  await fake.stop();
  await c.close();
});

async function waitEnded(name: string): Promise<StoredMigration> {
  for (let i = 0; i < 1200; i++) {
    const m = await store.get('default', name);
    if (m && TERMINAL_PHASES.includes(m.status.phase)) return m;
    await sleep(100);
  }
  throw new Error(`${name} did not end`);
}

/**
 * `kubectl wait migration/NAME --for=condition=TYPE`: a list, then a watch from the list's
 * resourceVersion, until the object has that condition with status True. Resolves to whether it
 * did within `timeoutMs`.
 */
async function kubectlWait(name: string, type: string, timeoutMs: number): Promise<boolean> {
  const kc = loadKubeConfig(kubeconfig);
  const base = '/apis/ferry.dev/v1alpha1/namespaces/default/migrations';
  const met = (o: unknown) =>
    (o as StoredMigration | undefined)?.status?.conditions?.some(
      (c) => c.type === type && c.status === 'True',
    );
  const list = (await kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
    group: 'ferry.dev',
    version: 'v1alpha1',
    namespace: 'default',
    plural: 'migrations',
  })) as { metadata: { resourceVersion: string }; items: StoredMigration[] };
  if (met(list.items.find((m) => m.metadata.name === name))) return true;
  return new Promise<boolean>((resolve) => {
    let req: { abort(): void } | undefined;
    const timer = setTimeout(() => {
      req?.abort();
      resolve(false);
    }, timeoutMs);
    void new Watch(kc)
      .watch(
        base,
        { resourceVersion: list.metadata.resourceVersion },
        (_type, obj: StoredMigration) => {
          if (obj.metadata?.name !== name || !met(obj)) return;
          clearTimeout(timer);
          req?.abort();
          resolve(true);
        },
        () => undefined,
      )
      .then((r) => (req = r));
  });
}

test('a Migration applied to the Kubernetes API moves the workload, with Events and minimal status writes', async () => {
  const container = unique('kube');
  const name = unique('km');
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  await store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: {
      source: { node: 'node1', container },
      target: { nodeSelector: { 'kubernetes.io/hostname': 'node2' } },
    },
  });
  assert.ok(await kubectlWait(name, 'Succeeded', 120_000), 'kubectl wait --for=condition=Succeeded');
  const m = await waitEnded(name);
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.ok(!m.status.conditions?.some((c) => c.type === 'Failed'), 'no Failed condition');
  assert.match(m.status.migrationState?.downtime ?? '', /^\d+(ms|\.\d\ds)$/);
  assert.equal(m.status.migrationState?.targetNode, 'node2');
  assert.equal(m.status.observedGeneration, 1);
  assert.equal(fake.stats.noopStatusWrites, 0, 'status is written only when it changed');

  const v = await verify(c, 'node2', container);
  assert.ok(v.pass && v.counter! > v0.counter!, v.line);
  assert.ok(!(await list(c, 'node1')).some((x) => x.id === container));

  const events = await store.events('default', name);
  assert.deepEqual(
    events.map((e) => `${e.type}/${e.reason}`),
    [
      'Preflight',
      'Syncing',
      'Checkpointing',
      'Transferring',
      'Restoring',
      'Verifying',
      'CleaningUp',
      'MigrationSucceeded',
    ].map((p) => `Normal/${p}`),
  );

  // The CLI reads the same object through --kubeconfig.
  const run = promisify(execFile);
  const ferry = (args: string[]) =>
    run(path.join(REPO_ROOT, 'bin/ferry'), ['--cluster', CLUSTER, '--kubeconfig', kubeconfig, ...args]);
  assert.match(
    (await ferry(['get', 'migrations'])).stdout,
    new RegExp(`${name}\\s+Succeeded\\s+node1/${container}\\s+node2`),
  );
  const described = (await ferry(['describe', 'migration', name])).stdout;
  assert.match(described, /Events:[\s\S]*Normal\s+MigrationSucceeded/);
  assert.match(described, /Succeeded\s+True\s+MigrationSucceeded/);
  assert.equal(
    JSON.parse((await ferry(['get', 'migration', name, '-o', 'json'])).stdout).status.phase,
    'Succeeded',
  );

  // Deleting an ended Migration: the controller releases the finalizer and it goes.
  assert.equal(await store.delete('default', name), 'deleting');
  for (let i = 0; i < 100 && (await store.get('default', name)); i++) await sleep(100);
  assert.equal(await store.get('default', name), undefined);
  await c.bus.call('node2', { kind: 'remove', container });
});

test('a missing container is refused with a Warning event and nothing frozen', async () => {
  const name = unique('km');
  await store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: { source: { node: 'node1', container: 'absent' }, target: { node: 'node2' } },
  });
  assert.ok(await kubectlWait(name, 'Failed', 60_000), 'kubectl wait --for=condition=Failed');
  assert.ok(!(await kubectlWait(name, 'Succeeded', 1000)), 'never Succeeded');
  const m = await waitEnded(name);
  assert.equal(m.status.phase, 'Failed');
  assert.match(m.status.failureReason!, /ContainerNotFound/);
  const failed = m.status.conditions?.find((c) => c.type === 'Failed');
  assert.equal(failed?.reason, 'MigrationFailed');
  assert.match(
    failed?.message ?? '',
    /^preflightSource on node1 failed: ContainerNotFound/,
    'the step and the cause',
  );
  const events = await store.events('default', name);
  assert.equal(events.at(-1)?.type, 'Warning');
  assert.equal(events.at(-1)?.reason, 'MigrationFailed');
  assert.match(events.at(-1)?.message ?? '', /ContainerNotFound/);
});

test('the CLI from a laptop: KUBECONFIG alone (no --cluster), -A, -l, -w, a context, dry runs, and what needs the cluster’s inside refused', async () => {
  const labelled = unique('kl');
  await store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name: labelled, namespace: 'default', labels: { team: 'cache' } },
    spec: { source: { node: 'node1', container: 'absent' }, target: { node: 'node2' } },
  });
  await waitEnded(labelled);
  // No local cluster named, none chosen by FERRY_CLUSTER, no ~/.kube/config: KUBECONFIG alone.
  const home = await mkdtemp(path.join(tmpdir(), 'ferry-home-'));
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: kubeconfig, HOME: home };
  delete env.FERRY_CLUSTER;
  const ferry = (args: string[]) =>
    promisify(execFile)(path.join(REPO_ROOT, 'bin/ferry'), args, { env }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        out: e.stdout,
        err: e.stderr,
      }),
    );
  const all = await ferry(['get', 'migrations', '-A']);
  assert.equal(all.code, 0, all.err);
  assert.match(all.out, /^NAMESPACE\s+NAME\s+PHASE/m);
  assert.match(all.out, new RegExp(`^default\\s+${labelled}\\s+Failed`, 'm'));
  const selected = await ferry(['get', 'migrations', '-l', 'team=cache', '-o', 'json']);
  assert.deepEqual(
    (JSON.parse(selected.out) as { items: StoredMigration[] }).items.map((m) => m.metadata.name),
    [labelled],
  );
  const none = await ferry(['get', 'migrations', '-l', 'team!=cache', '-o', 'json']);
  assert.ok(
    !(JSON.parse(none.out) as { items: StoredMigration[] }).items.some((m) => m.metadata.name === labelled),
  );

  // Dry runs: checked (the server's too), nothing stored.
  const file = path.join(home, 'm.yaml');
  const dry = unique('kd');
  await writeFile(
    file,
    `apiVersion: ferry.dev/v1alpha1\nkind: Migration\nmetadata: {name: ${dry}}\nspec: {source: {node: node1, container: web}, target: {node: node2}}\n`,
  );
  for (const mode of ['client', 'server']) {
    const r = await ferry(['apply', '-f', file, `--dry-run=${mode}`]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`migration.ferry.dev/${dry} created \\(${mode} dry run\\)`));
  }
  assert.equal(await store.get('default', dry), undefined, 'a dry run stores nothing');
  await writeFile(
    file,
    `apiVersion: ferry.dev/v1alpha1\nkind: Migration\nmetadata: {name: ${dry}}\nspec: {source: {node: node1}}\n`,
  );
  const bad = await ferry(['apply', '-f', file, '--dry-run=client']);
  assert.equal(bad.code, 2, 'invalid input: usage');
  assert.match(bad.err, /spec\.source/);

  // -w: the list, then each Migration again as it changes.
  const watch = spawn(path.join(REPO_ROOT, 'bin/ferry'), ['get', 'migrations', '-w'], { env });
  let seen = '';
  watch.stdout.on('data', (d: Buffer) => (seen += d.toString()));
  try {
    for (let i = 0; i < 100 && !seen.includes('NAME'); i++) await sleep(100);
    const watched = unique('kw');
    await store.create({
      apiVersion: API_VERSION,
      kind: 'Migration',
      metadata: { name: watched, namespace: 'default' },
      spec: { source: { node: 'node1', container: 'absent' }, target: { node: 'node2' } },
    });
    const failedRow = new RegExp(`^${watched}\\s+Failed`, 'm');
    for (let i = 0; i < 300 && !failedRow.test(seen); i++) await sleep(100);
    assert.match(seen, failedRow, 'the watch printed it again once it failed');
  } finally {
    watch.kill('SIGTERM');
  }

  const lost = await ferry(['--context', 'nowhere', 'get', 'migrations']);
  assert.equal(lost.code, 2);
  assert.match(lost.err, /--context: no context "nowhere" in the kubeconfig/);
  const ps = await ferry(['ps']);
  assert.equal(ps.code, 1);
  assert.match(ps.err, /this command needs .* which on Kubernetes lives inside the cluster/);
  // And with nothing at all (unless this machine has a local cluster named local up): what to do.
  if (await readClusterConfig('local')) return;
  const bare = await promisify(execFile)(path.join(REPO_ROOT, 'bin/ferry'), ['get', 'migrations'], {
    env: { ...env, KUBECONFIG: '' },
  }).catch((e: { code: number; stderr: string }) => e);
  assert.equal((bare as { code: number }).code, 1);
  assert.match((bare as { stderr: string }).stderr, /no local cluster is up .*KUBECONFIG/);
});
