// A StatefulSet's pod, decided as a table: the hand-over by name, the admission webhook's placement,
// and the rollback that restores the checkpoint on the source. The end-to-end run against a real
// containerd is test/containerd-pods.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import type { Phase } from '../../api/v1alpha1/migration.ts';
import { runningPod } from '../../test/fixtures/pods.ts';
import { done } from '../../test/fixtures/job-facts.ts';
import { storedMigration, T0 } from '../../test/fixtures/migrations.ts';
import { admissionResponse } from '../kube/admission.ts';
import { decide } from '../reconcile.ts';
import { DEFAULT_LIMITS, type Action, type Facts, type PodFacts, type StepFacts } from './facts.ts';

const NOW = '2026-01-01T00:00:05.000Z';
const STS = { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 's-1', controller: true };
const source = () => runningPod({}, { name: 'db-0', uid: 'src-uid', ownerReferences: [STS] });

function stsMigration(phase: Phase, state: Record<string, unknown> = {}) {
  const placed = {
    sourceNode: 'node1',
    targetNode: 'node2',
    sourcePod: 'db-0',
    targetPod: 'db-0',
    sourcePodUid: 'src-uid',
    statefulSet: 'db',
    frozenAt: T0,
    ...state,
  };
  return storedMigration(
    phase,
    { migrationState: placed },
    { source: { node: 'node1', container: 'db', pod: 'db-0' } },
    { name: 'mdb', namespace: 'shop' },
  );
}

const nodes = new Map([
  ['node1', { labels: {} }],
  ['node2', { labels: {} }],
]);
const facts = (jobs: StepFacts, pods: PodFacts): Facts => ({
  now: NOW,
  nodes,
  jobs,
  load: { running: 0, outbound: {}, inbound: {} },
  limits: DEFAULT_LIMITS,
  kube: true,
  pods,
});
const what = (actions: Action[]) =>
  actions.map((a) =>
    a.type === 'enqueue' ? `${a.step}@${a.node}` : a.type === 'deletePod' ? `delete ${a.name}` : a.type,
  );

/** The StatefulSet's pod created again, as the webhook answered for `m`: placed, gated, annotated. */
function recreated(m: ReturnType<typeof stsMigration>, state: 'gated' | 'running' | 'failing'): V1Pod {
  const fresh = runningPod({}, { name: 'db-0', uid: 'new-uid', ownerReferences: [STS] });
  delete fresh.spec!.nodeName;
  delete fresh.status;
  const review = admissionResponse(
    {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'r', operation: 'CREATE', namespace: 'shop', kind: { kind: 'Pod' }, object: fresh },
    },
    [m],
  );
  const patch = JSON.parse(Buffer.from(review.response.patch!, 'base64').toString()) as {
    path: string;
    value: unknown;
  }[];
  const pod = structuredClone(fresh);
  pod.spec = patch.find((p) => p.path === '/spec')!.value as V1Pod['spec'];
  pod.metadata!.annotations = patch.find((p) => p.path === '/metadata/annotations')!.value as Record<
    string,
    string
  >;
  if (state === 'gated') return pod;
  delete pod.spec!.schedulingGates;
  pod.spec!.nodeName = (
    pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms[0]!
      .matchFields![0]!.values as string[]
  )[0];
  pod.status = runningPod().status;
  if (state === 'failing')
    pod.status!.containerStatuses![0]!.state = {
      waiting: { reason: 'CreateContainerError', message: 'no image' },
    };
  return pod;
}

