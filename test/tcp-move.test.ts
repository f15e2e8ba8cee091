// An established TCP connection across nodes: a client on the cluster network talks to a container
// with an address of its own; the container moves to the other node with its address, and the
// same connection carries on, every byte echoed once and in order (runtime/container-net.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Client } from '../cli/client.ts';
import { list, migrate, testCluster, unique } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

// In the test cluster's subnet (10.78.0.0/24: the host is .1, the nodes .11 and .12).
const ADDRESS = '10.78.0.150';

/** Sends a numbered line every few ms and collects the echo, until stopped. */
function chatter(sock: Socket) {
  let sent = '';
  let got = '';
  let n = 0;
  const errors: string[] = [];
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => (got += d));
  sock.on('error', (e) => errors.push(e.message));
  sock.on('close', () => errors.push('closed'));
  const timer = setInterval(() => {
    const line = `${n++}\n`;
    sent += line;
    sock.write(line);
  }, 20);
  return {
    stop: () => clearInterval(timer),
    state: () => ({ sent, got, errors }),
  };
}

async function echoOnce(sock: Socket, line: string): Promise<string> {
  let got = '';
  const done = new Promise<void>((resolve) => {
    const on = (d: Buffer | string) => {
      got += d.toString();
      if (got.endsWith(line)) {
        sock.off('data', on);
        resolve();
      }
    };
    sock.on('data', on);
  });
  sock.write(line);
  await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
  return got;
}

test('an established TCP connection follows the container and its address to the other node', async () => {
  const container = unique('echo');
  await c.bus.call(
    'node1',
    { kind: 'run', container, program: 'echo', memoryMiB: 1, address: ADDRESS },
    60_000,
  );
  const sock = connect({ host: ADDRESS, port: 7000 });
  await once(sock, 'connect');
  const talk = chatter(sock);
  await new Promise((r) => setTimeout(r, 300));
  const m = await migrate(c, unique('m-tcp'), { node: 'node1', container }, 'node2', {
    strategy: { mode: 'StopAndCopy' },
  });
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  await new Promise((r) => setTimeout(r, 1500)); // retransmissions catch up after the freeze
  talk.stop();
  await new Promise((r) => setTimeout(r, 500));
  const { sent, got, errors } = talk.state();
  assert.deepEqual(errors, [], 'the connection never broke');
  assert.ok(sent.length > 100, 'lines went both before and after the move');
  assert.equal(got, sent, 'every line echoed once, in order');
  assert.ok((await list(c, 'node2')).some((x) => x.id === container && x.status === 'running'));
  assert.ok(!(await list(c, 'node1')).some((x) => x.id === container), 'gone from node1');
  // The same connection still answers, and a new one reaches the container on node2.
  sock.removeAllListeners('data');
  assert.equal(await echoOnce(sock, 'after\n'), 'after\n');
  const fresh = connect({ host: ADDRESS, port: 7000 });
  await once(fresh, 'connect');
  assert.equal(await echoOnce(fresh, 'fresh\n'), 'fresh\n');
  fresh.destroy();
  sock.destroy();
  await c.bus.call('node2', { kind: 'remove', container });
});
