// Facts about pods that the CLI (drain) and the controller (the pod path) both judge by: whether a
// pod can move at all, and whether a pod runs. Pure.
import type { V1Pod } from '@kubernetes/client-node';

/** Why a pod with this controlling owner cannot move, or undefined (a ReplicaSet's can). Pure. */
export function ownerProblem(kind: string, name: string): string | undefined {
  switch (kind) {
    case 'ReplicaSet':
      // Its replacement joins the ReplicaSet once it runs, and the source is the pod it scales
      // down (controller/kube/pod-spec.ts, adoption).
      return undefined;
    case 'Job':
      return `is a pod of Job ${name}, which counts its pods by uid and would start the work again; let it finish, or delete and rerun it where it should run`;
    case 'StatefulSet':
      // Its identity moves: the StatefulSet recreates the pod under its name once ferry deleted
      // the frozen source, and ferry's admission webhook places it (controller/kube/admission.ts).
      return undefined;
    case 'DaemonSet':
      return `is a pod of DaemonSet ${name}, which runs one on every node by design`;
    default:
      return `is managed by ${kind} ${name}, which ferry does not know how to hand a pod over to; migrate pods without a controlling owner, or ReplicaSet (Deployment) pods`;
  }
}

/**
 * Why the pod cannot move, or undefined. Refused before anything is frozen: a pod its controller
 * would replace or remove behind ferry's back (ownerProblem), one that shares its node's
 * namespaces, and one that mounts a folder of its node's (hostPath: not the pod's to take along).
 * emptyDirs are the pod's own: they move with it (agent/kube/pod-volumes.ts).
 */
export function podProblem(pod: V1Pod): string | undefined {
  const where = `pod ${pod.metadata?.namespace}/${pod.metadata?.name}`;
  if (pod.status?.phase !== 'Running') return `${where} is ${pod.status?.phase ?? 'unknown'}, not Running`;
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller);
  const problem = owner && ownerProblem(owner.kind, owner.name);
  if (problem) return `${where} ${problem}`;
  if (pod.spec?.hostNetwork || pod.spec?.hostPID || pod.spec?.hostIPC)
    return `${where} shares its node's network, PID or IPC namespace, which does not move`;
  for (const v of pod.spec?.volumes ?? []) {
    if (v.hostPath)
      return `${where}: volume ${v.name} is a hostPath, a folder of the source node's own; it does not move with the pod`;
  }
  if (pod.spec?.ephemeralContainers?.length) return `${where} has ephemeral (debug) containers`;
  for (const c of pod.spec?.containers ?? []) {
    const asked = { ...c.resources?.limits, ...c.resources?.requests };
    const gpu = Object.keys(asked).find((r) => GPU_RESOURCE.test(r));
    if (gpu)
      return `${where}: container ${c.name} asks for ${gpu}: GPU pods are not moved yet (the pod path does not call the CUDA driver's checkpoint; ferry's own GPU containers do, see the README's GPU workloads)`;
  }
  return undefined;
}

/** Device plugins' GPU resources: nvidia.com/gpu, its MIG slices (nvidia.com/mig-1g.10gb), amd.com/gpu. */
const GPU_RESOURCE = /^(nvidia\.com\/mig-.+|[\w.-]+\/gpu)$/;

/**
 * Why a claim the pod mounts keeps it from moving, or undefined: given each claim's access modes
 * (undefined: not found). A ReadWriteMany or ReadOnlyMany claim stays attached, the replacement
 * on the target mounting it beside the frozen source; a ReadWriteOnce(Pod) claim attaches to one
 * node (one pod) at a time, and detaching it from the frozen source to attach it on the target is
 * not done, so it is refused before anything is frozen. Pure.
 */
export function claimProblem(pod: V1Pod, claims: Record<string, string[] | undefined>): string | undefined {
  const where = `pod ${pod.metadata?.namespace}/${pod.metadata?.name}`;
  // A StatefulSet pod's claims follow its identity: the source pod is deleted before the StatefulSet
  // recreates it on the target, so a ReadWriteOnce volume detaches from the one to attach to the other.
  const statefulSet = pod.metadata?.ownerReferences?.some((o) => o.controller && o.kind === 'StatefulSet');
  for (const v of pod.spec?.volumes ?? []) {
    const name = v.persistentVolumeClaim?.claimName;
    if (!name) continue;
    const modes = claims[name];
    if (!modes) return `${where}: volume ${v.name}: PersistentVolumeClaim ${name} is not found`;
    if (modes.includes('ReadWriteMany') || modes.includes('ReadOnlyMany') || statefulSet) continue;
    return `${where}: volume ${v.name} is PersistentVolumeClaim ${name} (${modes.join(', ') || 'no access mode'}), which attaches to one node at a time; ferry does not detach it from the frozen source to attach it on the target, so the pod is refused before anything is frozen (a ReadWriteMany claim stays attached and moves; a StatefulSet's pod hands its claims over with its name)`;
  }
  return undefined;
}

/** Whether the replacement runs: phase Running and every container ready. Pure. */
export function podRunning(pod: V1Pod | undefined): { running: boolean; problem?: string } {
  if (!pod) return { running: false, problem: 'the pod is gone' };
  const waiting = pod.status?.containerStatuses?.find((s) => s.state?.waiting?.reason || s.state?.terminated);
  const reason = waiting?.state?.waiting?.reason ?? waiting?.state?.terminated?.reason;
  if (pod.status?.phase === 'Failed' || /Err|BackOff|Invalid/.test(reason ?? ''))
    return {
      running: false,
      problem: `container ${waiting?.name ?? '?'}: ${reason ?? pod.status?.phase}${waiting?.state?.waiting?.message ? ` (${waiting.state.waiting.message})` : ''}`,
    };
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  return { running: pod.status?.phase === 'Running' && ready };
}

/** The names of a pod's emptyDir volumes. Pure. */
export const emptyDirsOf = (pod: V1Pod | undefined): string[] =>
  (pod?.spec?.volumes ?? []).filter((v) => v.emptyDir).map((v) => v.name);
