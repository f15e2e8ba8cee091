// Every file in examples/ is applied as a user would apply it, and ends as the file intends:
// migration.yaml on the test cluster (a local cluster, as its comment says), here;
// pod-migration.yaml on Kubernetes (the fake API server, real containerd), in
// test/containerd-pods.test.ts. A new example without a test fails here.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import type { Client } from '../cli/client.ts';
import { exec } from '../lib/exec.ts';
import { CLUSTER, list, testCluster } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

const TESTED = {
  'migration.yaml': 'test/examples.test.ts',
  'pod-migration.yaml': 'test/containerd-pods.test.ts',
};

const ferry = (...args: string[]) =>
  exec(process.execPath, ['--import', 'tsx', 'cli/main.ts', '--cluster', CLUSTER, ...args]);

test('every example has a test that applies it', async () => {
  assert.deepEqual((await readdir('examples')).sort(), Object.keys(TESTED).sort());
});

test('examples/migration.yaml: after `ferry run web --node node1`, applying it moves web to node2', async () => {
  const run = await ferry('run', 'web', '--node', 'node1');
  assert.equal(run.code, 0, run.stderr);
  try {
    const applied = await ferry('apply', '-f', 'examples/migration.yaml', '--wait');
    assert.equal(applied.code, 0, `${applied.stdout}${applied.stderr}`);
    const m = await c.store.get('default', 'move-web');
    assert.equal(m?.status.phase, 'Succeeded', m?.status.failureReason);
    assert.equal((await list(c, 'node2')).find((x) => x.id === 'web')?.status, 'running');
    assert.ok(!(await list(c, 'node1')).some((x) => x.id === 'web'));
  } finally {
    await c.bus.call('node2', { kind: 'remove', container: 'web' }).catch(() => undefined);
    await c.bus.call('node1', { kind: 'remove', container: 'web' }).catch(() => undefined);
    await c.store.delete('default', 'move-web').catch(() => undefined);
  }
});
