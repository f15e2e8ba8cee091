// The pod route, decided as a table: what decide() does with a pod Migration in each phase, given
// the jobs and the pods it observed. The end-to-end run against a fake API server and fake kubelets
// with real CRIU is test/pod-migration.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import type { Phase } from '../../api/v1alpha1/migration.ts';
import { runningPod } from '../../test/fixtures/pods.ts';
import { DELETION_COST, LOWEST_COST, replacementPod } from '../kube/pod-spec.ts';
import { decide } from '../reconcile.ts';
import { DEFAULT_LIMITS, type Action, type Facts, type PodFacts, type StepFacts } from './facts.ts';
import { done, failed } from '../../test/fixtures/job-facts.ts';
import { storedMigration, T0 } from '../../test/fixtures/migrations.ts';

const NOW = '2026-01-01T00:00:05.000Z';
const UID = 'abcdef12-0000';

function podMigration(phase: Phase, state: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) {
  const placed = { sourceNode: 'node1', targetNode: 'node2', targetPod: 'db-abcde', ...state };
  const source = { node: 'node1', container: 'db', pod: 'db' };
  return storedMigration(
    phase,
    { migrationState: placed },
    { source, ...spec },
    { name: 'mp', namespace: 'shop' },
  );
}

const nodes = new Map([
  ['node1', { labels: {} }],
  ['node2', { labels: {} }],
]);
/** The fixture pod's claim, as the API server shows it: shared, so it stays attached. */
const SHARED = { 'db-data': ['ReadWriteMany'] };
function facts(
  jobs: StepFacts,
  pods: PodFacts = { source: runningPod(), claims: SHARED },
  kube = true,
): Facts {
  return {
    now: NOW,
    nodes,
    jobs,
    load: { running: 0, outbound: {}, inbound: {} },
    limits: DEFAULT_LIMITS,
    kube,
    pods,
  };
}
const what = (actions: Action[]) =>
  actions.map((a) =>
    a.type === 'enqueue' ? `${a.step}@${a.node}` : a.type === 'deletePod' ? `delete ${a.name}` : a.type,
  );
/** The replacement as the target kubelet reports it: running and ready, or failing to start. */
function replacement(state: 'running' | 'failing' | 'starting'): V1Pod {
  const p = runningPod({ nodeName: 'node2' }, { name: 'db-abcde' });
  if (state === 'failing')
    p.status!.containerStatuses![0]!.state = {
      waiting: { reason: 'CreateContainerError', message: 'criu failed: type RESTORE errno 0' },
    };
  if (state === 'starting') p.status!.conditions = [{ type: 'Ready', status: 'False' }];
  return p;
}

