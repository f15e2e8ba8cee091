// A real web server (Debian's nginx, in an image scripts/build-image.sh builds) moved while a
// client on the host downloads a 512 MiB file from it: the download, in flight through the move on
// one connection, completes with the file's sha256. The file lives in a node-local volume, which
// moves with the container.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '../cli/client.ts';
import { run } from '../lib/exec.ts';
import { FERRY_HOME, nodePaths } from '../lib/paths.ts';
import { pacedDownload } from '../lib/workload-clients.ts';
import { CLUSTER, list, migrate, testCluster, unique, until } from './helpers.ts';

// In the test cluster's subnet (10.78.0.0/24: the host is .1, the nodes .11 and .12).
const ADDRESS = '10.78.0.161';
const SIZE = 512 * 1024 * 1024;
/** Bytes a second the client reads: slowly while the container moves, so the download is in flight throughout however long the move takes, then at full speed. */
const pace = { rate: 64 * 1024 * 1024 };
const IMAGE = `oci:${FERRY_HOME}/images/oci:nginx`;

let c: Client;
before(async () => {
  c = await testCluster();
  await run('bash', ['scripts/build-image.sh', 'nginx']); // built once, then kept
});
after(async () => c.close());

/** Writes SIZE random bytes to `file`; returns their sha256. */
async function randomFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  const f = await open(file, 'w', 0o644);
  for (let done = 0; done < SIZE; done += 8 << 20) {
    const chunk = randomBytes(8 << 20);
    hash.update(chunk);
    await f.write(chunk);
  }
  // Readable by nginx, which runs in a user namespace of its own (and this process's umask is 077).
  await f.chmod(0o644);
  await f.close();
  return hash.digest('hex');
}

test('nginx moves while a 512 MiB download is in flight, and the download completes with the right sha256', async () => {
  const container = unique('web');
  const volumes = [{ name: 'www', path: '/srv/www' }];
  await c.bus.call(
    'node1',
    { kind: 'runImage', container, image: IMAGE, address: ADDRESS, volumes },
    180_000,
  );
  const www = path.join(nodePaths(CLUSTER, 'node1').fsRoot, 'containers', container, 'volumes', 'www');
  const want = await randomFile(path.join(www, 'big'));
  const { done: fetched, progress } = pacedDownload(`http://${ADDRESS}/big`, pace);
  await until(async () => progress.bytes > 32 << 20, 30_000);
  const at = progress.bytes;
  pace.rate = 4 * 1024 * 1024;
  const m = await migrate(c, unique('m-web'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const after = progress.bytes;
  pace.rate = Infinity;
  const got = await fetched;
  console.log(
    `web: ${SIZE} bytes; the move began at ${at} and ended at ${after} bytes downloaded; ferry's downtime ${m.status.migrationState?.downtimeMs ?? '?'} ms`,
  );
  assert.ok(after < SIZE, 'the download was still in flight when the move ended');
  assert.deepEqual([got.status, got.bytes, got.sha256], [200, SIZE, want], 'the whole file, byte for byte');
  assert.ok((await list(c, 'node2')).some((x) => x.id === container && x.status === 'running'));
  await sleep(100);
  await c.bus.call('node2', { kind: 'remove', container });
});
