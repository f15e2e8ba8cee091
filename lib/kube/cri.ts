// A client of a container runtime's CRI (Kubernetes' runtime.v1 RuntimeService and ImageService,
// over gRPC on a unix socket): what a kubelet calls to run pods, and CheckpointContainer, which
// checkpoints a container to an archive (KEP-2008). The protocol is the cri-api's api.proto, read at
// run time (scripts/install-containerd.sh puts it beside containerd), so the messages are plain
// objects in the proto's field names, camelCased; only the fields ferry uses are typed here.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { FerryError } from '../errors.ts';

export const CRI_PROTO = '/opt/ferry/containerd/cri-api/api.proto';

export interface KeyValue {
  key: string;
  value: string;
}
export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly?: boolean;
}
export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt?: number };
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: Record<string, unknown>;
}
export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  mounts?: Mount[];
  logPath?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: Record<string, unknown>;
}
export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt?: number };
  state: 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
  /** Nanoseconds since the epoch. */
  createdAt: number;
  startedAt: number;
  exitCode: number;
  reason: string;
  message: string;
  image: { image: string } | null;
  imageRef: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  logPath: string;
}

type Unary = (
  req: object,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: grpc.requestCallback<unknown>,
) => void;
type Service = Record<string, Unary> & grpc.Client;

const definitions = new Map<string, grpc.GrpcObject>();
function load(protoFile: string): grpc.GrpcObject {
  let d = definitions.get(protoFile);
  if (!d) {
    d = grpc.loadPackageDefinition(
      protoLoader.loadSync(protoFile, { keepCase: false, longs: Number, enums: String, defaults: true }),
    );
    definitions.set(protoFile, d);
  }
  return d;
}

export class CriClient {
  private readonly runtime: Service;
  private readonly images: Service;

  /** `socket`: the runtime's CRI endpoint, a unix socket path (containerd's grpc.address). */
  constructor(
    readonly socket: string,
    protoFile = CRI_PROTO,
  ) {
    const v1 = (load(protoFile).runtime as grpc.GrpcObject).v1 as Record<
      string,
      grpc.ServiceClientConstructor
    >;
    const creds = grpc.credentials.createInsecure();
    this.runtime = new v1.RuntimeService!(`unix://${socket}`, creds) as unknown as Service;
    this.images = new v1.ImageService!(`unix://${socket}`, creds) as unknown as Service;
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  private call<T>(svc: Service, method: string, req: object, timeoutMs = 120_000): Promise<T> {
    return new Promise((resolve, reject) => {
      svc[method]!(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err)
          reject(
            new FerryError(
              err.code === grpc.status.NOT_FOUND ? 'ContainerNotFound' : 'RuntimeFailed',
              `CRI ${method}: ${err.details || err.message}`,
            ),
          );
        else resolve(res as T);
      });
    });
  }

  version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call(this.runtime, 'Version', { version: 'v1' }, 10_000);
  }

  async pullImage(image: string): Promise<string> {
    const r = await this.call<{ imageRef: string }>(this.images, 'PullImage', { image: { image } });
    return r.imageRef;
  }

  async imagePresent(image: string): Promise<boolean> {
    const r = await this.call<{ image: unknown }>(this.images, 'ImageStatus', { image: { image } });
    return !!r.image;
  }

  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    const r = await this.call<{ podSandboxId: string }>(this.runtime, 'RunPodSandbox', { config });
    return r.podSandboxId;
  }

  async listPodSandboxes(): Promise<string[]> {
    const r = await this.call<{ items: { id: string }[] }>(this.runtime, 'ListPodSandbox', {});
    return r.items.map((i) => i.id);
  }

  async removeImage(image: string): Promise<void> {
    await this.call(this.images, 'RemoveImage', { image: { image } });
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call(this.runtime, 'StopPodSandbox', { podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call(this.runtime, 'RemovePodSandbox', { podSandboxId });
  }

  async createContainer(
    podSandboxId: string,
    config: ContainerConfig,
    sandboxConfig: PodSandboxConfig,
  ): Promise<string> {
    const r = await this.call<{ containerId: string }>(this.runtime, 'CreateContainer', {
      podSandboxId,
      config,
      sandboxConfig,
    });
    return r.containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call(this.runtime, 'StartContainer', { containerId });
  }

  async containerStatus(containerId: string): Promise<ContainerStatus> {
    const r = await this.call<{ status: ContainerStatus }>(this.runtime, 'ContainerStatus', {
      containerId,
    });
    return r.status;
  }

  /** Checkpoints a running container into the archive `location` (a tar the runtime writes). */
  async checkpointContainer(containerId: string, location: string, timeoutSeconds = 600): Promise<void> {
    await this.call(
      this.runtime,
      'CheckpointContainer',
      { containerId, location, timeout: timeoutSeconds },
      (timeoutSeconds + 30) * 1000,
    );
  }
}
