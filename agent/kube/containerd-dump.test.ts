import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ContainerStatus } from '../../lib/kube/cri.ts';
import { configDump, rootUpperDir, statusDump } from './containerd-dump.ts';

const status: ContainerStatus = {
  id: 'c6413aad673d',
  metadata: { name: 'app' },
  state: 'CONTAINER_RUNNING',
  createdAt: 1795898242491817000,
  startedAt: 1795898242539523000,
  exitCode: 0,
  reason: '',
  message: '',
  image: { image: 'registry.example/counter:1' },
  imageRef: 'registry.example/counter@sha256:042a',
  labels: { 'io.kubernetes.pod.name': 'web-0' },
  annotations: {},
  logPath: '/var/log/pods/x/app/0.log',
};

describe('containerd archives', () => {
  it('finds the overlay upper layer mounted at a container’s root, and nothing on other roots', () => {
    const info = [
      '1207 1206 0:95 / / rw,relatime - overlay overlay rw,lowerdir=/s/1/fs,upperdir=/s/7/fs,workdir=/s/7/work',
      '1208 1207 0:97 / /proc rw,nosuid - proc proc rw',
      '1230 1207 8:1 /data/x /data rw - ext4 /dev/vda rw',
    ].join('\n');
    assert.equal(rootUpperDir(info), '/s/7/fs');
    assert.equal(rootUpperDir('1 0 8:1 / / rw - ext4 /dev/vda rw\n'), undefined);
  });

  it('writes status.dump as containerd does (Go’s JSON of the CRI status: snake_case, the state a number)', () => {
    assert.deepEqual(statusDump(status), {
      id: 'c6413aad673d',
      metadata: { name: 'app' },
      state: 1,
      created_at: 1795898242491817000,
      started_at: 1795898242539523000,
      image: { image: 'registry.example/counter:1' },
      image_ref: 'registry.example/counter@sha256:042a',
      labels: { 'io.kubernetes.pod.name': 'web-0' },
      log_path: '/var/log/pods/x/app/0.log',
    });
  });

  it('names the container in config.dump as containerd does, with the image and its digest', () => {
    const annotations = {
      'io.kubernetes.cri.sandbox-name': 'web-0',
      'io.kubernetes.cri.sandbox-namespace': 'shop',
      'io.kubernetes.cri.sandbox-uid': 'u-1',
    };
    const d = configDump(status, annotations, 'io.containerd.runc.v2', new Date('2026-11-28T00:00:00Z'));
    assert.equal(d.name, 'app_web-0_shop_u-1_0');
    assert.equal(d.rootfsImageName, 'registry.example/counter:1');
    assert.equal(d.rootfsImageRef, 'registry.example/counter@sha256:042a');
    assert.equal(d.checkpointedTime, '2026-11-28T00:00:00.000Z');
  });
});
