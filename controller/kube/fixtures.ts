// A running two-container pod as the API server returns it, for the pod path's tests.
import type { V1Pod } from '@kubernetes/client-node';

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
