// Moves a pod between Kubernetes nodes the way upstream supports: freeze its containers on the
// source (runc pause under the runtime's root), checkpoint each through the kubelet's checkpoint
// API, build checkpoint OCI images and send them to the target agent, import them into the target
// runtime's image store, create the replacement pod bound to the target node, wait until it runs
// and is ready, and only then delete the source pod. Any failure before that removes what was made
// on the target and thaws the source: the workload runs exactly once, here or there.
// The ports are the Kubernetes API (pods) and the node agents; tests give fakes for both.
import { FerryError, errorMessage } from '../../lib/errors.ts';
import { checkpointImageRef, replacementPod, runtimeContainers, type RuntimeContainer } from './pod-spec.ts';
import type { PodApi } from '../../lib/kube/pods.ts';
import { podProblem, podRunning } from '../../lib/kube/pod-rules.ts';

export interface CheckpointedImage {
  container: string;
  ref: string;
  /** The OCI archive, inside the migration's folder on a node: pod-images/CONTAINER.tar. */
  file: string;
  bytes: number;
}

/** The node agents, bound to one migration (its uid names every folder and job they use). */
export interface PodAgents {
  freeze(node: string, containers: RuntimeContainer[]): Promise<void>;
  thaw(node: string, containers: RuntimeContainer[]): Promise<void>;
  /** Kubelet checkpoint of each container, each made a checkpoint OCI image on `node`. */
  checkpoint(
    node: string,
    req: { namespace: string; pod: string; containers: { name: string; ref: string }[] },
  ): Promise<CheckpointedImage[]>;
  /** Sends the images to `target`, into the same place in its migration folder; resolves to bytes sent. */
  send(node: string, target: string, images: CheckpointedImage[]): Promise<number>;
  importImages(node: string, images: CheckpointedImage[]): Promise<void>;
  removeImages(node: string, images: CheckpointedImage[]): Promise<void>;
  /** Removes the migration's folder on a node. */
  cleanup(node: string): Promise<void>;
}

/** Thrown by `check` when this controller no longer leads: stop, and leave the rest to the leader. */
export class LeadershipLost extends Error {}

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
  | 'Sending'
  | 'Importing'
  | 'Creating'
  | 'Verifying'
  | 'CleaningUp'
  | 'RollingBack';

/** What a step tells the one watching (the runner writes it into the Migration's status). */
export interface StepInfo {
  targetPod?: string;
  frozenAt?: number;
  restoredAt?: number;
  bytesSent?: number;
  reason?: string;
}

export interface PodMigrationResult {
  targetPod: string;
  images: CheckpointedImage[];
  downtimeMs: number;
  /** Bytes sent to the target while the source was frozen. */
  bytesSent: number;
  frozenAt: number;
  restoredAt: number;
  /** Trouble after success (a clean-up that failed): reported, not fatal. */
  warnings: string[];
}

