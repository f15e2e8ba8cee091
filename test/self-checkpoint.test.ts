// Self-checkpoint: a workload asks, from inside its container, to be moved; the request becomes an
// ordinary Migration; the workload verifies itself on the target. Requests the kernel cannot tie
// to the container, and malformed ones, are refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import path from 'node:path';
import type { Client } from '../cli/client.ts';
import { waitForMigration } from '../cli/watch.ts';
import { selfDir } from '../agent/self-service.ts';
import { nodeRunDir } from '../lib/paths.ts';
import { CLUSTER, list, runWorkload, testCluster, unique, verify } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

test('a workload asks to be moved and checks itself on the target', async () => {
  const container = unique('selfie');
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  const answer = (await c.bus.call('node1', { kind: 'selfRequest', container, target: 'node2' })) as {
    ok: boolean;
    migration: string;
  };
  assert.equal(answer.ok, true);
  const m = await waitForMigration(c, 'default', answer.migration, () => undefined);
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.match(
    m.metadata.annotations?.['ferry.dev/requested-by'] ?? '',
    new RegExp(`^pid \\d+ in ${container}$`),
  );
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass && v.counter! > v0.counter!, v.line);
  assert.ok(!(await list(c, 'node1')).some((x) => x.id === container));
  // The moved workload can ask again, from its new node.
  const back = (await c.bus.call('node2', { kind: 'selfRequest', container, target: 'node1' })) as {
    ok: boolean;
    migration: string;
  };
  assert.equal(
    (await waitForMigration(c, 'default', back.migration, () => undefined)).status.phase,
    'Succeeded',
  );
  await c.bus.call('node1', { kind: 'remove', container });
});

test('a caller outside the container is refused, and so is a malformed request', async () => {
  const container = unique('selfie');
  await runWorkload(c, 'node1', container, 8);
  const sock = path.join(selfDir(nodeRunDir(CLUSTER, 'node1'), container), 'ferry.sock');
  const answer = await new Promise<string>((resolve, reject) => {
    const s = connect(sock, () => s.write('{"action":"migrate","target":"node2"}\n'));
    let text = '';
    s.on('data', (d) => (text += String(d)))
      .on('end', () => resolve(text))
      .on('error', reject);
  });
  assert.match(answer, /"ok":false.*AuthRefused/);
  await assert.rejects(
    c.bus.call('node1', { kind: 'selfRequest', container, target: 'Not_A_Node' }),
    /must be a DNS-1123 label/,
  );
  assert.equal((await list(c, 'node1')).find((x) => x.id === container)?.status, 'running');
  await c.bus.call('node1', { kind: 'remove', container });
});
