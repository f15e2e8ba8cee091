// GPU containers on the real local cluster, without a GPU: the agents drive the fake CUDA helper
// (test/fake-cuda-helper.mjs, the real helper's protocol; its process state follows the process,
// as a real one's does in its memory) and give containers NVIDIA device nodes from the test
// cluster's fake /dev (/dev/null's numbers). CRIU, runc, the transfer and the controller are real.
// What a real GPU adds (the driver's lock, checkpoint and restore of device memory) is
// test/gpu/check.sh's, on a GPU machine.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../cli/client.ts';
import { describe as describeMigration } from '../cli/format.ts';
import { nodePaths } from '../lib/paths.ts';
import type { ContainerInfo } from '../api/v1alpha1/job-results.ts';
import { FAKE_CUDA_STATE, CLUSTER, list, migrate, phases, testCluster, unique, verify } from './helpers.ts';

let c: Client;
before(async () => {
  c = await testCluster();
});
after(async () => {
  await writeFile(FAKE_CUDA_STATE, '{}'); // no fake driver state left for the tests after
  await c.close();
});
beforeEach(async () => {
  await writeFile(FAKE_CUDA_STATE, '{}');
  await writeFile(`${FAKE_CUDA_STATE}.log`, '');
});

const GPU_NODES = ['/dev/nvidia0', '/dev/nvidiactl', '/dev/nvidia-uvm'];

/** A workload holding /dev/nvidia0 open, with (fake) CUDA state under `id`. */
async function runGpuWorkload(node: string, container: string, id: string): Promise<ContainerInfo> {
  return (await c.bus.call(
    node,
    {
      kind: 'run',
      container,
      memoryMiB: 16,
      intervalMs: 10,
      devices: GPU_NODES,
      open: ['/dev/nvidia0'],
      env: [`FERRY_FAKE_CUDA_ID=${id}`],
    },
    120_000,
  )) as ContainerInfo;
}

const fakeState = async () =>
  JSON.parse(await readFile(FAKE_CUDA_STATE, 'utf8')) as { cuda?: Record<string, string> };
/** The helper's calls that changed a state, as "op id", in order. */
const moves = async () =>
  (await readFile(`${FAKE_CUDA_STATE}.log`, 'utf8'))
    .trim()
    .split('\n')
    .filter((l) => /^(lock|checkpoint|restore|unlock) /.test(l))
    .map((l) => l.split(' '));
const setFake = (state: object) => writeFile(FAKE_CUDA_STATE, JSON.stringify(state));

