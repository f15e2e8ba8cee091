import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ssh2 from 'ssh2';
import { agentConfigFromEnv, peersFromRegistry, publicKeyLine } from './node-env.ts';
import type { NodeInfo } from '../../lib/node-registry.ts';

const env = {
  FERRY_NODE: 'worker-1',
  FERRY_ADDRESS: '10.0.0.5',
  FERRY_SSH_PORT: '2222',
  FERRY_REDIS_URL: 'redis://:secret@ferry-redis.ferry-system.svc:6379/0',
};

describe('an agent configured by its pod environment', () => {
  it('takes the node, address, port and Redis from the chart’s variables', () => {
    const c = agentConfigFromEnv(env);
    assert.equal(c.node, 'worker-1');
    assert.equal(c.address, '10.0.0.5');
    assert.equal(c.sshPort, 2222);
    assert.deepEqual(c.redis, { url: env.FERRY_REDIS_URL });
    assert.equal(c.cluster, 'kube');
    assert.equal(c.runcRoot, '/run/containerd/runc/k8s.io');
  });

  it('names the variable that is missing or wrong, and never echoes the Redis URL', () => {
    assert.throws(() => agentConfigFromEnv({ ...env, FERRY_NODE: undefined }), /FERRY_NODE: not set/);
    assert.throws(() => agentConfigFromEnv({ ...env, FERRY_ADDRESS: 'node-5' }), /FERRY_ADDRESS: /);
    assert.throws(
      () => agentConfigFromEnv({ ...env, FERRY_REDIS_URL: undefined }),
      /FERRY_REDIS_URL: not set/,
    );
    assert.throws(
      () => agentConfigFromEnv({ ...env, FERRY_REDIS_URL: 'not a url :secret' }),
      (err: Error) => /FERRY_REDIS_URL/.test(err.message) && !err.message.includes('secret'),
    );
  });

  it('derives the shared public key and makes every registered node a peer pinned to it', () => {
    const kp = ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 });
    const pub = publicKeyLine(kp.private);
    assert.equal(pub, kp.public.trim().split(' ').slice(0, 2).join(' '));
    const info = (node: string, address: string) =>
      [
        node,
        { node, address, sshPort: 2222, criuVersion: '4.2', criuProblem: null, labels: {}, pid: 1, time: '' },
      ] as [string, NodeInfo];
    const peers = peersFromRegistry(new Map([info('b', '10.0.0.2'), info('a', '10.0.0.1')]), pub);
    assert.deepEqual(
      peers.map((p) => [p.node, p.address, p.publicKey]),
      [
        ['a', '10.0.0.1', pub],
        ['b', '10.0.0.2', pub],
      ],
    );
    assert.throws(() => publicKeyLine('not a key'), /the agents' SSH key/);
  });
});
