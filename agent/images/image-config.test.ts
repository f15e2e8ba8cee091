// What an image's config makes a container run, as `podman run` merges it with what is asked; and
// the refusals: another machine, nothing to run, a user the image does not have.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ociArch, planRun, resolveUser } from './image-config.ts';

const redis = {
  architecture: 'amd64',
  os: 'linux',
  config: {
    Entrypoint: ['docker-entrypoint.sh'],
    Cmd: ['redis-server'],
    Env: ['PATH=/usr/local/bin:/usr/bin', 'REDIS_VERSION=7.0.15'],
    WorkingDir: '/data',
    User: 'redis',
    ExposedPorts: { '6379/tcp': {} },
  },
};

test('Entrypoint then Cmd, the image’s environment under what is asked, its folder and ports', () => {
  const p = planRun('r', redis, { env: ['REDIS_VERSION=x', 'EXTRA=1'] }, 'amd64');
  assert.deepEqual(p.args, ['docker-entrypoint.sh', 'redis-server']);
  assert.deepEqual(p.env, ['PATH=/usr/local/bin:/usr/bin', 'REDIS_VERSION=x', 'EXTRA=1']);
  assert.equal(p.cwd, '/data');
  assert.equal(p.user, 'redis');
  assert.deepEqual(p.exposedPorts, ['6379/tcp']);
});

test('a command replaces Cmd and keeps Entrypoint; an image with no PATH gets the usual one', () => {
  const p = planRun(
    'r',
    { ...redis, config: { Entrypoint: ['/bin/sh', '-c'] } },
    { command: ['ls'], env: [] },
    'amd64',
  );
  assert.deepEqual(p.args, ['/bin/sh', '-c', 'ls']);
  assert.ok(p.env[0]!.startsWith('PATH=/usr/local/sbin:'));
  assert.equal(p.cwd, '/');
});

test('refused: another machine, nothing to run, not an image config', () => {
  assert.throws(
    () => planRun('r', { ...redis, architecture: 'arm64' }, { env: [] }, 'amd64'),
    /is for linux\/arm64; this node runs linux\/amd64/,
  );
  assert.throws(
    () => planRun('r', { ...redis, os: 'windows' }, { env: [] }, 'amd64'),
    /is for windows\/amd64/,
  );
  assert.throws(
    () => planRun('r', { architecture: 'amd64', os: 'linux', config: {} }, { env: [] }, 'amd64'),
    /has no Entrypoint or Cmd/,
  );
  assert.throws(() => planRun('r', [1], { env: [] }, 'amd64'), /its config is not an OCI image config/);
  assert.equal(ociArch('x64'), 'amd64');
});

const passwd = 'root:x:0:0:root:/root:/bin/sh\nredis:x:999:999::/data:/bin/false\n';
const group = 'root:x:0:\nredis:x:999:\nadm:x:4:\n';

test('users as images name them: empty, numbers, names, name:group', () => {
  assert.deepEqual(resolveUser('r', '', passwd, group), { uid: 0, gid: 0 });
  assert.deepEqual(resolveUser('r', 'redis', passwd, group), { uid: 999, gid: 999 });
  assert.deepEqual(resolveUser('r', '999', passwd, group), { uid: 999, gid: 999 });
  assert.deepEqual(resolveUser('r', '1234:5', passwd, group), { uid: 1234, gid: 5 });
  assert.deepEqual(resolveUser('r', 'redis:adm', passwd, group), { uid: 999, gid: 4 });
  assert.throws(
    () => resolveUser('r', 'postgres', passwd, group),
    /user postgres is not in the image's \/etc\/passwd/,
  );
  assert.throws(
    () => resolveUser('r', 'redis:wheel', passwd, group),
    /group wheel is not in the image's \/etc\/group/,
  );
});