test('a GPU container moves: its CUDA state locked and checkpointed on the source, restored and unlocked on the target', async () => {
  const [container, id] = [unique('gpu'), unique('cuda')];
  const started = await runGpuWorkload('node1', container, id);
  const m = await migrate(c, unique('gpu-move'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const calls = await moves();
  assert.deepEqual(
    calls.map(([op, , who]) => `${op} ${who}`),
    [`lock ${id}`, `checkpoint ${id}`, `restore ${id}`, `unlock ${id}`],
  );
  // Locked and checkpointed on the source's process, restored and unlocked on the target's.
  assert.equal(calls[0]![1], String(started.pid));
  assert.notEqual(calls[2]![1], calls[0]![1]);
  assert.equal((await fakeState()).cuda?.[id], 'running');
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass, v.line);
  // The status says what the GPU part took; describe shows it.
  const gpu = m.status.migrationState?.gpu;
  assert.equal(gpu?.processes, 1);
  assert.ok(gpu.checkpointMs !== undefined && gpu.restoreMs !== undefined, JSON.stringify(gpu));
  assert.match(describeMigration(m), /GPU: +1 process\(es\)/);
  // The target gave the container its own NVIDIA nodes, from its own /dev.
  const spec = JSON.parse(
    await readFile(
      path.join(nodePaths(CLUSTER, 'node2').fsRoot, 'containers', container, 'config.json'),
      'utf8',
    ),
  ) as { linux: { devices: Array<{ path: string; major: number; minor: number }> } };
  assert.deepEqual(
    spec.linux.devices.map((d) => `${d.path} ${d.major}:${d.minor}`),
    GPU_NODES.map((p) => `${p} 1:3`),
  );
  await c.bus.call('node2', { kind: 'remove', container });
});

test('a restore the driver refuses on the target rolls back: the source gets its CUDA state back and runs on', async () => {
  const [container, id] = [unique('gpu'), unique('cuda')];
  await runGpuWorkload('node1', container, id);
  await setFake({ fail: { restore: 1 } });
  const m = await migrate(c, unique('gpu-back'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Failed');
  assert.match(m.status.failureReason ?? '', /GpuCheckpointFailed: .*injected failure/);
  assert.ok(phases(m).includes('RollingBack'));
  assert.deepEqual(
    (await moves()).map(([op]) => op),
    ['lock', 'checkpoint', 'restore', 'restore', 'unlock'],
    'the target’s restore refused, then the source’s restore and unlock',
  );
  assert.equal((await fakeState()).cuda?.[id], 'running');
  assert.equal((await list(c, 'node1')).find((x) => x.id === container)?.status, 'running');
  assert.equal(
    (await list(c, 'node2')).find((x) => x.id === container),
    undefined,
  );
  const v = await verify(c, 'node1', container);
  assert.ok(v.pass, v.line);
  await c.bus.call('node1', { kind: 'remove', container });
});

for (const [what, fake, reason] of [
  [
    'another CUDA driver version',
    {
      probe: {
        node2: {
          driverVersion: 12080,
          checkpointApi: true,
          devices: [{ index: 0, name: 'FAKE GPU', uuid: 'GPU-x', totalBytes: 2 ** 36, freeBytes: 2 ** 36 }],
        },
      },
    },
    /GpuIncompatible: node2 cannot take this GPU workload: CUDA driver versions differ: source CUDA 13\.0, target CUDA 12\.8/,
  ],
  [
    'another GPU model',
    {
      probe: {
        node2: {
          driverVersion: 13000,
          checkpointApi: true,
          devices: [{ index: 0, name: 'OTHER GPU', uuid: 'GPU-y', totalBytes: 2 ** 36, freeBytes: 2 ** 36 }],
        },
      },
    },
    /GPU models differ: source FAKE GPU, target OTHER GPU/,
  ],
  ['no CUDA driver', { driver: 'none' }, /GpuUnavailable: .*no CUDA driver on this node/],
] as const)
  test(`a target (or source) with ${what} is refused in Preflight, before anything is locked or frozen`, async () => {
    const [container, id] = [unique('gpu'), unique('cuda')];
    await runGpuWorkload('node1', container, id);
    await setFake(fake);
    const m = await migrate(c, unique('gpu-refused'), { node: 'node1', container }, 'node2');
    assert.equal(m.status.phase, 'Failed');
    assert.match(m.status.failureReason ?? '', reason);
    assert.ok(!phases(m).includes('Checkpointing'), phases(m).join(' '));
    assert.deepEqual(await moves(), [], 'no CUDA state was touched');
    const v = await verify(c, 'node1', container);
    assert.ok(v.pass, v.line);
    await c.bus.call('node1', { kind: 'remove', container });
  });

test('a GPU container exported keeps running with its CUDA state back; exported with --stop, it is imported on another node', async () => {
  const [container, id] = [unique('gpu'), unique('cuda')];
  const started = await runGpuWorkload('node1', container, id);
  const kept = await c.bus.call('node1', { kind: 'export', container }, 120_000);
  assert.equal(kept.gpu?.processes, 1);
  await rm(kept.archive, { force: true });
  assert.deepEqual(
    (await moves()).map(([op, pid]) => `${op} ${pid}`),
    ['lock', 'checkpoint', 'restore', 'unlock'].map((op) => `${op} ${started.pid}`),
    'checkpointed into the archive, then given back to the same process',
  );
  assert.equal((await fakeState()).cuda?.[id], 'running');
  let v = await verify(c, 'node1', container);
  assert.ok(v.pass, v.line);

  await writeFile(`${FAKE_CUDA_STATE}.log`, '');
  const stopped = await c.bus.call('node1', { kind: 'export', container, stop: true }, 120_000);
  assert.equal((await fakeState()).cuda?.[id], 'checkpointed', 'the archive holds it checkpointed');
  const at = path.join(nodePaths(CLUSTER, 'node2').imagesDir, `incoming-${container}.tar`);
  await copyFile(stopped.archive, at);
  await rm(stopped.archive, { force: true });
  try {
    const r = await c.bus.call('node2', { kind: 'import', container, archive: at }, 120_000);
    assert.ok(r.gpuRestoreMs !== undefined);
  } finally {
    await rm(at, { force: true });
  }
  const calls = await moves();
  assert.deepEqual(
    calls.map(([op]) => op),
    ['lock', 'checkpoint', 'restore', 'unlock'],
  );
  assert.notEqual(calls[2]![1], calls[0]![1], 'restored and unlocked in the imported process');
  assert.equal((await fakeState()).cuda?.[id], 'running');
  v = await verify(c, 'node2', container);
  assert.ok(v.pass, v.line);
  await c.bus.call('node2', { kind: 'remove', container });
});
