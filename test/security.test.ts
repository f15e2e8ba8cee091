// Security by default, checked on what the other tests left behind (this file runs after them):
// nothing ferry wrote is readable by other users (folders may be searched), no secret reached a log, and every external
// command is started with an argument array.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { kubeletFiles } from '../cluster/cluster.ts';
import { clusterDir, nodeRunDir } from '../lib/paths.ts';
import { CLUSTER, testCluster } from './helpers.ts';

before(async () => (await testCluster()).close());

/** Every file and folder below `dir`, leaving out the nodes' btrfs filesystems (the workloads' own files). */
async function walk(dir: string, out: { path: string; mode: number; type: string }[] = []) {
  for (const name of await readdir(dir)) {
    const p = path.join(dir, name);
    const st = await lstat(p);
    if (st.isSymbolicLink()) continue;
    out.push({
      path: p,
      mode: st.mode & 0o777,
      type: st.isDirectory() ? 'dir' : st.isSocket() ? 'socket' : 'file',
    });
    if (st.isDirectory() && !(name === 'fs' && path.basename(path.dirname(dir)) === 'nodes'))
      await walk(p, out);
  }
  return out;
}

/**
 * What others may have: nothing, but search on folders, which the way to a container in a user
 * namespace of its own needs (its root mounts as an unprivileged user: runtime/userns.ts). Search
 * lists nothing and reads nothing.
 */
const othersMay = (type: string): number => (type === 'dir' ? 0o001 : 0);

test('what ferry writes (state, keys, logs, images, sockets) is for root only', async () => {
  const roots = [clusterDir(CLUSTER), path.dirname(nodeRunDir(CLUSTER, 'node1'))];
  const open = [];
  for (const root of roots) {
    assert.equal((await lstat(root)).mode & 0o077 & ~othersMay('dir'), 0, `${root} is open to others`);
    for (const e of await walk(root))
      if (e.mode & 0o077 & ~othersMay(e.type)) open.push(`${e.type} ${e.path} ${e.mode.toString(8)}`);
  }
  assert.deepEqual(open, []);
});

test('no secret reaches a log: private keys, the kubelet token', async () => {
  const logs = (await walk(clusterDir(CLUSTER))).filter((e) => e.type === 'file' && e.path.endsWith('.log'));
  assert.ok(logs.length >= 3, 'the controller, agents and Redis logs');
  const secrets = [/PRIVATE KEY/, /BEGIN OPENSSH/];
  const token = existsSync(kubeletFiles(CLUSTER).token)
    ? (await readFile(kubeletFiles(CLUSTER).token, 'utf8')).trim()
    : '';
  for (const log of logs) {
    const text = await readFile(log.path, 'utf8');
    for (const s of secrets) assert.doesNotMatch(text, s, `${log.path} holds a secret`);
    if (token) assert.ok(!text.includes(token), `${log.path} holds the kubelet token`);
  }
});

test('external commands run with argument arrays: no shell, no command strings', async () => {
  const files: string[] = [];
  const collect = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true }))
      if (e.isDirectory()) await collect(path.join(dir, e.name));
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) files.push(path.join(dir, e.name));
  };
  for (const d of ['agent', 'controller', 'cli', 'cluster', 'lib', 'api']) await collect(d);
  const problems: string[] = [];
  for (const f of files) {
    const text = await readFile(f, 'utf8');
    const cp = /import\s*\{([^}]*)\}\s*from\s*'node:child_process'/.exec(text);
    const used =
      cp?.[1]!.split(',').map(
        (x) =>
          x
            .trim()
            .replace(/^type\s+/, '')
            .split(' ')[0],
      ) ?? [];
    for (const fn of used.filter((x) => x && !/^(spawn|ChildProcess\w*)$/.test(x)))
      problems.push(`${f} imports ${fn} from node:child_process (spawn with an argument array only)`);
    if (/shell:\s*true/.test(text)) problems.push(`${f} starts a shell`);
    if (/['"](ba)?sh['"],\s*\[\s*['"]-c['"]/.test(text))
      problems.push(`${f} runs a command string through sh -c`);
  }
  assert.deepEqual(problems, []);
  assert.ok(files.length > 50);
});