describe('the pod route', () => {
  it('is refused while Pending by a controller that serves no Kubernetes', () => {
    const d = decide(podMigration('Pending'), facts({}, {}, false));
    assert.equal(d.status.phase, 'Failed');
    assert.match(
      d.status.failureReason!,
      /^InvalidInput: spec.source.pod: pods move on a Kubernetes cluster only/,
    );
  });

  it('refuses, before freezing anything, a pod that cannot move, a missing pod, or one on another node', () => {
    const owned = runningPod(
      {},
      {
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'db', uid: 'x', controller: true },
        ],
      },
    );
    const cases: Array<[PodFacts, RegExp]> = [
      [{ source: owned, claims: SHARED }, /^Preflight: UnsupportedWorkload: .*is a pod of DaemonSet db/],
      [{}, /^Preflight: ContainerNotFound: pod shop\/db does not exist/],
      [
        { source: runningPod({ nodeName: 'node3' }) },
        /^Preflight: NodeNotFound: pod shop\/db runs on node3, not node1/,
      ],
      [
        { source: runningPod({ volumes: [{ name: 'logs', hostPath: { path: '/var/log' } }] }) },
        /volume logs is a hostPath, a folder of the source node's own/,
      ],
      [
        { source: runningPod(), claims: { 'db-data': ['ReadWriteOnce'] } },
        /^Preflight: UnsupportedWorkload: pod shop\/db: volume data is PersistentVolumeClaim db-data \(ReadWriteOnce\), which attaches to one node at a time/,
      ],
      [{ source: runningPod(), claims: {} }, /PersistentVolumeClaim db-data is not found/],
    ];
    for (const [pods, reason] of cases) {
      const d = decide(podMigration('Preflight'), facts({}, pods));
      assert.equal(d.status.phase, 'Failed');
      assert.match(d.status.failureReason!, reason);
      assert.deepEqual(d.actions, []);
    }
  });

  it('after a good preflight checkpoints, naming the pods and the strategy', () => {
    const d = decide(podMigration('Preflight', { targetPod: undefined }), facts({}));
    assert.equal(d.status.phase, 'Checkpointing');
    const s = d.status.migrationState!;
    assert.equal(s.sourcePod, 'db');
    assert.match(s.targetPod!, /^db-[a-z0-9]{5}$/);
    assert.equal(s.mode, 'StopAndCopy');
    assert.match(
      s.modeReason!,
      /memory streamed to the target while CRIU dumps.*maxDowntime \(2s\) is not estimated/,
    );
    assert.equal(d.status.warnings, undefined, 'the defaults all apply');
  });

  it('says which strategy options cannot apply to a pod, as warnings, and sends with the ones that do', () => {
    const strategy = { mode: 'PreCopy', bandwidth: '50Mi', compression: 'Zstd' };
    const d = decide(podMigration('Preflight', { targetPod: undefined }, { strategy }), facts({}));
    assert.equal(d.status.phase, 'Checkpointing');
    assert.deepEqual(d.status.warnings, [
      'strategy.mode PreCopy cannot apply to a pod: pods move StopAndCopy (frozen, checkpointed whole, copied, restored by the runtime)',
    ]);
    const checkpointed = { podFreeze: done({ frozenAt: NOW }), podCheckpoint: done({ images: [] }) };
    const send = decide(podMigration('Transferring', {}, { strategy }), facts(checkpointed)).actions.find(
      (a) => a.type === 'enqueue' && a.step === 'podSend',
    ) as { job: { bandwidth?: number; compress?: boolean } } | undefined;
    assert.deepEqual([send?.job.bandwidth, send?.job.compress], [50 * 2 ** 20, true]);
  });

  it('freezes first, then checkpoints each container into its image, then records the freeze', () => {
    const m = podMigration('Checkpointing');
    let d = decide(m, facts({}));
    assert.deepEqual(what(d.actions), ['podFreeze@node1']);
    const freeze = (d.actions[0] as { job: { ids: string[] } }).job;
    assert.deepEqual(freeze.ids, ['a'.repeat(64), 'b'.repeat(64)]);
    d = decide(m, facts({ podFreeze: done({ frozen: [], frozenAt: T0 }) }));
    assert.deepEqual(what(d.actions), ['podCheckpoint@node1']);
    const job = (d.actions[0] as { job: { containers: { name: string; ref: string }[] } }).job;
    assert.deepEqual(
      job.containers.map((c) => c.name),
      ['db', 'exporter'],
    );
    assert.match(job.containers[0]!.ref, /^localhost\/ferry-checkpoint\/db:/);
    // A containerd pod's pages go to the target while CRIU dumps.
    assert.deepEqual((job as { stream?: unknown }).stream, { targetNode: 'node2' });
    d = decide(
      m,
      facts({
        podFreeze: done({ frozen: [], frozenAt: T0 }),
        podCheckpoint: done({ images: [], streamedBytes: 1000, dumpMs: 700 }),
      }),
    );
    assert.equal(d.status.phase, 'Transferring');
    assert.equal(d.status.migrationState!.frozenAt, T0);
    assert.deepEqual(
      [d.status.migrationState!.bytesDuringFreeze, d.status.migrationState!.dumpMs],
      [1000, 700],
    );
  });

  it('streams the pages of containerd pods, but checkpoints a StatefulSet’s pod whole (both nodes keep it)', () => {
    const frozen = facts({ podFreeze: done({ frozen: [], frozenAt: T0 }) });
    const job = (m: ReturnType<typeof podMigration>) =>
      (decide(m, frozen).actions[0] as { job: { kind: string; stream?: unknown } }).job;
    assert.ok(job(podMigration('Checkpointing')).stream);
    const sts = job(podMigration('Checkpointing', { statefulSet: 'db', sourcePodUid: 'u1' }));
    assert.equal(sts.kind, 'podCheckpoint');
    assert.equal(sts.stream, undefined);
  });

  it('sends the images, imports them on the target, then creates the replacement bound there', () => {
    let d = decide(podMigration('Transferring'), facts({}));
    assert.deepEqual(what(d.actions), ['podSend@node1']);
    d = decide(
      podMigration('Transferring', { bytesDuringFreeze: 1000 }),
      facts({ podSend: done({ bytes: 4096 }) }),
    );
    assert.equal(d.status.migrationState!.bytesDuringFreeze, 5096, 'streamed pages, then the rest');
    const m = podMigration('Restoring');
    // A streamed dump's image is built on the target from the archive and the pages that came.
    d = decide(m, facts({}));
    assert.deepEqual(what(d.actions), ['podImport@node2']);
    const imp = (d.actions[0] as { job: { images: { pages?: string }[] } }).job;
    assert.deepEqual(
      imp.images.map((i) => i.pages),
      ['pod-0', 'pod-1'],
    );
    d = decide(m, facts({ podImport: done({ imported: [] }) }));
    assert.deepEqual(what(d.actions), ['createPod']);
    const pod = (d.actions[0] as { pod: V1Pod }).pod;
    assert.equal(pod.spec!.nodeName, 'node2');
    assert.ok(pod.spec!.containers.every((c) => c.imagePullPolicy === 'Never'));
    assert.equal(d.status.phase, 'Restoring', 'waits until the API shows the replacement');
    const there = { source: runningPod(), replacement: replacement('starting') };
    d = decide(m, facts({ podImport: done({ imported: [] }) }, there));
    assert.deepEqual(what(d.actions), ['podVolumes@node2'], 'its emptyDirs (none here), once it exists');
    d = decide(
      m,
      facts({ podImport: done({ imported: [] }), podVolumes: done({ podUid: 'r-1', written: [] }) }, there),
    );
    assert.equal(d.status.phase, 'Verifying');
  });

  it('moves a pod’s emptyDirs: whole while it runs, the rest packed frozen and sent, written into the gated replacement, which is released then', () => {
    const withCache = () => runningPod({ volumes: [{ name: 'cache', emptyDir: {} }] }, { uid: 'src-uid-1' });
    const pods = { source: withCache(), claims: SHARED };
    const pre = decide(podMigration('Preflight', { targetPod: undefined }), facts({}, pods));
    assert.equal(pre.status.phase, 'Syncing', 'sent whole while the pod runs');
    let sync = decide(podMigration('Syncing'), facts({}, pods));
    assert.deepEqual(what(sync.actions), ['podSync@node1']);
    const syncJob = (sync.actions[0] as { job: Record<string, unknown> }).job;
    assert.deepEqual(
      [syncJob.podUid, syncJob.emptyDirs, syncJob.targetNode],
      ['src-uid-1', ['cache'], 'node2'],
    );
    sync = decide(podMigration('Syncing'), facts({ podSync: done({ bytes: 8192, durationMs: 40 }) }, pods));
    assert.equal(sync.status.phase, 'Checkpointing');
    assert.equal(sync.status.migrationState!.bytesBeforeFreeze, 8192);
    const ck = decide(
      podMigration('Checkpointing', { frozenAt: T0 }),
      facts({ podFreeze: done({ frozen: [], frozenAt: T0 }) }, pods),
    );
    const job = (ck.actions.find((a) => a.type === 'enqueue') as { job: Record<string, unknown> }).job;
    assert.equal(job.kind, 'podCheckpoint');
    assert.deepEqual([job.podUid, job.emptyDirs], ['src-uid-1', ['cache']]);
    const send = decide(podMigration('Transferring'), facts({}, pods)).actions[0] as {
      job: { files: string[] };
    };
    assert.ok(send.job.files.includes('pod-images/volume-cache.1.tar'), send.job.files.join(' '));

    const m = podMigration('Restoring');
    let d = decide(m, facts({ podImport: done({ imported: [] }) }, pods));
    const created = (d.actions[0] as { pod: V1Pod }).pod;
    assert.equal(created.spec!.nodeName, undefined, 'a gated pod is not bound');
    assert.deepEqual(created.spec!.schedulingGates, [{ name: 'ferry.dev/volumes' }]);
    assert.deepEqual(
      created.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!
        .nodeSelectorTerms[0]!.matchFields,
      [{ key: 'metadata.name', operator: 'In', values: ['node2'] }],
    );
    const gated = { ...created, metadata: { ...created.metadata, uid: 'repl-uid-2' } };
    d = decide(m, facts({ podImport: done({ imported: [] }) }, { ...pods, replacement: gated }));
    const vol = d.actions.find((a) => a.type === 'enqueue') as { job: Record<string, unknown> };
    assert.deepEqual(
      [vol.job.kind, vol.job.podUid, vol.job.emptyDirs],
      ['podVolumes', 'repl-uid-2', ['cache']],
    );

    d = decide(podMigration('Verifying', { frozenAt: T0 }), facts({}, { ...pods, replacement: gated }));
    assert.deepEqual(what(d.actions), ['updatePod']);
    const released = (d.actions[0] as { pod: V1Pod }).pod;
    assert.equal(released.spec!.schedulingGates, undefined, 'released once its emptyDirs are written');

    const rb = decide(podMigration('RollingBack'), facts({ podRemoveImages: done({ removed: [] }) }, pods));
    const cleanup = rb.actions
      .filter((a) => a.type === 'enqueue' && a.node === 'node2')
      .map((a) => (a as { job: Record<string, unknown> }).job)
      .find((j) => j.kind === 'podCleanup');
    assert.equal(cleanup?.rollback, true, 'the target removes the emptyDirs it wrote');
  });

  it('waits for the replacement to be ready, then cleans up with the downtime recorded', () => {
    const m = podMigration('Verifying', { frozenAt: T0 });
    let d = decide(m, facts({}, { source: runningPod(), replacement: replacement('starting') }));
    assert.equal(d.status.phase, 'Verifying');
    d = decide(m, facts({}, { source: runningPod(), replacement: replacement('running') }));
    assert.equal(d.status.phase, 'CleaningUp');
    assert.equal(d.status.migrationState!.downtimeMs, 5000);
  });

  it('rolls back when the replacement cannot start, saying the phase and the runtime’s words', () => {
    const m = podMigration('Verifying', { frozenAt: T0 });
    const d = decide(m, facts({}, { source: runningPod(), replacement: replacement('failing') }));
    assert.equal(d.status.phase, 'RollingBack');
    assert.match(
      d.status.failureReason!,
      /^Verifying: CriuRestoreFailed: replacement pod db-abcde on node2: .*CreateContainerError \(criu failed/,
    );
  });

  it('deletes the source pod only once the replacement runs, and succeeds once it is gone', () => {
    const m = podMigration('CleaningUp');
    let d = decide(m, facts({}, { source: runningPod(), replacement: replacement('running') }));
    assert.deepEqual(what(d.actions), ['delete db', 'podCleanupSource@node1', 'podCleanupTarget@node2']);
    const cleaned = { podCleanupSource: done({ cleaned: UID }), podCleanupTarget: done({ cleaned: UID }) };
    d = decide(m, facts(cleaned, { source: runningPod(), replacement: replacement('running') }));
    assert.equal(d.status.phase, 'CleaningUp', 'not done while the source pod is still there');
    d = decide(m, facts(cleaned, { replacement: replacement('running') }));
    assert.equal(d.status.phase, 'Succeeded');
  });

  it('a ReplicaSet’s pod hands over before the source goes: the source cheapest, then the replacement a member', () => {
    const owner = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      name: 'db-7c9',
      uid: 'rs-1',
      controller: true,
    };
    const source = runningPod({}, { ownerReferences: [owner] });
    const held = replacementPod(source, {
      targetNode: 'node2',
      migration: 'mp',
      migrationUid: UID,
    });
    held.status = replacement('running').status;
    const m = podMigration('CleaningUp');
    const updated = (d: ReturnType<typeof decide>) =>
      d.actions.flatMap((a) => (a.type === 'updatePod' ? [a.pod] : []));
    let d = decide(m, facts({}, { source, replacement: held }));
    const [cheap] = updated(d);
    assert.equal(cheap?.metadata?.name, 'db');
    assert.equal(cheap?.metadata?.annotations?.[DELETION_COST], LOWEST_COST);
    assert.ok(!what(d.actions).includes('delete db'), 'the source stays until the replacement is a member');
    d = decide(m, facts({}, { source: cheap!, replacement: held }));
    const [member] = updated(d);
    assert.deepEqual(member?.metadata?.ownerReferences, [owner]);
    assert.deepEqual(member?.metadata?.labels, { app: 'db' });
    d = decide(m, facts({}, { source: cheap!, replacement: member! }));
    assert.ok(
      what(d.actions).includes('delete db'),
      'then the source goes (if its ReplicaSet has not removed it)',
    );
    // A rollback gives the source its own cost back once the replacement is gone.
    d = decide(
      podMigration('RollingBack'),
      facts({ podCleanupSource: done({ cleaned: UID }) }, { source: cheap! }),
    );
    assert.equal(updated(d)[0]?.metadata?.annotations?.[DELETION_COST], undefined);
  });

  it('a clean-up that fails after the replacement runs is a warning, not a failure', () => {
    const jobs = {
      podCleanupSource: failed('RuntimeFailed: busy'),
      podCleanupTarget: done({ cleaned: UID }),
    };
    const d = decide(podMigration('CleaningUp'), facts(jobs, { replacement: replacement('running') }));
    assert.equal(d.status.phase, 'Succeeded');
    assert.match(
      d.status.warnings!.join(),
      /clean-up incomplete: podCleanupSource on node1 failed: RuntimeFailed: busy/,
    );
  });

  it('rolls back newest first: the replacement deleted, then its images, then the folders, the source thawed last', () => {
    const m = podMigration('RollingBack');
    let d = decide(m, facts({}, { source: runningPod(), replacement: replacement('failing') }));
    assert.deepEqual(what(d.actions), ['delete db-abcde', 'podCleanupSource@node1']);
    assert.ok(!what(d.actions).includes('delete db'), 'the source pod is never deleted on rollback');
    d = decide(m, facts({ podCleanupSource: done({ cleaned: UID }) }));
    assert.deepEqual(what(d.actions), ['podRemoveImages@node2']);
    const jobs: StepFacts = {
      podCleanupSource: done({ cleaned: UID }),
      podRemoveImages: done({ removed: [] }),
    };
    assert.deepEqual(what(decide(m, facts(jobs)).actions), ['podCleanupTarget@node2']);
    jobs.podCleanupTarget = done({ cleaned: UID });
    assert.deepEqual(what(decide(m, facts(jobs)).actions), ['podThaw@node1']);
    jobs.podThaw = done({ thawed: [] });
    assert.equal(decide(m, facts(jobs)).status.phase, 'Failed');
  });

  it('an abort while the images are sent rolls back at the next safe point', () => {
    const m = podMigration('Transferring', {}, { abort: true });
    assert.equal(decide(m, facts({ podSend: { state: 'active' } })).status.phase, 'Transferring');
    const d = decide(m, facts({ podSend: { state: 'waiting' } }));
    assert.equal(d.status.phase, 'RollingBack');
    assert.deepEqual(what(d.actions), ['cancel']);
  });

  it('a failed checkpoint rolls back with the step, the node and the kubelet’s words', () => {
    const jobs = {
      podFreeze: done({ frozen: [], frozenAt: T0 }),
      podCheckpoint: failed('CriuDumpFailed: kubelet said 500'),
    };
    const d = decide(podMigration('Checkpointing'), facts(jobs));
    assert.equal(d.status.phase, 'RollingBack');
    assert.equal(d.status.failureReason, 'podCheckpoint on node1 failed: CriuDumpFailed: kubelet said 500');
  });

  it('a failed running pass over the emptyDirs rolls back with nothing frozen: the folders go, the source is left running', () => {
    const d = decide(podMigration('Syncing'), facts({ podSync: failed('TransferFailed: link broke') }));
    assert.equal(d.status.phase, 'RollingBack');
    assert.equal(d.status.failureReason, 'podSync on node1 failed: TransferFailed: link broke');
    // podThaw at the end finds the container running and leaves it so (agent/kube/pod-jobs.ts).
    assert.deepEqual(what(decide(podMigration('RollingBack'), facts({})).actions), [
      'podRemoveImages@node2',
      'podCleanupSource@node1',
    ]);
  });

  it('shows the images’ progress while they are sent, and the emptyDirs’ and the pages’ while they go', () => {
    for (const [phase, step] of [
      ['Syncing', 'podSync'],
      ['Checkpointing', 'podCheckpoint'],
    ] as const) {
      const d = decide(
        podMigration(phase),
        facts({
          podFreeze: done({ frozen: [], frozenAt: T0 }),
          [step]: { state: 'active', progress: { bytes: 7 } },
        }),
      );
      assert.deepEqual([d.status.progress?.step, d.status.progress?.bytes], [step, 7]);
    }
    const sending = { podSend: { state: 'active' as const, progress: { bytes: 1024, totalBytes: 4096 } } };
    const d = decide(podMigration('Transferring'), facts(sending));
    assert.equal(d.status.progress?.step, 'podSend');
    assert.equal(d.status.progress?.bytes, 1024);
  });
});
