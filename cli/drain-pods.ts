// `ferry --kubeconfig FILE drain NODE`: on Kubernetes, moves every pod off a node as `kubectl drain`
// would evict them, each through a pod Migration (spec.source.pod) in its own namespace, within the
// controller's limits:
// - the Node is cordoned first, so that nothing new is scheduled there (nor placed by ferry);
// - pods that belong to the node (DaemonSets, static pods) are left alone; pods that cannot move
//   are reported with the reason before anything is frozen, and keep running where they are;
// - a pod selected by a PodDisruptionBudget moves only while every such budget allows a disruption
//   (a move freezes it, however briefly), one at a time, waiting up to the timeout; then it is
//   refused with the budget's name. Pods no budget selects move together;
// - at the end the Node stays cordoned, or is uncordoned as the user chose (always, or only when
//   something could not move).
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, type Mode } from '../api/v1alpha1/migration.ts';
import type { Budget, NodeApi } from '../lib/kube/nodes.ts';
import { podProblem } from '../lib/kube/pod-rules.ts';
import type { Client } from './client.ts';
import { outcome, type DrainReport } from './drain.ts';
import { ms } from './format.ts';
import { waitForMigration } from './watch.ts';

/** Pods the drain does not move, and why: they belong to the node, or cannot move. Pure. */
export function sortPods(pods: V1Pod[]): {
  move: V1Pod[];
  stay: { pod: string; reason: string; expected: boolean }[];
} {
  const move: V1Pod[] = [];
  const stay: { pod: string; reason: string; expected: boolean }[] = [];
  for (const p of pods) {
    const name = `${p.metadata?.namespace}/${p.metadata?.name}`;
    const owner = p.metadata?.ownerReferences?.find((o) => o.controller);
    if (owner?.kind === 'DaemonSet')
      stay.push({ pod: name, reason: `part of DaemonSet ${owner.name}`, expected: true });
    else if (p.metadata?.annotations?.['kubernetes.io/config.mirror'])
      stay.push({ pod: name, reason: 'a static pod of the node', expected: true });
    else if (['Succeeded', 'Failed'].includes(p.status?.phase ?? ''))
      stay.push({ pod: name, reason: `already ${p.status!.phase}`, expected: true });
    else {
      const problem = podProblem(p);
      if (problem) stay.push({ pod: name, reason: problem, expected: false });
      else move.push(p);
    }
  }
  return { move, stay };
}

/** The budgets that allow no disruption now, as a sentence; undefined when all allow one. Pure. */
export function blockedBy(namespace: string, budgets: Budget[]): string | undefined {
  const blocking = budgets.filter((b) => b.disruptionsAllowed < 1);
  if (!blocking.length) return undefined;
  return blocking
    .map(
      (b) =>
        `PodDisruptionBudget ${namespace}/${b.name} allows no disruption now (${b.currentHealthy} healthy, ${b.desiredHealthy} required)`,
    )
    .join('; ');
}

/** When the drain gives the node back to the scheduler: never (as kubectl drain), on a failure, always. */
export const UNCORDON = ['never', 'failed', 'always'] as const;
export type Uncordon = (typeof UNCORDON)[number];

export interface PodDrainDeps {
  client: Client;
  listPods: (node: string) => Promise<V1Pod[]>;
  podRunning: (ns: string, name: string) => Promise<boolean>;
  nodes: Pick<NodeApi, 'cordon' | 'budgets'>;
}

export interface PodDrainOptions {
  to?: string | undefined;
  mode?: Mode | undefined;
  say: (line: string) => void;
  /** How long the whole drain may take, budgets' waits included (default 30 min). */
  timeoutMs?: number | undefined;
  uncordon?: Uncordon | undefined;
  /** How often a blocked budget is read again. */
  budgetPollMs?: number;
}

