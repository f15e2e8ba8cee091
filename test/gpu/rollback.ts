// Part of the GPU check (test/gpu/check.sh), on its cluster started with --fault-hooks: a move of
// the GPU workload that fails on the target after the source's CUDA state was checkpointed (its
// checkpoint image corrupted before the restore, so CRIU refuses it) rolls back, and the source's
// processes get their GPU memory back from the driver (restore, unlock) and pass their own check.
//   gpu-rollback --bundle DIR [--cluster gpu]
import { parseArgs } from 'node:util';
import { connect } from '../../cli/client.ts';
import { armHook, migrate, phases, unique, verify } from '../helpers.ts';
import { startBundle } from './start-bundle.ts';

const { values: o } = parseArgs({
  options: { bundle: { type: 'string' }, cluster: { type: 'string', default: 'gpu' } },
});
if (!o.bundle) {
  console.error('usage: gpu-rollback --bundle DIR [--cluster gpu]');
  process.exit(2);
}
const c = await connect(o.cluster);
try {
  const [container, name] = [unique('gpu-back'), unique('gpu-back')];
  await startBundle(c, o.cluster, container, o.bundle);
  await armHook(
    c,
    'node2',
    'target.beforeRestore',
    { action: 'corruptFile', file: 'checkpoint/pstree.img', migration: name },
    o.cluster,
  );
  const m = await migrate(c, name, { node: 'node1', container }, 'node2', {
    strategy: { mode: 'StopAndCopy' },
  });
  const gpu = m.status.migrationState?.gpu;
  console.log(
    `rollback: ${m.status.phase} (${phases(m).join(' → ')}): ${m.status.failureReason ?? ''}\n` +
      `rollback: the driver checkpointed ${gpu?.processes ?? 0} process(es) in ${gpu?.checkpointMs ?? '-'} ms on node1`,
  );
  if (m.status.phase !== 'Failed' || !phases(m).includes('RollingBack'))
    throw new Error('the move was to fail at the restore and roll back');
  const v = await verify(c, 'node1', container);
  console.log(`rollback: back on node1: ${v.line}`);
  if (!v.pass) throw new Error('the source did not get its state back');
  await c.bus.call('node1', { kind: 'remove', container });
} finally {
  await c.close();
}
