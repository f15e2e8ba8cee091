// The GPU check's rehearsal (test/gpu/check.sh --fake): packed as for the GPU machine
// (test/gpu/pack.sh), then run in a mount namespace where what that machine lacks is hidden (node,
// runc, Redis, ip, btrfs-progs, zstd, iptables and the libraries only they use, /opt/ferry and
// node_modules), so the check must bring all of it along. The GPU is the fake helper's; the
// cluster, CRIU, runc and the move are real, and so is the GPU benchmark's run (one small size).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exec } from '../lib/exec.ts';
import { REPO_ROOT } from '../cluster/processes.ts';

/** Programs and libraries the GPU machine does not have (../shared/environment.md). */
const LACKS = [
  'node',
  'runc',
  'redis-server',
  'redis-check-rdb',
  'ip',
  'btrfs',
  'mkfs.btrfs',
  'zstd',
  'xtables-nft-multi',
  'skopeo',
  'umoci',
];
const LACKED_LIBS = [
  'libbpf.so.1',
  'libmnl.so.0',
  'libnftnl.so.11',
  'libxtables.so.12',
  'libjemalloc.so.2',
  'liblzf.so.1',
  'liblzo2.so.2',
];

test('the GPU check brings everything the GPU machine lacks, and passes there on the fake GPU', async () => {
  const carry = await mkdtemp(path.join(tmpdir(), 'ferry-carry-'));
  const out = await mkdtemp(path.join(tmpdir(), 'ferry-gpu-out-'));
  try {
    const pack = await exec('bash', [path.join(REPO_ROOT, 'test/gpu/pack.sh'), carry, '--fast']);
    assert.equal(pack.code, 0, pack.stderr + pack.stdout);
    const hide = [
      'set -e',
      `for p in ${LACKS.join(' ')}; do f=$(command -v $p || true); [ -n "$f" ] && mount --bind /dev/null "$(readlink -f "$f")"; done`,
      `for l in ${LACKED_LIBS.join(' ')}; do f=/usr/lib/x86_64-linux-gnu/$l; [ -e "$f" ] && mount --bind /dev/null "$(readlink -f "$f")"; done`,
      'mount -t tmpfs -o mode=0755 tmpfs /opt/ferry',
      `mount -t tmpfs tmpfs ${REPO_ROOT}/node_modules`,
      '! command -v node >/dev/null || ! node --version >/dev/null 2>&1',
      `exec bash ${REPO_ROOT}/test/gpu/check.sh --fake --carry ${carry} --out ${out} --bench --sizes 32`,
    ].join('\n');
    const r = await exec('unshare', ['-m', '--propagation', 'private', 'bash', '-c', hide]);
    const said = r.stdout + r.stderr;
    assert.equal(r.code, 0, said);
    assert.match(said, /check \[\d+s\]: node v\d+/);
    assert.match(said, /before the move: PASS/);
    assert.match(said, /after the move, on node2: PASS/);
    assert.match(said, /GPU: +1 process\(es\)/);
    assert.match(said, /rollback: Failed \(.*RollingBack.*\): .*CriuRestoreFailed/);
    assert.match(said, /rollback: back on node1: PASS/);
    assert.match(
      said,
      /32 MiB of GPU memory\n +baseline: .*total [\d.]+ s\n +ferry: .*downtime [\d.]+ s = [\d.]+x/,
    );
    const bench = JSON.parse(await readFile(path.join(out, 'gpu.json'), 'utf8')) as { rows: unknown[] };
    assert.equal(bench.rows.length, 1);
    const m = JSON.parse(await readFile(path.join(out, 'migration.json'), 'utf8')) as {
      status: { phase: string; migrationState: { gpu?: { processes: number } } };
    };
    assert.equal(m.status.phase, 'Succeeded');
    assert.equal(m.status.migrationState.gpu?.processes, 1);
  } finally {
    await rm(carry, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  }
});
