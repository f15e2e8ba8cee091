// A real Redis (Debian's redis-server, in an image scripts/build-image.sh builds from Debian's
// packages) moved with a client connected from the host throughout: 200 000 keys loaded first, a
// client writing and reading on one connection during the move; after it every write the client
// saw acknowledged is there (count and checksum over the whole keyspace) and the connection is the
// same one (same CLIENT ID, never closed). Redis runs in a user namespace of its own (the default),
// with its own address: CRIU makes its network namespace inside it on the target.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '../cli/client.ts';
import { readFile } from 'node:fs/promises';
import { exec, run } from '../lib/exec.ts';
import { FERRY_HOME } from '../lib/paths.ts';
import { connectRedisOnce, digestOf, keyspaceDigest, redisWriter } from '../lib/workload-clients.ts';
import { armHook, list, migrate, testCluster, unique, until } from './helpers.ts';

// In the test cluster's subnet (10.78.0.0/24: the host is .1, the nodes .11 and .12).
const ADDRESS = '10.78.0.160';
const KEYS = 200_000;
const IMAGE = `oci:${FERRY_HOME}/images/oci:redis`;

let c: Client;
before(async () => {
  c = await testCluster();
  await run('bash', ['scripts/build-image.sh', 'redis']); // built once, then kept
});
after(async () => c.close());

test('Redis moves with 200 000 keys and a client writing throughout: every acknowledged write is there, on the same connection', async () => {
  const container = unique('redis');
  await c.bus.call('node1', { kind: 'runImage', container, image: IMAGE, address: ADDRESS }, 180_000);
  const r = await connectRedisOnce(ADDRESS, 15_000);
  const events: string[] = [];
  r.on('close', () => events.push('close'));
  r.on('error', (e: Error) => events.push(`error: ${e.message}`));
  const expected = new Map<string, string>();
  for (let i = 0; i < KEYS; i += 10_000) {
    const p = r.pipeline();
    for (let k = i; k < i + 10_000; k++) {
      p.set(`key:${k}`, `value:${k}`);
      expected.set(`key:${k}`, `value:${k}`);
    }
    await p.exec();
  }
  const id = await r.client('ID');

  // The writer: a SET and a read-back of the one before, one at a time, until told to stop.
  const writer = redisWriter(r, expected);
  // Whatever fails below, the writer stops: it would otherwise write on, and the test never end.
  try {
    await until(async () => writer.acked() > 50, 10_000);
    const before = writer.acked();
    const m = await migrate(c, unique('m-redis'), { node: 'node1', container }, 'node2');
    assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
    await until(async () => writer.acked() > before + 200, 15_000); // it goes on after the move
    await writer.stop();
    const acked = writer.acked();
    // The figures, for the record (tests never assert on time).
    console.log(
      `redis: ${KEYS} keys, ${acked} writes acknowledged (${before} before the move), longest pause the client saw ${Math.round(writer.timeline.longestGap())} ms, ferry's downtime ${m.status.migrationState?.downtimeMs ?? '?'} ms`,
    );

    assert.deepEqual(writer.failures, [], 'no write failed');
    assert.deepEqual(events, [], 'the connection never closed');
    assert.ok(acked > before + 200, `writes went on after the move (${before} before, ${acked} in all)`);
    assert.equal(await r.client('ID'), id, 'the same connection (CLIENT ID)');
    const held = await keyspaceDigest(r);
    const want = digestOf(expected);
    assert.equal(held.count, KEYS + acked, 'every key loaded and every acknowledged write');
    assert.equal(held.digest, want, 'the keyspace’s checksum');
    assert.ok((await list(c, 'node2')).some((x) => x.id === container && x.status === 'running'));
    const map = await c.bus.call('node2', {
      kind: 'exec',
      container,
      command: ['cat', '/proc/self/uid_map'],
    });
    assert.match(map.stdout, /^\s*0\s+\d{6,}\s+65536\s*$/, 'still in a user namespace of its own');
    assert.ok(!(await list(c, 'node1')).some((x) => x.id === container), 'gone from node1');
  } finally {
    await writer.stop();
    r.disconnect();
  }
  await c.bus.call('node2', { kind: 'remove', container });
});

test('a restore that fails on node2 after its network was made: Redis serves on from node1, on the same connection, and node2 keeps nothing of it', async () => {
  const container = unique('redis-rb');
  const address = '10.78.0.163';
  await c.bus.call('node1', { kind: 'runImage', container, image: IMAGE, address }, 180_000);
  const r = await connectRedisOnce(address, 15_000);
  try {
    await r.set('before', '1');
    const id = await r.client('ID');
    const name = unique('m-redis-rb');
    // fdinfo: read by the restored process itself, after CRIU made its namespaces and the action
    // script joined the network one to node2 (the log below says so).
    await armHook(c, 'node2', 'target.beforeRestore', {
      action: 'corruptFile',
      file: 'checkpoint/fdinfo-2.img',
      migration: name,
    });
    const m = await migrate(c, name, { node: 'node1', container }, 'node2');
    assert.equal(m.status.phase, 'Failed');
    assert.match(m.status.failureReason ?? '', /restore on node2 failed/);
    const log = /CRIU's log: ([^)]+)\)/.exec(m.status.failureReason ?? '')?.[1];
    assert.match(await readFile(log!, 'utf8'), /Running setup-namespaces scripts/);
    assert.equal(await r.get('before'), '1', 'the data is there');
    assert.equal(await r.client('ID'), id, 'the same connection');
    assert.equal(await r.set('after', '2'), 'OK', 'and it takes writes');
    const namespaces = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
    assert.ok(!namespaces.includes(`ferry-test-node2-${container}`), 'no namespace of it on node2');
    const routes = await exec('ip', ['-n', 'ferry-test-node2', 'route', 'show', `${address}/32`]);
    assert.equal(routes.stdout.trim(), '', 'node2 does not route its address');
    assert.ok(!(await list(c, 'node2')).some((x) => x.id === container), 'no container on node2');
  } finally {
    r.disconnect();
  }
  await c.bus.call('node1', { kind: 'remove', container });
});
