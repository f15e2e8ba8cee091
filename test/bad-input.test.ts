// Bad input gets a clear error and changes nothing: manifests, missing containers and nodes,
import { keyspace } from '../lib/keyspace.ts';
import { decodeJobFailure } from '../lib/errors.ts';
// unknown SSH keys, and job payloads that fail their schema.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '../cli/client.ts';
import { generateNodeKey } from '../lib/ssh-keys.ts';
import { TransferSession } from '../agent/transfer/sender.ts';
import { loadPeers } from '../agent/transfer/ssh-server.ts';
import { clusterDir, nodePaths } from '../lib/paths.ts';
import { REPO_ROOT } from '../cluster/processes.ts';
import { CLUSTER, list, migrate, phases, runWorkload, testCluster, unique } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

const run = promisify(execFile);
async function ferry(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(path.join(REPO_ROOT, 'bin/ferry'), ['--cluster', CLUSTER, ...args]);
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('ferry apply names the field at fault and creates nothing', async () => {
  const name = unique('bad');
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-'));
  const file = path.join(dir, 'm.yaml');
  await writeFile(
    file,
    `apiVersion: ferry.dev/v1alpha1\nkind: Migration\nmetadata:\n  name: ${name}\nspec:\n  source:\n    node: node1\n  target:\n    node: node2\n`,
  );
  const r = await ferry(['apply', '-f', file]);
  assert.equal(r.code, 2, 'usage: the input was refused as invalid');
  assert.match(r.stderr, /spec\.source\.container: required field is missing/);
  assert.equal(await c.store.get('default', name), undefined);
});

test('a command against a cluster whose Redis is down says so, and how to start it', async () => {
  const dir = clusterDir('ghost');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const config = {
    name: 'ghost',
    subnet: '10.99.0',
    nodes: ['node1'],
    redis: { path: path.join(dir, 'redis.sock') },
    ownRedis: true,
    faultHooks: false,
  };
  await writeFile(path.join(dir, 'cluster.json'), JSON.stringify(config), { mode: 0o600 });
  try {
    const r = await run(path.join(REPO_ROOT, 'bin/ferry'), ['--cluster', 'ghost', 'get', 'migrations']).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /ClusterUnavailable: cluster ghost: its Redis at \S+redis\.sock does not answer \(connect ENOENT[^)]*\); start it again with `ferry --cluster ghost cluster up`/,
    );
    assert.doesNotMatch(r.stderr, /Unhandled error event/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ferry migrate refuses a bad flag naming the field it sets, and creates nothing', async () => {
  const before = (await c.store.list()).length;
  const r = await ferry(['migrate', 'web', '--from', 'node1', '--to', 'node2', '--bandwidth', 'fast']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /spec\.strategy\.bandwidth: bandwidth: a byte quantity per second/);
  const same = await ferry(['migrate', 'web', '--from', 'node1', '--to', 'node1']);
  assert.match(same.stderr, /spec\.target\.node: target\.node must differ/);
  assert.equal((await c.store.list()).length, before);
});

test('exit codes: 2 for a command line ferry cannot take, 0 for help and version; version names each controller', async () => {
  for (const args of [
    ['--bogus'],
    ['migrate'],
    ['migrate', 'web', '--strategy', 'Sometimes'],
    ['frobnicate'],
  ])
    assert.equal((await ferry(args)).code, 2, args.join(' '));
  assert.equal((await ferry(['migrate', '--help'])).code, 0);
  const v = await ferry(['version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /client\s+0\.1\.0/);
  assert.match(v.stdout, /controller\s+0\.1\.0\s+redis\s+\S+\/\d+/, v.stdout);
});

test('ferry migrate of a missing container or to a missing node is refused at once, and creates nothing', async () => {
  const before = (await c.store.list()).length;
  const ghost = await ferry(['migrate', 'ghost', '--from', 'node1', '--to', 'node2']);
  assert.equal(ghost.code, 1);
  assert.match(ghost.stderr, /ContainerNotFound: no container ghost on node1 \(it has: /);
  const nowhere = await ferry(['migrate', 'ghost', '--from', 'node1', '--to', 'node9']);
  assert.match(
    nowhere.stderr,
    /NodeNotFound: node node9 has no live agent \(no heartbeat\); live nodes: node1, node2/,
  );
  assert.doesNotMatch(ghost.stdout + nowhere.stdout, /created/);
  assert.equal((await c.store.list()).length, before);
});

test('a command for a node with no agent says so at once instead of waiting for its job to time out', async () => {
  const r = await ferry(['verify', 'web', '--node', 'node9']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /NodeNotFound: node node9 has no live agent/);
  assert.doesNotMatch(r.stderr, /timed out/);
});

test('ferry migrate --wait moves a workload and shows its phases, progress and outcome', async () => {
  const container = unique('cli');
  await runWorkload(c, 'node1', container, 32);
  const r = await ferry([
    'migrate',
    container,
    '--from',
    'node1',
    '--to',
    'node2',
    '--strategy',
    'StopAndCopy',
    '--wait',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`migration.ferry.dev/${container}-[0-9a-f]{4} created`));
  for (const phase of ['Pending', 'Preflight', 'Checkpointing', 'Restoring', 'Succeeded'])
    assert.match(r.stdout, new RegExp(phase));
  assert.match(r.stdout, /Downtime:/);
  assert.ok((await list(c, 'node2')).some((x) => x.id === container));
  await c.bus.call('node2', { kind: 'remove', container });
});

test('corrupt and foreign documents in the store are left out; the controller serves the rest', async () => {
  const key = keyspace.migrations(CLUSTER);
  const bad = {
    'default/garbage-json': '{not json',
    'default/garbage-doc': JSON.stringify({ kind: 'Pod', spec: 7 }),
  };
  await c.redis.hset(key, bad);
  try {
    const container = unique('past-garbage');
    await runWorkload(c, 'node1', container, 8);
    const m = await migrate(c, unique('m-garbage'), { node: 'node1', container }, 'node2');
    assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
    const got = await ferry(['get', 'migrations']);
    assert.equal(got.code, 0, got.stderr);
    assert.doesNotMatch(got.stdout, /garbage-json|garbage-doc/);
    await c.bus.call('node2', { kind: 'remove', container });
  } finally {
    await c.redis.hdel(key, ...Object.keys(bad));
  }
});

test('ferry apply creates a valid Migration and reports an unchanged re-apply', async () => {
  const name = unique('ok');
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-'));
  const file = path.join(dir, 'm.yaml');
  // A container that does not exist: the Migration is created, then fails in preflight.
  await writeFile(
    file,
    `apiVersion: ferry.dev/v1alpha1\nkind: Migration\nmetadata:\n  name: ${name}\nspec:\n  source: {node: node1, container: absent}\n  target: {node: node2}\n`,
  );
  assert.match((await ferry(['apply', '-f', file])).stdout, /created/);
  assert.match((await ferry(['apply', '-f', file])).stdout, /unchanged/);
  // Once created, only spec.abort may change: anything else is refused with the field named.
  await writeFile(file, (await readFile(file, 'utf8')).replace('node: node2', 'node: node3'));
  const changed = await ferry(['apply', '-f', file]);
  assert.equal(changed.code, 2);
  assert.match(
    changed.stderr,
    /spec\.target: cannot change after the migration was created \(only spec\.abort can\)/,
  );
  assert.match((await ferry(['get', 'migrations'])).stdout, new RegExp(`${name}\\s`));
});

test('a missing source container is refused in preflight, before anything is frozen', async () => {
  const m = await migrate(c, unique('nocontainer'), { node: 'node1', container: 'does-not-exist' }, 'node2');
  assert.equal(m.status.phase, 'Failed');
  assert.deepEqual(phases(m), ['Pending', 'Preflight', 'Failed']);
  assert.match(
    m.status.failureReason!,
    /preflightSource on node1 failed: ContainerNotFound: container does-not-exist on node1 is absent/,
  );
});

test('a missing target node is refused before anything runs, and the source keeps running', async () => {
  const container = unique('stay');
  await runWorkload(c, 'node1', container, 8);
  const m = await migrate(c, unique('nonode'), { node: 'node1', container }, 'node9');
  assert.equal(m.status.phase, 'Failed');
  assert.deepEqual(phases(m), ['Pending', 'Failed']);
  assert.match(m.status.failureReason!, /NodeNotFound: target node node9 is not registered/);
  assert.equal((await list(c, 'node1')).find((x) => x.id === container)?.status, 'running');
  await c.bus.call('node1', { kind: 'remove', container });
});

test('an agent refuses an unknown SSH key and logs it', async () => {
  const peers = await loadPeers(path.join(clusterDir(CLUSTER), 'peers.json'));
  const node2 = peers.find((p) => p.node === 'node2')!;
  const stranger = generateNodeKey('node1'); // claims to be node1, with a key nobody authorised
  await assert.rejects(
    TransferSession.open({
      self: 'node1',
      privateKey: stranger.privateKey,
      peer: node2,
      migration: 'abcdef123456',
    }),
    /All configured authentication methods failed/,
  );
  await sleep(200);
  const log = await readFile(nodePaths(CLUSTER, 'node2').logFile, 'utf8');
  assert.match(log, /refused SSH key: not an authorised agent key for that node/);
});

test('a stream replayed from an ended migration is refused by the target, and nothing is written', async () => {
  const container = unique('replay');
  await runWorkload(c, 'node1', container, 8);
  const m = await migrate(c, unique('m-replay'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const peers = await loadPeers(path.join(clusterDir(CLUSTER), 'peers.json'));
  const key = await readFile(nodePaths(CLUSTER, 'node1').keyFile, 'utf8');
  // node1's own key, node2's pinned host key, the migration's real uid: only its time is wrong.
  const s = await TransferSession.open({
    self: 'node1',
    privateKey: key,
    peer: peers.find((p) => p.node === 'node2')!,
    migration: m.metadata.uid,
  });
  try {
    await assert.rejects(
      (async () => {
        await s.sendFile(nodePaths(CLUSTER, 'node1').configFile, 'checkpoint/inventory.img');
        await s.finish();
      })(),
      new RegExp(`no migration ${m.metadata.uid} from node1 is expected here`),
    );
  } finally {
    s.close();
  }
  const images = path.join(nodePaths(CLUSTER, 'node2').imagesDir, m.metadata.uid);
  assert.equal(existsSync(images), false, `${images} was written`);
  await c.bus.call('node2', { kind: 'remove', container });
});

test('an agent whose host key does not match the pinned one is refused', async () => {
  const peers = await loadPeers(path.join(clusterDir(CLUSTER), 'peers.json'));
  const node2 = peers.find((p) => p.node === 'node2')!;
  const key = await readFile(nodePaths(CLUSTER, 'node1').keyFile, 'utf8');
  const impostor = { ...node2, publicKey: generateNodeKey('x').publicKey };
  await assert.rejects(
    TransferSession.open({ self: 'node1', privateKey: key, peer: impostor, migration: 'abcdef123456' }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'AuthRefused', `${err.name}: ${err.message}`);
      assert.match(err.message, /node2 presented host key SHA256:\S+, expected SHA256:\S+/);
      return true;
    },
  );
});

test('a job payload that fails its schema is rejected without retry, its failure a structured code', async () => {
  const job = await c.bus
    .queue('node1')
    .add(
      'run',
      { kind: 'run', container: 'Not_A_Name', memoryMiB: 8 },
      { attempts: 3, backoff: { type: 'fixed', delay: 100 } },
    );
  const events = c.bus.queueEvents('node1');
  await events.waitUntilReady();
  await assert.rejects(job.waitUntilFinished(events, 30_000), /container: must be a DNS-1123 label/);
  const failed = await c.bus.queue('node1').getJob(job.id!);
  assert.equal(failed?.attemptsMade, 1);
  // The failure is data on the bus ({code, message}), not a sentence to parse.
  const failure = decodeJobFailure(failed?.failedReason);
  assert.equal(failure.code, 'InvalidInput');
  assert.match(failure.message, /^container: must be a DNS-1123 label/);
});
