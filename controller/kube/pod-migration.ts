// Moves a pod between Kubernetes nodes the way upstream supports: freeze its containers on the
// source (runc pause under the runtime's root), checkpoint each through the kubelet's checkpoint
// API, build checkpoint OCI images and send them to the target agent, import them into the target
// runtime's image store, create the replacement pod bound to the target node, wait until it runs
// and is ready, and only then delete the source pod. Any failure before that removes what was made
// on the target and thaws the source: the workload runs exactly once, here or there.
// The ports are the Kubernetes API (pods) and the node agents; tests give fakes for both.
import type { V1Pod } from '@kubernetes/client-node';
import { FerryError, errorMessage } from '../../lib/errors.ts';
import {
  checkpointImageRef,
  podProblem,
  podRunning,
  replacementPod,
  runtimeContainers,
  type RuntimeContainer,
} from './pod-spec.ts';

export interface PodApi {
  get(namespace: string, name: string): Promise<V1Pod | undefined>;
  create(pod: V1Pod): Promise<void>;
  delete(namespace: string, name: string): Promise<void>;
}

export interface CheckpointedImage {
  container: string;
  ref: string;
  /** The OCI archive's path on the target node. */
  file: string;
  bytes: number;
}

export interface PodAgents {
  freeze(node: string, containers: RuntimeContainer[]): Promise<void>;
  thaw(node: string, containers: RuntimeContainer[]): Promise<void>;
  /** Kubelet checkpoint of each container, its OCI image, sent to `target`. */
  checkpoint(
    node: string,
    req: {
      namespace: string;
      pod: string;
      containers: { name: string; ref: string }[];
      target: string;
      uid: string;
    },
  ): Promise<CheckpointedImage[]>;
  importImages(node: string, images: CheckpointedImage[]): Promise<void>;
  removeImages(node: string, images: CheckpointedImage[]): Promise<void>;
  /** Removes the migration's files (archives, OCI archives) on a node. */
  cleanup(node: string, uid: string): Promise<void>;
}

export interface PodMigrationPlan {
  namespace: string;
  pod: string;
  sourceNode: string;
  targetNode: string;
  migration: { name: string; uid: string };
  readyTimeoutMs?: number;
}

export type PodStep =
  | 'Preflight'
  | 'Freezing'
  | 'Checkpointing'
  | 'Importing'
  | 'Creating'
  | 'Verifying'
  | 'CleaningUp'
  | 'RollingBack';

export interface PodMigrationResult {
  targetPod: string;
  images: CheckpointedImage[];
  downtimeMs: number;
  /** Trouble after success (a clean-up that failed): reported, not fatal. */
  warnings: string[];
}

