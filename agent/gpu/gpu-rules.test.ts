import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GpuFacts } from '../../api/v1alpha1/gpu.ts';
import { driverName, gpuDevicesHeld, gpuRefusal, isGpuDevice } from './gpu-rules.ts';
import { stepsBackToRunning } from './cuda-moves.ts';

const GiB = 2 ** 30;
const node = (over: Partial<GpuFacts> = {}, name = 'NVIDIA H200', free = 100 * GiB): GpuFacts => ({
  driverVersion: 13000,
  checkpointApi: true,
  devices: [{ index: 0, name, uuid: 'GPU-1', totalBytes: 141 * GiB, freeBytes: free }],
  ...over,
});

test('NVIDIA device nodes make a workload a GPU one; others do not', () => {
  for (const d of [
    '/dev/nvidia0',
    '/dev/nvidia7',
    '/dev/nvidiactl',
    '/dev/nvidia-uvm',
    '/dev/nvidia-uvm-tools',
  ])
    assert.ok(isGpuDevice(d), d);
  for (const d of ['/dev/null', '/dev/nvidia', '/dev/nvidia0x', '/dev/dri/card0', '/tmp/dev/nvidia0'])
    assert.ok(!isGpuDevice(d), d);
  assert.deepEqual(gpuDevicesHeld(['/dev/nvidia0', '/dev/null', '/dev/nvidiactl', '/dev/nvidia0']), [
    '/dev/nvidia0',
    '/dev/nvidiactl',
  ]);
});

test('a target with the same GPU, driver and room takes the workload', () => {
  assert.equal(gpuRefusal(node(), node(), 10 * GiB), undefined);
});

test('each difference is refused, naming both sides', () => {
  assert.match(
    gpuRefusal(node(), node({ driverVersion: 12080 }), 1)!,
    /driver versions differ: source CUDA 13\.0, target CUDA 12\.8/,
  );
  assert.match(
    gpuRefusal(node(), node({}, 'NVIDIA A100'), 1)!,
    /GPU models differ: source NVIDIA H200, target NVIDIA A100/,
  );
  assert.match(
    gpuRefusal(node(), node({}, 'NVIDIA H200', 2 * GiB), 10 * GiB)!,
    /2\.0 GiB free at most, the workload holds 10\.0 GiB/,
  );
  assert.match(
    gpuRefusal(node(), node({ checkpointApi: false }), 1)!,
    /target's CUDA driver CUDA 13\.0 has no checkpoint API/,
  );
  assert.match(gpuRefusal(node({ checkpointApi: false }), node(), 1)!, /source's CUDA driver/);
  assert.match(gpuRefusal(node(), node({ devices: [] }), 1)!, /target no GPU/);
});

test('driver versions read as NVIDIA writes them', () => {
  assert.equal(driverName(12080), 'CUDA 12.8');
  assert.equal(driverName(13000), 'CUDA 13.0');
});

test('what brings a process back to running, by its CUDA state', () => {
  assert.deepEqual(stepsBackToRunning('checkpointed'), ['restore', 'unlock']);
  assert.deepEqual(stepsBackToRunning('locked'), ['unlock']);
  assert.deepEqual(stepsBackToRunning('running'), []);
  assert.deepEqual(stepsBackToRunning('none'), []);
});
