// The fake kubelet's (test/fake-kubelet.ts) runtime when it is a REAL containerd: every call is the
// CRI call a kubelet makes (RunPodSandbox, PullImage, CreateContainer, StartContainer,
// CheckpointContainer, StopPodSandbox, RemovePodSandbox) over containerd's CRI socket. A pod whose
// image is a checkpoint image is restored by containerd itself (CreateContainer on such an image).
// What the kubelet would add and ferry does not read (probes, resource limits, the many labels and
// annotations) is left out; emptyDir volumes are folders under the kubelet's pod folder, as the
// kubelet makes them.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { CriClient, PodSandboxConfig } from '../lib/kube/cri.ts';
import type { KubeletRuntime, PodHandle } from './fake-kubelet.ts';

export class ContainerdRuntime implements KubeletRuntime {
  readonly scheme = 'containerd';

  /** `kubeletDir`: this node's /var/lib/kubelet (checkpoints/, pods/). */
  constructor(
    readonly cri: CriClient,
    private readonly kubeletDir: string,
  ) {}

  starts(): boolean {
    return true;
  }

  /** As the kubelet does: /var/lib/kubelet/checkpoints/checkpoint-POD_NS-CONTAINER-TIME.tar. */
  async checkpoint(pod: V1Pod, container: string, id: string): Promise<string> {
    const dir = path.join(this.kubeletDir, 'checkpoints');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString();
    const file = path.join(
      dir,
      `checkpoint-${pod.metadata!.name}_${pod.metadata!.namespace}-${container}-${stamp}.tar`,
    );
    await this.cri.checkpointContainer(id, file);
    return file;
  }

  private emptyDir(pod: V1Pod, volume: string): string {
    return path.join(this.kubeletDir, 'pods', pod.metadata!.uid!, 'volumes/kubernetes.io~empty-dir', volume);
  }

  async start(pod: V1Pod, handle: PodHandle): Promise<V1ContainerStatus[]> {
    const meta = pod.metadata!;
    const logs = path.join(this.kubeletDir, 'logs', `${meta.namespace}_${meta.name}_${meta.uid}`);
    await mkdir(logs, { recursive: true, mode: 0o700 });
    const sandbox: PodSandboxConfig = {
      metadata: { name: meta.name!, uid: meta.uid!, namespace: meta.namespace!, attempt: 0 },
      hostname: pod.spec!.hostname ?? meta.name!,
      logDirectory: logs,
      labels: {
        'io.kubernetes.pod.name': meta.name!,
        'io.kubernetes.pod.namespace': meta.namespace!,
        'io.kubernetes.pod.uid': meta.uid!,
      },
      linux: {},
    };
    handle.sandbox = await this.cri.runPodSandbox(sandbox);
    const statuses: V1ContainerStatus[] = [];
    for (const c of pod.spec!.containers) {
      const image = c.image!;
      if (c.imagePullPolicy !== 'Never' && !(await this.cri.imagePresent(image)))
        await this.cri.pullImage(image);
      const mounts = [];
      for (const m of c.volumeMounts ?? []) {
        const v = pod.spec!.volumes?.find((x) => x.name === m.name);
        if (!v?.emptyDir) continue;
        const host = this.emptyDir(pod, v.name);
        await mkdir(host, { recursive: true, mode: 0o777 });
        mounts.push({ containerPath: m.mountPath, hostPath: host, readonly: !!m.readOnly });
      }
      const id = await this.cri.createContainer(
        handle.sandbox,
        {
          metadata: { name: c.name, attempt: 0 },
          image: { image },
          ...(c.command ? { command: c.command } : {}),
          ...(c.args ? { args: c.args } : {}),
          mounts,
          logPath: `${c.name}/0.log`,
          labels: {
            'io.kubernetes.container.name': c.name,
            'io.kubernetes.pod.name': meta.name!,
            'io.kubernetes.pod.namespace': meta.namespace!,
            'io.kubernetes.pod.uid': meta.uid!,
          },
          linux: {},
        },
        sandbox,
      );
      handle.ids.push(id);
      await this.cri.startContainer(id);
      const st = await this.cri.containerStatus(id);
      statuses.push({
        name: c.name,
        containerID: `containerd://${id}`,
        image,
        imageID: st.imageRef,
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: new Date(st.startedAt / 1e6) } },
      });
    }
    return statuses;
  }

  /** As the kubelet does for a deleted pod: its sandbox and containers, then its folder (emptyDirs). */
  async remove(handle: PodHandle, keepVolumes = false): Promise<void> {
    if (handle.sandbox) {
      await this.cri.stopPodSandbox(handle.sandbox);
      await this.cri.removePodSandbox(handle.sandbox);
    }
    if (handle.uid && !keepVolumes)
      await rm(path.join(this.kubeletDir, 'pods', handle.uid), { recursive: true, force: true });
  }
}