export async function migratePod(
  ports: {
    pods: PodApi;
    agents: PodAgents;
    onStep?: (step: PodStep) => void;
    sleep?: (ms: number) => Promise<void>;
    now?: () => number;
  },
  plan: PodMigrationPlan,
): Promise<PodMigrationResult> {
  const { pods, agents } = ports;
  const step = ports.onStep ?? (() => undefined);
  const sleep = ports.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = ports.now ?? Date.now;
  const where = `pod ${plan.namespace}/${plan.pod}`;

  step('Preflight');
  const source = await pods.get(plan.namespace, plan.pod);
  if (!source) throw new FerryError('ContainerNotFound', `${where} does not exist`);
  if (source.spec?.nodeName !== plan.sourceNode)
    throw new FerryError(
      'NodeNotFound',
      `${where} runs on ${source.spec?.nodeName ?? 'no node'}, not ${plan.sourceNode}`,
    );
  if (plan.targetNode === plan.sourceNode)
    throw new FerryError('InvalidInput', `${where} is already on ${plan.targetNode}`);
  const problem = podProblem(source);
  if (problem) throw new FerryError('UnsupportedWorkload', problem);
  const containers = runtimeContainers(source);
  const refs = containers.map((c) => ({ name: c.name, ref: checkpointImageRef(plan.migration.uid, c.name) }));
  const replacement = replacementPod(source, {
    targetNode: plan.targetNode,
    images: Object.fromEntries(refs.map((r) => [r.name, r.ref])),
    migration: plan.migration.name,
    suffix: plan.migration.uid.replace(/[^a-z0-9]/g, '').slice(0, 5),
  });
  const targetPod = replacement.metadata!.name!;

  let frozenAt: number | undefined;
  let images: CheckpointedImage[] = [];
  let created = false;
  try {
    step('Freezing');
    frozenAt = now();
    await agents.freeze(plan.sourceNode, containers);
    step('Checkpointing');
    images = await agents.checkpoint(plan.sourceNode, {
      namespace: plan.namespace,
      pod: plan.pod,
      containers: refs,
      target: plan.targetNode,
      uid: plan.migration.uid,
    });
    step('Importing');
    await agents.importImages(plan.targetNode, images);
    step('Creating');
    await pods.create(replacement);
    created = true;
    step('Verifying');
    const deadline = now() + (plan.readyTimeoutMs ?? 120_000);
    for (;;) {
      const state = podRunning(await pods.get(plan.namespace, targetPod));
      if (state.running) break;
      if (state.problem)
        throw new FerryError(
          'CriuRestoreFailed',
          `replacement pod ${targetPod} on ${plan.targetNode}: ${state.problem}`,
        );
      if (now() > deadline)
        throw new FerryError(
          'CriuRestoreFailed',
          `replacement pod ${targetPod} on ${plan.targetNode} is not ready in time`,
        );
      await sleep(500);
    }
  } catch (err) {
    step('RollingBack');
    await rollBack(
      ports,
      plan,
      { containers, images, created, targetPod, frozen: frozenAt !== undefined },
      err,
    );
    throw err;
  }
  const downtimeMs = now() - frozenAt;

  // The replacement runs: now, and only now, the source goes.
  step('CleaningUp');
  const warnings: string[] = [];
  await pods
    .delete(plan.namespace, plan.pod)
    .catch((err: unknown) =>
      warnings.push(
        `the source pod ${plan.pod} stays frozen on ${plan.sourceNode}: deleting it failed: ${errorMessage(err)}`,
      ),
    );
  for (const node of [plan.sourceNode, plan.targetNode])
    await agents
      .cleanup(node, plan.migration.uid)
      .catch((err: unknown) => warnings.push(`clean-up on ${node}: ${errorMessage(err)}`));
  return { targetPod, images, downtimeMs, warnings };
}

/** Undoes what was made, newest first; the source thaws last, once nothing else can run. */
async function rollBack(
  ports: { pods: PodApi; agents: PodAgents },
  plan: PodMigrationPlan,
  made: {
    containers: RuntimeContainer[];
    images: CheckpointedImage[];
    created: boolean;
    targetPod: string;
    frozen: boolean;
  },
  cause: unknown,
): Promise<void> {
  const problems: string[] = [];
  const attempt = (what: string, p: Promise<unknown>) =>
    p.catch((err: unknown) => problems.push(`${what}: ${errorMessage(err)}`));
  if (made.created)
    await attempt(`deleting ${made.targetPod}`, ports.pods.delete(plan.namespace, made.targetPod));
  if (made.images.length)
    await attempt('removing the images', ports.agents.removeImages(plan.targetNode, made.images));
  await attempt(`clean-up on ${plan.targetNode}`, ports.agents.cleanup(plan.targetNode, plan.migration.uid));
  await attempt(`clean-up on ${plan.sourceNode}`, ports.agents.cleanup(plan.sourceNode, plan.migration.uid));
  if (made.frozen) await attempt(`thawing ${plan.pod}`, ports.agents.thaw(plan.sourceNode, made.containers));
  if (problems.length && cause instanceof Error) cause.message += ` (rollback: ${problems.join('; ')})`;
}
