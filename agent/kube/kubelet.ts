// The kubelet's checkpoint API (KEP-2008, ContainerCheckpoint, beta since Kubernetes 1.30):
// POST https://NODE:10250/checkpoint/{namespace}/{pod}/{container}?timeout=S checkpoints one
// container through the runtime (CRI-O, containerd 2.x) and answers {"items": [ARCHIVE]}, the
// archive's path on that node (/var/lib/kubelet/checkpoints/checkpoint-POD_NS-CONTAINER-TIME.tar).
// The caller needs `create` on nodes/checkpoint (charts/ferry agent ClusterRole).
import { request } from 'node:https';
import { FerryError } from '../../lib/errors.ts';

export interface KubeletEndpoint {
  address: string;
  port?: number;
  /** Bearer token: the agent's service account token. Never logged. */
  token: string;
  /** CA of the kubelet's serving certificate; without it, the system's CAs. */
  ca?: string | Buffer;
  /** Opt-in for kubelets with self-signed serving certificates (kubeadm's default). */
  insecureSkipTLSVerify?: boolean;
}

export interface CheckpointRequest {
  namespace: string;
  pod: string;
  container: string;
  timeoutSeconds?: number;
}

/** What a kubelet answer means, as the error ferry reports. Pure. */
export function kubeletError(status: number, body: string, what: string): FerryError {
  const said = body.trim().split('\n')[0]?.slice(0, 300) ?? '';
  if (status === 401 || status === 403)
    return new FerryError(
      'AuthRefused',
      `the kubelet refused to checkpoint ${what} (${status} ${said}): the agent's service account needs create on nodes/checkpoint`,
    );
  if (status === 404 && /page not found/.test(said))
    return new FerryError(
      'FeatureUnsupported',
      `the kubelet has no checkpoint API: enable the ContainerCheckpoint feature gate (Kubernetes >= 1.25, beta in 1.30)`,
    );
  if (status === 404)
    return new FerryError('ContainerNotFound', `the kubelet cannot checkpoint ${what}: ${said}`);
  if (status >= 500)
    return new FerryError('CriuDumpFailed', `the kubelet's checkpoint of ${what} failed: ${said}`);
  return new FerryError('Internal', `the kubelet answered ${status} to the checkpoint of ${what}: ${said}`);
}

/** Checkpoints a container through its node's kubelet; resolves to the archive's path on that node. */
export function checkpointContainer(kubelet: KubeletEndpoint, req: CheckpointRequest): Promise<string> {
  const what = `${req.namespace}/${req.pod}/${req.container}`;
  const enc = encodeURIComponent;
  const query = req.timeoutSeconds ? `?timeout=${req.timeoutSeconds}` : '';
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: kubelet.address,
        port: kubelet.port ?? 10250,
        method: 'POST',
        path: `/checkpoint/${enc(req.namespace)}/${enc(req.pod)}/${enc(req.container)}${query}`,
        headers: { authorization: `Bearer ${kubelet.token}`, accept: 'application/json' },
        ...(kubelet.ca ? { ca: kubelet.ca } : {}),
        rejectUnauthorized: !kubelet.insecureSkipTLSVerify,
        // The runtime dumps the container's whole memory before answering.
        timeout: ((req.timeoutSeconds ?? 600) + 30) * 1000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(kubeletError(res.statusCode ?? 0, body, what));
          try {
            const items = (JSON.parse(body) as { items?: unknown }).items;
            if (!Array.isArray(items) || typeof items[0] !== 'string') throw new Error('no items');
            resolve(items[0]);
          } catch {
            reject(
              new FerryError(
                'Internal',
                `the kubelet's answer for ${what} names no archive: ${body.slice(0, 200)}`,
              ),
            );
          }
        });
      },
    );
    r.on('timeout', () => r.destroy(new Error('no answer in time')));
    r.on('error', (err) =>
      reject(
        new FerryError('TransferFailed', `cannot reach the kubelet at ${kubelet.address}: ${err.message}`),
      ),
    );
    r.end();
  });
}
