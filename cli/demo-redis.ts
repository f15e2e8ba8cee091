// `ferry demo --image redis`: the demo with real software. Debian's redis-server, in an image
// scripts/build-image.sh builds, with 100 000 keys and a client on this machine writing and reading
// on one connection; moved node1 -> node2 while the client goes on; then the client's own view:
// every write it saw acknowledged is there, on the same connection.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { clusterUp, type UpOptions } from '../cluster/cluster.ts';
import { REPO_ROOT } from '../cluster/processes.ts';
import { run } from '../lib/exec.ts';
import { FERRY_HOME } from '../lib/paths.ts';
import { connectRedisOnce, digestOf, keyspaceDigest, redisWriter } from '../lib/workload-clients.ts';
import { connect } from './client.ts';
import { demoMigration } from './demo.ts';
import { describe, ms } from './format.ts';
import { waitForMigration } from './watch.ts';

const KEYS = 100_000;

export async function demoRedis(up: UpOptions, say: (line: string) => void): Promise<boolean> {
  const container = 'demo-redis';
  const name = 'demo-redis';
  const address = `${up.subnet}.60`;
  say("== 1. An image of Redis, from Debian 12's redis-server (scripts/build-image.sh)");
  say(await run('bash', [path.join(REPO_ROOT, 'scripts/build-image.sh'), 'redis']));
  say('== 2. Local cluster');
  await clusterUp(up);
  const client = await connect(up.name);
  const broke: string[] = [];
  let opened: Redis | undefined;
  let writing: { stop: () => Promise<void> } | undefined;
  try {
    for (const node of client.config.nodes) await client.bus.call(node, { kind: 'remove', container });
    await client.store.delete('default', name);
    say(`\n== 3. Redis on node1 at ${address}, ${KEYS} keys, a client writing and reading on one connection`);
    const image = `oci:${FERRY_HOME}/images/oci:redis`;
    const info = await client.bus.call('node1', { kind: 'runImage', container, image, address }, 300_000);
    say(`  ${container} running on node1 (pid ${info.pid}): ${(info.command ?? []).join(' ')}`);
    const r = await connectRedisOnce(address, 10_000);
    opened = r;
    r.on('close', () => broke.push('the connection closed'));
    const expected = new Map<string, string>();
    const p = r.pipeline();
    for (let k = 0; k < KEYS; k++) {
      p.set(`key:${k}`, `value:${k}`);
      expected.set(`key:${k}`, `value:${k}`);
    }
    await p.exec();
    const id = await r.client('ID');
    const writer = redisWriter(r, expected);
    writing = writer;
    await sleep(1000);
    say(`  client: connection CLIENT ID ${id}, ${writer.acked()} writes acknowledged so far`);

    say('\n== 4. Migration node1 -> node2, the client writing throughout');
    await client.store.create(demoMigration(name, container));
    const done = await waitForMigration(client, 'default', name, say);
    say('');
    say(describe(done));
    await sleep(1000);
    await writer.stop();

    say('\n== 5. What the client saw');
    const held = await keyspaceDigest(r);
    const sameConnection = (await r.client('ID')) === id && !broke.length;
    const allThere = held.count === expected.size && held.digest === digestOf(expected);
    say(
      `  writes acknowledged: ${writer.acked()}, failed: ${writer.failures.length ? writer.failures[0] : 'none'}`,
    );
    say(`  longest pause between two acknowledged writes: ${ms(writer.timeline.longestGap())}`);
    say(`  same connection (CLIENT ID ${id}): ${sameConnection ? 'yes' : 'NO'}`);
    say(
      `  keys held ${held.count}, expected ${expected.size}; keyspace checksum ${allThere ? 'matches' : 'DIFFERS'}`,
    );
    const ok = done.status.phase === 'Succeeded' && !writer.failures.length && sameConnection && allThere;
    say(
      `\n${ok ? 'PASS' : 'FAIL'}: Redis moved with its client connected; ferry's downtime ${ms(done.status.migrationState?.downtimeMs)}`,
    );
    say('\nLook around: ferry ps · redis-cli -h ' + address + ' dbsize · ferry cluster down');
    return ok;
  } finally {
    await writing?.stop(); // whatever failed: the client stops writing, and the demo ends
    opened?.disconnect();
    await client.close();
  }
}
