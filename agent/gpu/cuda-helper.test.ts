// ferry's CUDA helper as the agent drives it: the real one, built here from workload/cuda-ckpt.c,
// on a machine without a CUDA driver; and the fake (test/fake-cuda-helper.mjs) through the states
// a move takes, and through the driver's refusals.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FerryError } from '../../lib/errors.ts';
import { exec } from '../../lib/exec.ts';
import { CudaHelper } from './cuda-helper.ts';
import { checkpointGpu, resumeGpu } from './cuda-moves.ts';

const root = path.join(import.meta.dirname, '../..');
let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ferry-cuda-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** Processes to move: sleepers, those given an ID holding (fake) CUDA state. */
const sleepers: ChildProcess[] = [];
function sleeper(cudaId?: string): number {
  const env = { ...process.env, ...(cudaId ? { FERRY_FAKE_CUDA_ID: cudaId } : {}) };
  const p = spawn('sleep', ['60'], { env, stdio: 'ignore' });
  sleepers.push(p);
  return p.pid!;
}
after(() => sleepers.forEach((p) => p.kill()));

/** The fake with a state file of its own (what it fakes, and its processes' CUDA states). */
async function fake(state: Record<string, unknown> = {}) {
  const file = path.join(dir, `state-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(state));
  const helper = new CudaHelper([
    process.execPath,
    path.join(root, 'test/fake-cuda-helper.mjs'),
    '--state',
    file,
  ]);
  const read = async () =>
    (JSON.parse(await readFile(file, 'utf8')) as { cuda?: Record<string, string> }).cuda ?? {};
  const calls = async () => (await readFile(`${file}.log`, 'utf8')).trim().split('\n');
  return { helper, read, calls };
}

test('the real helper builds without CUDA and says there is no driver here', async (t) => {
  const bin = path.join(dir, 'ferry-cuda');
  const built = await exec('gcc', [
    '-O2',
    '-Wall',
    '-o',
    bin,
    path.join(root, 'workload/cuda-ckpt.c'),
    '-ldl',
  ]);
  if (built.code !== 0) return t.skip(`no C compiler here: ${built.stderr.trim()}`);
  const helper = new CudaHelper([bin]);
  const lib = await exec('sh', ['-c', 'ldconfig -p | grep -q "libcuda.so.1 "']);
  if (lib.code === 0) return t.skip('this machine has a CUDA driver');
  await assert.rejects(
    helper.probe(),
    (e: FerryError) => e.code === 'GpuUnavailable' && /no CUDA driver/.test(e.message),
  );
  // The driver's library by path (the chart's agent.gpu): a wrong one is named as dlopen names it.
  const byPath = await exec(bin, ['probe'], {
    env: { ...process.env, FERRY_LIBCUDA: '/nonexistent/libcuda.so.1' },
  });
  assert.equal(byPath.code, 3);
  assert.match(byPath.stderr, /no CUDA driver on this node: \/nonexistent\/libcuda\.so\.1: cannot open/);
  // Bad input is refused before the driver is even looked for.
  const usage = await exec(bin, ['state', 'abc']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /not a process ID: abc/);
});

test('a move: the CUDA processes are locked, then checkpointed; the others are left alone', async () => {
  const [plain, a, b] = [sleeper(), sleeper('a'), sleeper('b')];
  const f = await fake();
  const r = await checkpointGpu(f.helper, [plain, a, b], 5000);
  assert.deepEqual(r.pids, [a, b]);
  assert.deepEqual(await f.read(), { a: 'checkpointed', b: 'checkpointed' });
  assert.deepEqual(
    (await f.calls()).filter((c) => !c.startsWith('state')),
    [`lock ${a} a`, `lock ${b} b`, `checkpoint ${a} a`, `checkpoint ${b} b`],
  );
  const back = await resumeGpu(f.helper, [plain, a, b]);
  assert.deepEqual(back.pids, [a, b]);
  assert.deepEqual(await f.read(), { a: 'running', b: 'running' });
});

test('a checkpoint the driver refuses leaves every process running, and says why', async () => {
  const [a, b] = [sleeper('c'), sleeper('d')];
  const f = await fake({ fail: { checkpoint: 1 } });
  await assert.rejects(
    checkpointGpu(f.helper, [a, b], 5000),
    (e: FerryError) =>
      e.code === 'GpuCheckpointFailed' && /CUDA_ERROR_ILLEGAL_STATE.*injected/.test(e.message),
  );
  assert.deepEqual(await f.read(), { c: 'running', d: 'running' });
});

test('a restore the driver refuses names the process and the driver’s words; the others come back', async () => {
  const [a, b] = [sleeper('e'), sleeper('f')];
  const f = await fake({ cuda: { e: 'checkpointed', f: 'locked' }, fail: { restore: 1 } });
  await assert.rejects(
    resumeGpu(f.helper, [a, b]),
    (e: FerryError) =>
      e.code === 'GpuCheckpointFailed' && new RegExp(`1 process\\(es\\).*pid ${a}.*injected`).test(e.message),
  );
  assert.equal((await f.read()).f, 'running');
});

test('a node without a driver is GpuUnavailable; where there is one, the probe reports its GPUs', async () => {
  const none = await fake({ driver: 'none' });
  await assert.rejects(none.helper.probe(), (e: FerryError) => e.code === 'GpuUnavailable');
  const facts = await (await fake()).helper.probe();
  assert.equal(facts.checkpointApi, true);
  assert.equal(facts.devices.length, 1);
});
