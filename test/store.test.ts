// One contract, two stores: the Redis store of the local cluster and the Kubernetes store (against
// the fake API server) must behave the same for everything the controller and the CLI rely on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_VERSION, FINALIZER, type MigrationInput } from '../api/v1alpha1/migration.ts';
import { initialStatus } from '../api/v1alpha1/migration.ts';
import {
  AlreadyExistsError,
  ImmutableFieldError,
  type MigrationStore,
} from '../lib/store/migration-store.ts';
import { KubeMigrationStore, loadKubeConfig } from '../lib/store/kube-store.ts';
import { KubeLease } from '../controller/store/kube-lease.ts';
import { LeaderElector } from '../controller/leader.ts';
import { RedisMigrationStore } from '../lib/store/redis-store.ts';
import { keyspace } from '../lib/keyspace.ts';
import { createLogger } from '../lib/logger.ts';
import type { Client } from '../cli/client.ts';
import { FakeApiServer } from './fake-apiserver.ts';
import { testCluster, unique } from './helpers.ts';

const log = createLogger('test', '/dev/null');
const input = (name: string): MigrationInput => ({
  apiVersion: API_VERSION,
  kind: 'Migration',
  metadata: { name, namespace: 'default' },
  spec: { source: { node: 'node1', container: 'web' }, target: { node: 'node2' } },
});

function contract(label: string, make: () => MigrationStore) {
  describe(label, () => {
    test('create fills defaults, a finalizer and a Pending status; a second create is refused', async () => {
      const s = make();
      const name = unique('c');
      const m = await s.create(input(name));
      assert.equal(m.spec.strategy.mode, 'Auto');
      assert.ok(m.metadata.uid);
      assert.deepEqual(m.metadata.finalizers, [FINALIZER]);
      const got = await s.get('default', name);
      assert.equal(got?.status.phase, 'Pending');
      assert.equal(got?.metadata.generation, 1);
      await assert.rejects(s.create(input(name)), AlreadyExistsError);
    });

    test('only spec.abort may change; it bumps the generation', async () => {
      const s = make();
      const name = unique('u');
      const m = await s.create(input(name));
      await assert.rejects(
        s.updateSpec('default', name, { ...m.spec, target: { node: 'node3' } }),
        ImmutableFieldError,
      );
      const aborted = await s.updateSpec('default', name, { ...m.spec, abort: true });
      assert.equal(aborted.metadata.generation, 2);
      assert.equal((await s.get('default', name))?.spec.abort, true);
    });

    test('status is written apart from the spec and not for a deleted object', async () => {
      const s = make();
      const name = unique('s');
      await s.create(input(name));
      const status = { ...initialStatus(new Date().toISOString()), phase: 'Preflight' as const };
      assert.equal(await s.updateStatus('default', name, status), true);
      assert.equal((await s.get('default', name))?.status.phase, 'Preflight');
      assert.equal(await s.updateStatus('default', 'no-such-migration', status), false);
    });

    test('deleting a running Migration marks it; releasing it removes it', async () => {
      const s = make();
      const name = unique('d');
      await s.create(input(name));
      assert.equal(await s.delete('default', name), 'deleting');
      assert.ok((await s.get('default', name))?.metadata.deletionTimestamp);
      await s.release('default', name);
      assert.equal(await s.get('default', name), undefined);
      assert.equal(await s.delete('default', name), 'notfound');
    });

    test('a store that listed before sees what another wrote since, at its next list', async () => {
      const [reader, writer] = [make(), make()];
      const name = unique('l');
      const phaseOf = async () => (await reader.list()).find((m) => m.metadata.name === name)?.status.phase;
      const m = await writer.create(input(name));
      assert.equal(await phaseOf(), 'Pending');
      await writer.updateStatus('default', name, { ...m.status, phase: 'Preflight' });
      assert.equal(await phaseOf(), 'Preflight');
      await writer.updateSpec('default', name, { ...m.spec, abort: true });
      assert.equal((await reader.list()).find((x) => x.metadata.name === name)?.spec.abort, true);
      assert.equal(await writer.delete('default', name), 'deleting');
      await writer.release('default', name);
      assert.equal(await phaseOf(), undefined);
    });

    test('events are recorded against the Migration', async () => {
      const s = make();
      const name = unique('e');
      const m = await s.create(input(name));
      await s.event(m, { type: 'Warning', reason: 'RollingBack', message: 'restore failed' });
      const evs = await s.events('default', name);
      assert.equal(evs.length, 1);
      assert.deepEqual(
        { ...evs[0], time: undefined },
        { type: 'Warning', reason: 'RollingBack', message: 'restore failed', time: undefined },
      );
    });
  });
}