describe('a StatefulSet’s pod', () => {
  it('is let through Preflight, its uid and StatefulSet recorded, keeping its name', () => {
    const m = storedMigration(
      'Preflight',
      { migrationState: { sourceNode: 'node1', targetNode: 'node2' } },
      { source: { node: 'node1', container: 'db', pod: 'db-0' } },
      { name: 'mdb', namespace: 'shop' },
    );
    const d = decide(m, facts({}, { source: source(), claims: { 'db-data': ['ReadWriteOnce'] } }));
    assert.equal(d.status.phase, 'Checkpointing', d.status.failureReason);
    const st = d.status.migrationState!;
    assert.deepEqual([st.statefulSet, st.sourcePodUid, st.targetPod], ['db', 'src-uid', 'db-0']);
  });

  it('imports on both nodes, then hands over: the source deleted, the pod made again restored on the target', () => {
    let m = stsMigration('Restoring');
    assert.deepEqual(what(decide(m, facts({}, { source: source() })).actions), [
      'podImport@node2',
      'podImportSource@node1',
    ]);
    const imported = { podImport: done({ imported: [] }), podImportSource: done({ imported: [] }) };
    let d = decide(m, facts(imported, { source: source() }));
    assert.equal(d.status.phase, 'Verifying');
    assert.equal(d.status.migrationState!.handedOver, true);

    m = stsMigration('Verifying', { handedOver: true });
    d = decide(m, facts({}, { source: source() }));
    assert.deepEqual(what(d.actions), ['delete db-0'], 'the frozen source goes first');
    assert.deepEqual(what(decide(m, facts({}, {})).actions), [], 'then the StatefulSet makes it again');
    const gated = recreated(m, 'gated');
    assert.deepEqual(gated.spec!.schedulingGates, [{ name: 'ferry.dev/volumes' }]);
    assert.equal(gated.metadata!.name, 'db-0');
    assert.deepEqual(gated.metadata!.ownerReferences, [STS], 'still the StatefulSet’s');
    assert.ok(gated.spec!.containers.every((c) => c.image!.startsWith('localhost/ferry-checkpoint/')));
    d = decide(m, facts({}, { replacement: gated }));
    assert.deepEqual(what(d.actions), ['podVolumes@node2']);
    d = decide(m, facts({ podVolumes: done({ podUid: 'new-uid', written: [] }) }, { replacement: gated }));
    assert.deepEqual(what(d.actions), ['updatePod']);
    const running = recreated(m, 'running');
    d = decide(m, facts({ podVolumes: done({ podUid: 'new-uid', written: [] }) }, { replacement: running }));
    assert.equal(d.status.phase, 'CleaningUp');
  });

  it('refuses a pod made again without the webhook: it would start afresh', () => {
    const m = stsMigration('Verifying', { handedOver: true });
    const fresh = runningPod({}, { name: 'db-0', uid: 'new-uid', ownerReferences: [STS] });
    const d = decide(m, facts({}, { replacement: fresh }));
    assert.equal(d.status.phase, 'RollingBack');
    assert.match(d.status.failureReason!, /without ferry's admission webhook/);
  });

  it('after the hand-over, a rollback restores the checkpoint on the source, through the webhook too', () => {
    const m = stsMigration('RollingBack', { handedOver: true });
    const onTarget = recreated(stsMigration('Verifying', { handedOver: true }), 'failing');
    let d = decide(m, facts({}, { replacement: onTarget }));
    assert.deepEqual(what(d.actions), ['delete db-0'], 'the pod on the target goes');
    const back = recreated(m, 'gated');
    const placed = back.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!;
    assert.deepEqual(placed.nodeSelectorTerms[0]!.matchFields![0]!.values, ['node1']);
    d = decide(m, facts({}, { replacement: back }));
    assert.deepEqual(what(d.actions), ['podVolumesSource@node1']);
    d = decide(
      m,
      facts({ podVolumesSource: done({ podUid: 'new-uid', written: [] }) }, { replacement: back }),
    );
    assert.deepEqual(what(d.actions), ['updatePod']);
    d = decide(
      m,
      facts(
        { podVolumesSource: done({ podUid: 'new-uid', written: [] }) },
        { replacement: recreated(m, 'running') },
      ),
    );
    assert.deepEqual(what(d.actions).sort(), ['podCleanupSource@node1', 'podRemoveImages@node2']);
  });

  it('lets every other pod through the webhook unchanged', () => {
    const m = stsMigration('Checkpointing');
    const review = admissionResponse(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'x',
          operation: 'CREATE',
          namespace: 'shop',
          kind: { kind: 'Pod' },
          object: source(),
        },
      },
      [m],
    );
    assert.deepEqual(review.response, { uid: 'x', allowed: true });
  });
});