export async function drainPods(deps: PodDrainDeps, node: string, o: PodDrainOptions): Promise<DrainReport> {
  const deadline = Date.now() + (o.timeoutMs ?? 1_800_000);
  const cordoned = await deps.nodes.cordon(node, true);
  o.say(cordoned ? `node ${node} cordoned` : `node ${node} was already cordoned`);
  const { move, stay } = sortPods(await deps.listPods(node));
  o.say(
    `draining ${node}: ${move.length} pod(s) to move${o.to ? ` to ${o.to}` : ''}, ${stay.length} staying`,
  );
  const report: DrainReport = { moved: [], failed: [] };
  for (const s of stay) {
    o.say(`  ${s.pod}: stays: ${s.reason}`);
    if (!s.expected) report.failed.push({ container: s.pod, reason: s.reason, runningOnSource: true });
  }

  /** One pod's move, from its Migration to its outcome in the report. */
  const moveOne = async (p: V1Pod) => {
    const ns = p.metadata!.namespace!;
    const pod = `${ns}/${p.metadata!.name}`;
    const name = `drain-${p.metadata!.name}-${randomBytes(2).toString('hex')}`.slice(0, 63);
    await deps.client.store.create({
      apiVersion: API_VERSION,
      kind: 'Migration',
      metadata: { name, namespace: ns, annotations: { 'ferry.dev/drain': node } },
      spec: {
        source: { node, pod: p.metadata!.name!, container: p.spec!.containers[0]!.name },
        target: o.to ? { node: o.to } : { nodeSelector: {} },
        ...(o.mode ? { strategy: { mode: o.mode } } : {}),
      },
    });
    o.say(`  ${pod}: moving (Migration ${ns}/${name})`);
    const m = await waitForMigration(
      deps.client,
      ns,
      name,
      () => undefined,
      Math.max(1, deadline - Date.now()),
    ).catch(() => undefined);
    if (!m) {
      const reason = `still moving when the drain's time ran out (Migration ${ns}/${name} goes on)`;
      o.say(`  ${pod}: ${reason}`);
      report.failed.push({ container: pod, reason, runningOnSource: true });
      return;
    }
    const r = outcome(m);
    if (r.moved) {
      const down = m.status.migrationState?.downtimeMs;
      o.say(
        `  ${pod}: moved to ${r.to} as ${m.status.migrationState?.targetPod}${down !== undefined ? `, downtime ${ms(down)}` : ''}`,
      );
      report.moved.push({ container: pod, to: r.to, downtimeMs: down });
    } else {
      const runningOnSource = await deps.podRunning(ns, p.metadata!.name!);
      o.say(`  ${pod}: not moved: ${r.reason}${runningOnSource ? '' : ` — WARNING: not running on ${node}`}`);
      report.failed.push({ container: pod, reason: r.reason, runningOnSource });
    }
  };

  const budgetsOf = (p: V1Pod) => deps.nodes.budgets(p.metadata!.namespace!, p.metadata?.labels ?? {});
  const guarded: V1Pod[] = [];
  const free: V1Pod[] = [];
  for (const p of move) ((await budgetsOf(p)).length ? guarded : free).push(p);

  // Pods under a budget one at a time, whichever a budget allows first; read again until the
  // deadline, then refused with the budgets that still allow nothing. The others all together.
  const oneByOne = async () => {
    let waiting = guarded;
    const blocked = new Map<V1Pod, string>();
    while (waiting.length) {
      let next: V1Pod | undefined;
      for (const p of waiting) {
        const why = blockedBy(p.metadata!.namespace!, await budgetsOf(p));
        if (!why) {
          next = p;
          break;
        }
        if (!blocked.has(p)) o.say(`  ${p.metadata!.namespace}/${p.metadata!.name}: waiting: ${why}`);
        blocked.set(p, why);
      }
      if (next) {
        waiting = waiting.filter((p) => p !== next);
        await moveOne(next);
        continue;
      }
      const poll = o.budgetPollMs ?? 2000;
      if (Date.now() + poll > deadline) {
        for (const p of waiting) {
          const pod = `${p.metadata!.namespace}/${p.metadata!.name}`;
          const reason = `${blocked.get(p)}; waited until the drain's timeout`;
          o.say(`  ${pod}: not moved: ${reason}`);
          report.failed.push({ container: pod, reason, runningOnSource: true });
        }
        return;
      }
      await sleep(poll);
    }
  };
  await Promise.all([oneByOne(), ...free.map(moveOne)]);

  o.say(`${node}: ${report.moved.length} moved, ${report.failed.length} could not move`);
  if (o.uncordon === 'always' || (o.uncordon === 'failed' && report.failed.length)) {
    await deps.nodes.cordon(node, false);
    o.say(`node ${node} uncordoned`);
  } else o.say(`node ${node} stays cordoned (\`kubectl uncordon ${node}\` gives it back)`);
  return report;
}