let cluster: Client;
const fake = new FakeApiServer();
let kubeconfig: string;
before(async () => {
  cluster = await testCluster();
  await fake.start();
  kubeconfig = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-kube-')), 'config');
  await writeFile(kubeconfig, fake.kubeconfig());
});
after(async () => {
  await cluster.close();
  await fake.stop();
});

// Its own key space: the test cluster's controller must not act on these Migrations.
contract('RedisMigrationStore', () => new RedisMigrationStore(cluster.redis, 'store-contract'));
contract('KubeMigrationStore', () => new KubeMigrationStore(loadKubeConfig(kubeconfig), log));

test('RedisMigrationStore lists a Migration stored before revisions existed, and sees it change', async () => {
  const cluster_ = 'store-revisions';
  const s = new RedisMigrationStore(cluster.redis, cluster_);
  const name = unique('r');
  const m = await s.create(input(name));
  // As an older ferry left it: the document and its status, no revision.
  await cluster.redis.hdel(keyspace.migrationRevisions(cluster_), `default/${name}`);
  assert.equal((await s.list()).find((x) => x.metadata.name === name)?.status.phase, 'Pending');
  await cluster.redis.hset(
    keyspace.migrationStatus(cluster_),
    `default/${name}`,
    JSON.stringify({ ...m.status, phase: 'Preflight' }),
  );
  assert.equal((await s.list()).find((x) => x.metadata.name === name)?.status.phase, 'Preflight');
  await s.delete('default', name);
  await s.release('default', name);
  assert.equal(
    (await s.list()).find((x) => x.metadata.name === name),
    undefined,
  );
});

describe('KubeMigrationStore against the API protocol', () => {
  test('the informer lists, then follows the watch, and relists after 410 Expired', async () => {
    const s = new KubeMigrationStore(loadKubeConfig(kubeconfig), log);
    let changes = 0;
    await s.startInformer(() => changes++, 60_000);
    try {
      const name = unique('w');
      await new KubeMigrationStore(loadKubeConfig(kubeconfig), log).create(input(name));
      for (let i = 0; i < 100 && !(await s.list()).some((m) => m.metadata.name === name); i++)
        await sleep(20);
      assert.ok(
        (await s.list()).some((m) => m.metadata.name === name),
        'the watch delivered the new object',
      );
      fake.compact(); // the next watch resume from an old resourceVersion will get 410
      const other = unique('w');
      await new KubeMigrationStore(loadKubeConfig(kubeconfig), log).create(input(other));
      for (let i = 0; i < 200 && !(await s.list()).some((m) => m.metadata.name === other); i++)
        await sleep(20);
      assert.ok((await s.list()).some((m) => m.metadata.name === other));
      assert.ok(changes >= 2);
    } finally {
      s.stopInformer();
    }
  });

  test('a status write with a stale resourceVersion gets 409 and is retried', async () => {
    const s = new KubeMigrationStore(loadKubeConfig(kubeconfig), log);
    const name = unique('r');
    const m = await s.create(input(name));
    const before = fake.stats.conflicts;
    // Two writers race: each reads, then writes; one of them must retry after a 409.
    await Promise.all([
      s.updateStatus('default', name, { ...m.status, phase: 'Preflight' }),
      s.updateSpec('default', name, { ...m.spec, abort: true }),
    ]);
    const got = await s.get('default', name);
    assert.equal(got?.status.phase, 'Preflight');
    assert.equal(got?.spec.abort, true);
    assert.ok(fake.stats.conflicts >= before);
  });

  test('the API server refuses an invalid Migration with the field named', async () => {
    const s = new KubeMigrationStore(loadKubeConfig(kubeconfig), log);
    const bad = {
      ...input(unique('x')),
      spec: { source: { node: 'node1', container: 'web' }, target: { node: 'node1' } },
    };
    await assert.rejects(s.create(bad), /target\.node must differ from source\.node|422/);
  });

  test('two replicas never both lead on one Lease; the second takes over when the first stops', async () => {
    const kc = loadKubeConfig(kubeconfig);
    const a = new LeaderElector(new KubeLease(kc, 'default', 'ferry-test-leader'), log, 3000);
    const b = new LeaderElector(new KubeLease(kc, 'default', 'ferry-test-leader'), log, 3000);
    await a.start();
    await b.start();
    try {
      assert.equal(a.isLeader(), true);
      assert.equal(b.isLeader(), false);
      await a.stop(); // releases the lease
      for (let i = 0; i < 100 && !b.isLeader(); i++) await sleep(50);
      assert.equal(b.isLeader(), true);
      assert.equal(a.isLeader(), false);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
