// Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
// take the Lease when it is absent or its holder let it expire, renew it while holding it, and let
// 409 Conflict decide races between replicas.
import { ApiException, CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { LeaseBackend } from '../leader.ts';

export class KubeLease implements LeaseBackend {
  private readonly api: CoordinationV1Api;

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly name: string,
  ) {
    this.api = kc.makeApiClient(CoordinationV1Api);
  }

  async tryAcquireOrRenew(holder: string, durationMs: number): Promise<boolean> {
    const now = new Date();
    const seconds = Math.ceil(durationMs / 1000);
    let lease: V1Lease | undefined;
    try {
      lease = await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace });
    } catch (err) {
      if (!(err instanceof ApiException) || err.code !== 404) throw err;
    }
    try {
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace: this.namespace,
          body: {
            metadata: { name: this.name, namespace: this.namespace },
            spec: {
              holderIdentity: holder,
              leaseDurationSeconds: seconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
      const expired = renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < now.getTime();
      if (spec.holderIdentity !== holder && !expired) return false;
      const taking = spec.holderIdentity !== holder;
      await this.api.replaceNamespacedLease({
        name: this.name,
        namespace: this.namespace,
        body: {
          ...lease,
          spec: {
            ...spec,
            holderIdentity: holder,
            leaseDurationSeconds: seconds,
            renewTime: now,
            ...(taking ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
          },
        },
      });
      return true;
    } catch (err) {
      if (err instanceof ApiException && (err.code === 409 || err.code === 422)) return false; // another replica won
      throw err;
    }
  }

  async release(holder: string): Promise<void> {
    const lease = await this.api
      .readNamespacedLease({ name: this.name, namespace: this.namespace })
      .catch(() => undefined);
    if (lease?.spec?.holderIdentity !== holder) return;
    // An expired renewTime lets the next replica take over at once (client-go's ReleaseOnCancel).
    await this.api.replaceNamespacedLease({
      name: this.name,
      namespace: this.namespace,
      body: { ...lease, spec: { ...lease.spec, renewTime: new Date(0) } },
    });
  }
}