export async function migratePod(
  ports: {
    pods: PodApi;
    agents: PodAgents;
    onStep?: (step: PodStep, info?: StepInfo) => void | Promise<void>;
    /** Between steps: throws to stop (an abort rolls back; LeadershipLost leaves things as they are). */
    check?: () => Promise<void>;
    sleep?: (ms: number) => Promise<void>;
    now?: () => number;
  },
  plan: PodMigrationPlan,
): Promise<PodMigrationResult> {
  const { pods, agents } = ports;
  const onStep = ports.onStep ?? (() => undefined);
  const check = ports.check ?? (async () => undefined);
  const step = async (s: PodStep, info?: StepInfo) => {
    // Aborts and lost leadership stop a migration only while undoing it is still the way out.
    if (s !== 'Preflight' && s !== 'RollingBack' && s !== 'CleaningUp') await check();
    await onStep(s, info);
  };
  const sleep = ports.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = ports.now ?? Date.now;
  const where = `pod ${plan.namespace}/${plan.pod}`;

  await step('Preflight');
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
    migrationUid: plan.migration.uid,
  });
  const targetPod = replacement.metadata!.name!;

  let frozenAt: number | undefined;
  let images: CheckpointedImage[] = [];
  let created = false;
  let bytesSent: number;
  try {
    await step('Freezing', { targetPod });
    frozenAt = now();
    await agents.freeze(plan.sourceNode, containers);
    await step('Checkpointing', { frozenAt });
    images = await agents.checkpoint(plan.sourceNode, {
      namespace: plan.namespace,
      pod: plan.pod,
      containers: refs,
    });
    await step('Sending');
    bytesSent = await agents.send(plan.sourceNode, plan.targetNode, images);
    await step('Importing');
    await agents.importImages(plan.targetNode, images);
    await step('Creating');
    await pods.create(replacement);
    created = true;
    await step('Verifying');
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
      await check();
    }
  } catch (err) {
    if (err instanceof LeadershipLost) throw err;
    await step('RollingBack', { reason: errorMessage(err) });
    await rollBack(
      ports,
      plan,
      { containers, images, created, targetPod, frozen: frozenAt !== undefined },
      err,
    );
    throw err;
  }
  const restoredAt = now();
  const downtimeMs = restoredAt - frozenAt;
  // The replacement runs: now, and only now, the source goes.
  await step('CleaningUp', { restoredAt, bytesSent });
  const warnings = await finish(ports, plan);
  return { targetPod, images, downtimeMs, bytesSent, frozenAt, restoredAt, warnings };
}

/** After the replacement runs: the source pod goes, then both nodes' files. Failures are warnings. */
export async function finish(
  ports: { pods: PodApi; agents: PodAgents },
  plan: PodMigrationPlan,
): Promise<string[]> {
  const warnings: string[] = [];
  await ports.pods
    .delete(plan.namespace, plan.pod)
    .catch((err: unknown) =>
      warnings.push(
        `the source pod ${plan.pod} stays frozen on ${plan.sourceNode}: deleting it failed: ${errorMessage(err)}`,
      ),
    );
  for (const node of [plan.sourceNode, plan.targetNode])
    await ports.agents
      .cleanup(node)
      .catch((err: unknown) => warnings.push(`clean-up on ${node}: ${errorMessage(err)}`));
  return warnings;
}

/** What a run has made so far, which a rollback undoes. */
export interface Made {
  containers: RuntimeContainer[];
  images: CheckpointedImage[];
  created: boolean;
  targetPod: string;
  frozen: boolean;
}

/** Undoes what was made, newest first; the source thaws last, once nothing else can run. */
async function rollBack(
  ports: { pods: PodApi; agents: PodAgents },
  plan: PodMigrationPlan,
  made: Made,
  cause: unknown,
): Promise<void> {
  const problems = await undo(ports, plan, made);
  if (problems.length && cause instanceof Error) cause.message += ` (rollback: ${problems.join('; ')})`;
}

/** Removes the replacement and the images, cleans both nodes, thaws the source. Resolves to what failed. */
export async function undo(
  ports: { pods: PodApi; agents: PodAgents },
  plan: PodMigrationPlan,
  made: Made,
): Promise<string[]> {
  const problems: string[] = [];
  const attempt = (what: string, p: Promise<unknown>) =>
    p.catch((err: unknown) => problems.push(`${what}: ${errorMessage(err)}`));
  if (made.created)
    await attempt(`deleting ${made.targetPod}`, ports.pods.delete(plan.namespace, made.targetPod));
  if (made.images.length)
    await attempt('removing the images', ports.agents.removeImages(plan.targetNode, made.images));
  await attempt(`clean-up on ${plan.targetNode}`, ports.agents.cleanup(plan.targetNode));
  await attempt(`clean-up on ${plan.sourceNode}`, ports.agents.cleanup(plan.sourceNode));
  if (made.frozen) await attempt(`thawing ${plan.pod}`, ports.agents.thaw(plan.sourceNode, made.containers));
  return problems;
}
