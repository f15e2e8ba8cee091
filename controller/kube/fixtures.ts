// For the pod path's tests: a running two-container pod as the API server returns it, and an
// in-memory world of pods and agents that logs every call and fails where told.
import type { V1Pod } from '@kubernetes/client-node';
import type { CheckpointedImage, PodAgents, PodApi } from './pod-migration.ts';

export function runningPod(over: Partial<V1Pod['spec']> = {}, meta: Partial<V1Pod['metadata']> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'db',
      namespace: 'shop',
      uid: 'u-1',
      resourceVersion: '42',
      creationTimestamp: new Date(0),
      labels: { app: 'db' },
      annotations: { team: 'data' },
      ...meta,
    },
    spec: {
      nodeName: 'node1',
      nodeSelector: { 'kubernetes.io/hostname': 'node1' },
      initContainers: [{ name: 'migrate-schema', image: 'shop/migrate:1' }],
      containers: [
        { name: 'db', image: 'postgres:16', imagePullPolicy: 'Always' },
        { name: 'exporter', image: 'exporter:2' },
      ],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'db-data' } }],
      ...over,
    },
    status: {
      phase: 'Running',
      containerStatuses: [
        {
          name: 'db',
          containerID: `containerd://${'a'.repeat(64)}`,
          state: { running: {} },
          ready: true,
          restartCount: 0,
          image: '',
          imageID: '',
        },
        {
          name: 'exporter',
          containerID: `containerd://${'b'.repeat(64)}`,
          state: { running: {} },
          ready: true,
          restartCount: 0,
          image: '',
          imageID: '',
        },
      ],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  } as V1Pod;
}

export type Failing =
  'freeze' | 'checkpoint' | 'send' | 'importImages' | 'create' | 'ready' | 'delete' | undefined;

/** In-memory Kubernetes and agents that log every call and fail where told. */
export function world(fail: Failing) {
  const pods = new Map<string, V1Pod>([['shop/db', runningPod()]]);
  const log: string[] = [];
  const frozen = new Set<string>();
  const boom = (what: Failing) => {
    if (fail === what) throw new Error(`${what} broke`);
  };
  const api: PodApi = {
    get: async (ns, name) => structuredClone(pods.get(`${ns}/${name}`)),
    create: async (pod) => {
      log.push(`create ${pod.metadata!.name} on ${pod.spec!.nodeName}`);
      boom('create');
      // The target kubelet restores it: running and ready, unless told otherwise.
      const p = structuredClone(pod);
      p.status =
        fail === 'ready'
          ? {
              phase: 'Pending',
              containerStatuses: [
                {
                  name: 'db',
                  state: { waiting: { reason: 'CreateContainerError', message: 'criu failed' } },
                } as never,
              ],
            }
          : runningPod().status!;
      pods.set(`${pod.metadata!.namespace}/${pod.metadata!.name}`, p);
    },
    delete: async (ns, name) => {
      log.push(`delete ${name}`);
      if (name === 'db') boom('delete');
      pods.delete(`${ns}/${name}`);
    },
  };
  const agents: PodAgents = {
    freeze: async (node, cs) => {
      log.push(`freeze ${node}`);
      boom('freeze');
      cs.forEach((c) => frozen.add(c.id));
    },
    thaw: async (node, cs) => {
      log.push(`thaw ${node}`);
      cs.forEach((c) => frozen.delete(c.id));
    },
    checkpoint: async (node, req) => {
      log.push(`checkpoint ${node}`);
      boom('checkpoint');
      return req.containers.map((c): CheckpointedImage => ({
        container: c.name,
        ref: c.ref,
        file: `pod-images/${c.name}.tar`,
        bytes: 10,
      }));
    },
    send: async (node, target, images) => {
      log.push(`send ${node} -> ${target}`);
      boom('send');
      return images.length * 10;
    },
    importImages: async (node) => {
      log.push(`import ${node}`);
      boom('importImages');
    },
    removeImages: async (node) => void log.push(`remove images ${node}`),
    cleanup: async (node) => void log.push(`cleanup ${node}`),
  };
  const plan = {
    namespace: 'shop',
    pod: 'db',
    sourceNode: 'node1',
    targetNode: 'node2',
    migration: { name: 'move-db', uid: 'abcdef12-3456' },
  };
  let t = 0;
  const ports = { pods: api, agents, sleep: async () => void (t += 500), now: () => t };
  return { pods, log, frozen, plan, ports };
}
