// A cluster name is checked where it is given: `cluster up` refuses what every later command would
// refuse, in the same words, before it makes anything; `cluster down` takes down whatever a cluster
// on this machine left, whatever its configuration says.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ClusterConfigSchema } from '../api/v1alpha1/cluster.ts';
import { clusterConfigFile, clusterDir } from '../lib/paths.ts';
import { clusterDown, clusterUp } from './cluster.ts';

const up = (name: string) =>
  clusterUp({
    name,
    nodes: 2,
    subnet: '10.99.0',
    faultHooks: false,
    diskGiB: 1,
    imagesGiB: 1,
    metricsPort: 0,
  });

test('cluster up refuses a name the rest of ferry would refuse, in the same words, and makes nothing', async () => {
  const words = ClusterConfigSchema.shape.name.safeParse('interop').error!.issues[0]!.message;
  await assert.rejects(up('interop'), (err: Error) => {
    assert.equal(err.message, `cluster "interop": ${words}`);
    assert.match(words, /1 to 5 lowercase letters or digits/);
    return true;
  });
  await assert.rejects(stat(clusterDir('interop')), { code: 'ENOENT' });
  await assert.rejects(up('Bad!'), /cluster "Bad!": a cluster name is 1 to 5/);
});

test('cluster down takes down a cluster whose configuration its schema refuses', async () => {
  await mkdir(clusterDir('interop'), { recursive: true, mode: 0o700 });
  await writeFile(
    clusterConfigFile('interop'),
    JSON.stringify({
      name: 'interop',
      subnet: '10.98.0',
      nodes: ['node1'],
      ownRedis: true,
      faultHooks: false,
    }),
  );
  await clusterDown('interop');
  await assert.rejects(stat(clusterDir('interop')), { code: 'ENOENT' });
  await assert.rejects(clusterDown('../etc'), /not a cluster name/);
});

test('cluster down stops the controller an up from another checkout, or a bundled ferry, started', async () => {
  for (const script of ['/elsewhere/controller/main.ts', '/opt/x/dist/controller.mjs']) {
    await mkdir(clusterDir('intrb'), { recursive: true, mode: 0o700 });
    const p = spawn('bash', ['-c', `exec -a "node ${script} --cluster intrb" sleep 60`], { stdio: 'ignore' });
    await new Promise((r) => p.once('spawn', r));
    await writeFile(path.join(clusterDir('intrb'), 'controller.pid'), String(p.pid));
    const exited = new Promise((r) => p.once('exit', r));
    await clusterDown('intrb');
    assert.equal(await exited, null, `${script}: stopped`);
    await assert.rejects(stat(clusterDir('intrb')), { code: 'ENOENT' });
  }
});
