import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { connectionLost, connectRedis, errorLatch } from './redis.ts';

test('a lost Redis is said once per outage, not at every reconnection attempt', async () => {
  const said: string[] = [];
  const redis = connectRedis(
    { path: '/nonexistent/ferry-test/redis.sock' },
    { report: { down: (l) => said.push(l), up: (l) => said.push(l) } },
  );
  let attempts = 0;
  redis.on('error', () => attempts++);
  for (let i = 0; i < 40 && attempts < 3; i++) await sleep(50);
  redis.disconnect();
  assert.ok(attempts >= 3, `ioredis retried (${attempts} errors)`);
  assert.equal(said.length, 1, said.join('\n'));
  assert.match(said[0]!, /^Redis at \/nonexistent\/ferry-test\/redis.sock does not answer \(connect ENOENT/);
});

test('errors BullMQ reports at each reconnection are said once, and only connection errors count', () => {
  const said: string[] = [];
  const latch = errorLatch('/run/x.sock', { down: (l) => said.push(l), up: () => undefined });
  for (let i = 0; i < 5; i++) latch(new Error('connect ENOENT /run/x.sock'));
  assert.equal(said.length, 1);
  assert.ok(connectionLost(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })));
  assert.ok(!connectionLost(new Error('Missing lock for job 1')));
});
