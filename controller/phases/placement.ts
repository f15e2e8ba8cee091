// Where a migration goes: the named target node, or the least busy live node matching the
// selector; never a cordoned Kubernetes Node. Pure.
import type { Migration } from '../../api/v1alpha1/migration.ts';
import type { Load, NodeFact } from './facts.ts';

export function pickTarget(
  spec: Migration['spec'],
  nodes: ReadonlyMap<string, NodeFact>,
  load: Load,
): { node: string } | { error: string } {
  if (spec.target.node) {
    const n = nodes.get(spec.target.node);
    if (!n)
      return {
        error: `NodeNotFound: target node ${spec.target.node} is not registered (no agent heartbeat)`,
      };
    // Cordoned: being drained or kept empty on purpose; a move there would be undone.
    if (n.unschedulable)
      return { error: `NodeNotFound: target node ${spec.target.node} is cordoned (spec.unschedulable)` };
    return { node: spec.target.node };
  }
  const selector = spec.target.nodeSelector ?? {};
  const matches = [...nodes.entries()]
    .filter(
      ([name, n]) =>
        name !== spec.source.node &&
        !n.unschedulable &&
        Object.entries(selector).every(([k, v]) => n.labels[k] === v),
    )
    .map(([name]) => name)
    .sort((a, b) => (load.inbound[a] ?? 0) - (load.inbound[b] ?? 0) || a.localeCompare(b));
  const wanted = Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return matches[0]
    ? { node: matches[0] }
    : {
        error: `NodeNotFound: no live, uncordoned node other than ${spec.source.node} matches ${wanted || 'the selector'}`,
      };
}
