// `ferry --kubeconfig FILE drain NODE`: on Kubernetes, moves every pod off a node, each through a
// pod Migration (spec.source.pod) in its own namespace, within the controller's limits. Pods that
// belong to the node (DaemonSets, static pods) are left alone; pods that cannot move are reported
// with the reason before anything is frozen, and keep running where they are.
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, type Mode } from '../api/v1alpha1/migration.ts';
import { podProblem } from '../lib/kube/pod-rules.ts';
import type { Client } from './client.ts';
import { outcome, type DrainReport } from './drain.ts';
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

export async function drainPods(
  deps: {
    client: Client;
    listPods: (node: string) => Promise<V1Pod[]>;
    podRunning: (ns: string, name: string) => Promise<boolean>;
  },
  node: string,
  o: { to?: string | undefined; mode?: Mode | undefined; say: (line: string) => void; timeoutMs?: number },
): Promise<DrainReport> {
  const { move, stay } = sortPods(await deps.listPods(node));
  o.say(
    `draining ${node}: ${move.length} pod(s) to move${o.to ? ` to ${o.to}` : ''}, ${stay.length} staying`,
  );
  const report: DrainReport = { moved: [], failed: [] };
  for (const s of stay) {
    o.say(`  ${s.pod}: stays: ${s.reason}`);
    if (!s.expected) report.failed.push({ container: s.pod, reason: s.reason, runningOnSource: true });
  }
  const started = [];
  for (const p of move) {
    const ns = p.metadata!.namespace!;
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
    started.push({ ns, name, pod: `${ns}/${p.metadata!.name}` });
  }
  await Promise.all(
    started.map(async ({ ns, name, pod }) => {
      const m = await waitForMigration(deps.client, ns, name, () => undefined, o.timeoutMs ?? 1_800_000);
      const r = outcome(m);
      if (r.moved) {
        o.say(`  ${pod}: moved to ${r.to} as ${m.status.migrationState?.targetPod}`);
        report.moved.push({ container: pod, to: r.to, downtimeMs: m.status.migrationState?.downtimeMs });
      } else {
        const runningOnSource = await deps.podRunning(ns, pod.split('/')[1]!);
        o.say(
          `  ${pod}: not moved: ${r.reason}${runningOnSource ? '' : ` — WARNING: not running on ${node}`}`,
        );
        report.failed.push({ container: pod, reason: r.reason, runningOnSource });
      }
    }),
  );
  o.say(`${node}: ${report.moved.length} moved, ${report.failed.length} could not move`);
  return report;
}
