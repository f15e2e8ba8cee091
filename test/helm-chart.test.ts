// The Helm chart (charts/ferry), tested without Helm (none runs on these machines): every file
// parses, values.schema.json accepts the defaults and refuses bad values, the chart's CRD is the
// generated one, and the objects rendered by test/helm-render (Go text/template + sprig, as Helm's
// engine) have what the chart promises.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import ssh2 from 'ssh2';
import { parse, parseAllDocuments } from 'yaml';
import { exec } from '../lib/exec.ts';
import { renderCrd } from '../scripts/gen-crd.ts';
import { agentConfigFromEnv } from '../agent/kube/node-env.ts';
import { CHART_DIR, mergeValues, renderChart } from './helm-render/render.ts';

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [k: string]: unknown;
};

const defaults = parse(await readFile(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<
  string,
  unknown
>;
const schema = JSON.parse(await readFile(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

async function render(over: unknown = {}, existing?: unknown[]) {
  const values = mergeValues(defaults, over);
  assert.ok(validate(values), JSON.stringify(validate.errors));
  const files = await renderChart({ values, ...(existing ? { existing } : {}) });
  const objects: Obj[] = [];
  for (const [file, text] of Object.entries(files)) {
    if (file.endsWith('NOTES.txt')) continue;
    // YAML 1.1, as Kubernetes reads manifests (sigs.k8s.io/yaml): 0400 is octal there.
    for (const doc of parseAllDocuments(text, { version: '1.1' })) {
      assert.deepEqual(doc.errors, [], `${file} does not parse as YAML`);
      const o = doc.toJS() as Obj | null;
      if (o) objects.push(o);
    }
  }
  const find = (kind: string, suffix = '') => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name.endsWith(suffix));
    assert.ok(o, `no ${kind} *${suffix} rendered`);
    return o as Obj & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  return { files, objects, find };
}

describe('the Helm chart', () => {
  it('has files that parse: Chart.yaml, values, the schema and the Grafana dashboard', async () => {
    const chart = parse(await readFile(path.join(CHART_DIR, 'Chart.yaml'), 'utf8')) as Record<string, string>;
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'ferry');
    const grafana = JSON.parse(
      await readFile(path.join(CHART_DIR, 'files/grafana-dashboard.json'), 'utf8'),
    ) as {
      panels: { targets: { expr: string }[] }[];
    };
    // Every series the dashboard asks for is one the controller exports (its own, or prom-client's
    // process metrics under the prefix it gives them).
    const exported = [
      ...[...(await readFile('controller/metrics.ts', 'utf8')).matchAll(/name: '(ferry_\w+)'/g)].map(
        (m) => m[1]!,
      ),
      'ferry_controller_process',
      'ferry_controller_nodejs',
    ];
    for (const expr of grafana.panels.flatMap((p) => p.targets.map((t) => t.expr)))
      for (const [name] of expr.matchAll(/ferry_\w+/g))
        assert.ok(
          exported.some((e) => name === e || name.startsWith(`${e}_`)),
          `${name} is not a metric ferry exports`,
        );
    assert.ok((await readdir(path.join(CHART_DIR, 'templates'))).includes('NOTES.txt'));
  });

  it('carries the generated CRD, unchanged', async () => {
    assert.equal(
      await readFile(path.join(CHART_DIR, 'files/ferry.dev_migrations.yaml'), 'utf8'),
      renderCrd(),
    );
  });

  it('has a values schema that accepts the defaults and refuses bad values, naming the field', () => {
    assert.ok(validate(defaults), JSON.stringify(validate.errors));
    const bad: [unknown, string][] = [
      [{ controller: { replicas: 0 } }, '/controller/replicas'],
      [{ controller: { replicass: 2 } }, '/controller'],
      [{ agent: { sshPort: 70000 } }, '/agent/sshPort'],
      [{ agent: { imagesDir: 'var/lib/ferry' } }, '/agent/imagesDir'],
      [{ image: { pullPolicy: 'Sometimes' } }, '/image/pullPolicy'],
      [{ redis: { enabled: false, externalUrl: '' } }, '/redis/externalUrl'],
      [{ redis: { externalUrl: 'http://redis:6379' } }, '/redis/externalUrl'],
      [{ redis: { persistence: { size: 'big' } } }, '/redis/persistence/size'],
      [{ metrics: { serviceMonitor: { interval: 'often' } } }, '/metrics/serviceMonitor/interval'],
      [{ controller: { resources: { limits: { memory: 'lots' } } } }, '/controller/resources/limits/memory'],
      [{ unknownTopLevel: true }, ''],
    ];
    for (const [over, field] of bad) {
      assert.equal(validate(mergeValues(defaults, over)), false, `accepted ${JSON.stringify(over)}`);
      assert.ok(
        validate.errors!.some((e) => e.instancePath === field),
        `${JSON.stringify(over)}: errors name ${validate.errors!.map((e) => e.instancePath).join(', ')}`,
      );
    }
  });

  it('renders, with the default values, every object the chart promises', async () => {
    const { files, objects, find } = await render();
    const kinds = objects.map((o) => o.kind).sort();
    for (const k of [
      'CustomResourceDefinition',
      'DaemonSet',
      'Deployment',
      'ClusterRole',
      'Role',
      'Secret',
      'Service',
    ])
      assert.ok(kinds.includes(k), `no ${k}`);
    for (const o of objects)
      if (
        !['CustomResourceDefinition', 'MutatingWebhookConfiguration'].includes(o.kind) &&
        !o.kind.startsWith('Cluster')
      )
        assert.equal(o.metadata.namespace, 'ferry-system', `${o.kind} ${o.metadata.name} has no namespace`);

    // Controller: two replicas, leader election, restricted pod security.
    const ctl = find('Deployment', '-controller');
    assert.equal(ctl.spec.replicas, 2);
    const ctlPod = ctl.spec.template.spec;
    assert.equal(ctlPod.securityContext.runAsNonRoot, true);
    assert.equal(ctlPod.securityContext.seccompProfile.type, 'RuntimeDefault');
    const ctlC = ctlPod.containers[0];
    assert.deepEqual(ctlC.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.ok(ctlC.args.includes('--in-cluster'));
    assert.ok(ctlC.args.includes('--lease-namespace=ferry-system'));
    assert.equal(ctlPod.serviceAccountName, ctl.metadata.name);
    assert.deepEqual(find('Role', '-leader').rules, [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    ]);

    // Agent: privileged, host PID and network, the runtime's state and the images on host paths.
    const ds = find('DaemonSet', '-agent');
    const pod = ds.spec.template.spec;
    assert.equal(pod.hostPID, true);
    assert.equal(pod.hostNetwork, true);
    const agent = pod.containers[0];
    assert.equal(agent.securityContext.privileged, true);
    assert.deepEqual(agent.ports, [{ name: 'ssh', containerPort: 2222, hostPort: 2222 }]);
    const hostPaths = pod.volumes.filter((v: any) => v.hostPath).map((v: any) => v.hostPath.path); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.ok(hostPaths.includes('/run/containerd/runc/k8s.io'));
    assert.ok(hostPaths.includes('/var/lib/ferry/images'));
    const keyVolume = pod.volumes.find((v: any) => v.secret); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(keyVolume.secret.defaultMode, 0o400);
    assert.equal(pod.serviceAccountName, ds.metadata.name);
    const env = Object.fromEntries(agent.env.map((e: any) => [e.name, e])); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(env.FERRY_NODE.valueFrom.fieldRef.fieldPath, 'spec.nodeName');
    assert.equal(env.FERRY_ADDRESS.valueFrom.fieldRef.fieldPath, 'status.hostIP');
    // The Redis password reaches pods through a Secret, never as a literal value.
    assert.equal(env.REDIS_PASSWORD.valueFrom.secretKeyRef.key, 'redis-password');
    assert.match(
      env.FERRY_REDIS_URL.value,
      /^redis:\/\/:\$\(REDIS_PASSWORD\)@ferry-redis\.ferry-system\.svc:6379\/0$/,
    );

    // RBAC: named verbs only, the agent's limited to the kubelet checkpoint API and reading pods.
    for (const role of objects.filter((o) => o.kind.endsWith('Role')) as (Obj & {
      rules: { verbs: string[]; resources: string[] }[];
    })[])
      for (const rule of role.rules) {
        assert.ok(
          !rule.verbs.includes('*') && !rule.resources.includes('*'),
          `${role.metadata.name} has a wildcard`,
        );
      }
    assert.deepEqual(
      find('ClusterRole', '-agent').rules.map((r: any) => `${r.resources.join()}:${r.verbs.join()}`), // eslint-disable-line @typescript-eslint/no-explicit-any
      ['nodes/checkpoint:create', 'pods:get'],
    );
    assert.equal(objects.filter((o) => o.kind === 'ServiceAccount').length, 2);

    // The agents' SSH key: generated, and an SSH key ssh2 can use as host and client key.
    const key = Buffer.from(find('Secret', '-ssh').data['ssh-privatekey'], 'base64').toString();
    const parsed = ssh2.utils.parseKey(key);
    assert.ok(!(parsed instanceof Error), String(parsed));
    assert.equal(find('Secret', '-ssh').metadata.annotations!['helm.sh/resource-policy'], 'keep');

    // The StatefulSet pods' admission webhook: scoped to StatefulSet pods, served over TLS by the
    // controller's Service with a certificate its caBundle vouches for.
    const hook = find('MutatingWebhookConfiguration').webhooks[0];
    assert.equal(hook.failurePolicy, 'Fail');
    assert.deepEqual(hook.rules[0].operations, ['CREATE']);
    assert.deepEqual(hook.objectSelector.matchExpressions[0], {
      key: 'statefulset.kubernetes.io/pod-name',
      operator: 'Exists',
    });
    assert.equal(hook.clientConfig.service.name, ctl.metadata.name);
    assert.equal(hook.clientConfig.service.path, '/mutate-pods');
    const tls = find('Secret', '-webhook');
    assert.equal(hook.clientConfig.caBundle, tls.data['ca.crt']);
    const pem = (k: string) => Buffer.from(tls.data[k], 'base64').toString();
    const served = new X509Certificate(pem('tls.crt'));
    assert.ok(served.verify(new X509Certificate(pem('ca.crt')).publicKey), 'signed by its CA');
    assert.match(served.subjectAltName ?? '', /DNS:ferry-controller\.ferry-system\.svc/);
    assert.ok(ctlC.args.includes('--webhook-cert=/etc/ferry/webhook/tls.crt'));
    assert.ok(
      find('ClusterRole', '-controller').rules.some(
        (r: any) => r.resources.includes('pods') && r.verbs.includes('update'), // eslint-disable-line @typescript-eslint/no-explicit-any
      ),
      'the controller updates pods (adoption, the volumes gate)',
    );

    // Redis, bundled: a Deployment, a Service and a generated password; what it holds goes to its
    // append-only file on a claim of its own, one pod at a time.
    const redis = find('Deployment', '-redis');
    assert.ok(find('Service', '-redis'));
    assert.equal(Buffer.from(find('Secret', '-redis').data['redis-password'], 'base64').length, 32);
    const redisArgs = redis.spec.template.spec.containers[0].args as string[];
    assert.equal(redisArgs[redisArgs.indexOf('--appendonly') + 1], 'yes');
    assert.equal(redis.spec.strategy.type, 'Recreate');
    const claim = find('PersistentVolumeClaim', '-redis-data');
    assert.equal(claim.spec.resources.requests.storage, '1Gi');
    assert.equal(claim.spec.storageClassName, undefined, 'the cluster default');
    assert.deepEqual(redis.spec.template.spec.volumes, [
      { name: 'data', persistentVolumeClaim: { claimName: claim.metadata.name } },
    ]);

    // The CRD: the generated one, kept on uninstall.
    const crd = find('CustomResourceDefinition');
    assert.equal(crd.metadata.annotations!['helm.sh/resource-policy'], 'keep');
    const generated = parse(renderCrd()) as Obj;
    const { annotations: _a, labels: _l, ...meta } = crd.metadata as Record<string, unknown>;
    assert.deepEqual({ ...crd, metadata: meta }, generated);

    assert.ok(!objects.some((o) => o.kind === 'ServiceMonitor'), 'ServiceMonitor is optional');
    const notes = Object.entries(files).find(([f]) => f.endsWith('NOTES.txt'))![1];
    assert.match(notes, /kubectl apply -f migration\.yaml/);
    assert.match(notes, /port-forward svc\/ferry-controller 9477/);
  });

  it('starts the controller and agent with flags their programs accept', async () => {
    const { find } = await render();
    const run = (role: string, args: string[]) =>
      exec('node', ['--import', 'tsx', `${role}/main.ts`, ...args, '--help']);
    const ctl = await run(
      'controller',
      find('Deployment', '-controller').spec.template.spec.containers[0].args.slice(1),
    );
    assert.equal(ctl.code, 0, ctl.stderr);
    const agent = await run(
      'agent',
      find('DaemonSet', '-agent').spec.template.spec.containers[0].args.slice(1),
    );
    assert.equal(agent.code, 0, agent.stderr);
  });

  it('keeps the SSH key, the Redis password and the webhook’s certificate across an upgrade', async () => {
    const first = await render();
    const ssh = first.find('Secret', '-ssh');
    const redis = first.find('Secret', '-redis');
    const hook = first.find('Secret', '-webhook');
    const again = await render({}, [ssh, redis, hook]);
    assert.deepEqual(again.find('Secret', '-ssh').data, ssh.data);
    assert.deepEqual(again.find('Secret', '-redis').data, redis.data);
    assert.deepEqual(again.find('Secret', '-webhook').data, hook.data);
    assert.equal(
      again.find('MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle,
      hook.data['ca.crt'],
    );
    // A fresh install generates new ones.
    assert.notDeepEqual((await render()).find('Secret', '-ssh').data, ssh.data);
  });

  it('keeps Redis on an emptyDir when persistence is off, and on the named StorageClass when asked', async () => {
    const ephemeral = await render({ redis: { persistence: { enabled: false } } });
    assert.ok(!ephemeral.objects.some((o) => o.kind === 'PersistentVolumeClaim'));
    assert.deepEqual(ephemeral.find('Deployment', '-redis').spec.template.spec.volumes, [
      { name: 'data', emptyDir: {} },
    ]);
    const fast = await render({ redis: { persistence: { size: '5Gi', storageClass: 'fast-ssd' } } });
    const claim = fast.find('PersistentVolumeClaim', '-redis-data');
    assert.deepEqual(
      [claim.spec.storageClassName, claim.spec.resources.requests.storage],
      ['fast-ssd', '5Gi'],
    );
  });

  it('follows its switches: CRD, external Redis, existing SSH secret, webhook, ServiceMonitor, Grafana', async () => {
    const off = await render({
      crds: { install: false },
      redis: { enabled: false, externalUrl: 'redis://redis.infra:6379/0' },
      ssh: { existingSecret: 'my-ssh' },
      webhook: { enabled: false },
    });
    assert.ok(!off.objects.some((o) => o.kind === 'MutatingWebhookConfiguration'));
    assert.ok(
      !off
        .find('Deployment', '-controller')
        .spec.template.spec.containers[0].args.some((a: string) => a.startsWith('--webhook')),
    );
    assert.ok(!off.objects.some((o) => o.kind === 'CustomResourceDefinition'));
    assert.ok(!off.objects.some((o) => o.metadata.name.includes('redis')));
    assert.ok(!off.objects.some((o) => o.kind === 'Secret'));
    const pod = off.find('DaemonSet').spec.template.spec;
    assert.equal(pod.volumes.find((v: any) => v.secret).secret.secretName, 'my-ssh'); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(
      pod.containers[0].env.find((e: any) => e.name === 'FERRY_REDIS_URL'), // eslint-disable-line @typescript-eslint/no-explicit-any
      { name: 'FERRY_REDIS_URL', value: 'redis://redis.infra:6379/0' },
    );
    assert.match(Object.entries(off.files).find(([f]) => f.endsWith('NOTES.txt'))![1], /crds\.install=false/);

    // The runtime decides where checkpoint images are imported: containerd's socket or CRI-O's store.
    const crio = (await render({ agent: { runtime: { name: 'cri-o', runcRoot: '/run/runc' } } })).find(
      'DaemonSet',
    ).spec.template.spec;
    const crioMounts = crio.containers[0].volumeMounts.map((v: { mountPath: string }) => v.mountPath);
    assert.ok(crioMounts.includes('/var/lib/containers/storage') && crioMounts.includes('/run/runc'));
    assert.ok(!crioMounts.includes('/run/containerd/containerd.sock'));
    assert.deepEqual(
      crio.containers[0].env.find((e: { name: string }) => e.name === 'FERRY_RUNTIME'),
      { name: 'FERRY_RUNTIME', value: 'cri-o' },
    );

    // GPU nodes: the node's /dev and its driver's folder, read-only, and the agent told where.
    assert.ok(!crioMounts.includes('/host/dev'), 'no GPU mounts unless asked for');
    const driver = '/run/nvidia/driver/usr/lib/x86_64-linux-gnu';
    const gpu = (await render({ agent: { gpu: { enabled: true, driverLibDir: driver } } })).find('DaemonSet')
      .spec.template.spec;
    const gpuMounts = Object.fromEntries(
      gpu.containers[0].volumeMounts.map((v: { name: string; mountPath: string; readOnly?: boolean }) => [
        v.mountPath,
        { name: v.name, readOnly: v.readOnly },
      ]),
    );
    assert.deepEqual(gpuMounts['/host/dev'], { name: 'host-dev', readOnly: true });
    assert.deepEqual(gpuMounts['/host/nvidia'], { name: 'nvidia-driver', readOnly: true });
    const hostPathOf = (name: string) =>
      gpu.volumes.find((v: { name: string }) => v.name === name).hostPath.path;
    assert.equal(hostPathOf('host-dev'), '/dev');
    assert.equal(hostPathOf('nvidia-driver'), driver);
    const gpuEnv = Object.fromEntries(
      gpu.containers[0].env.map((e: { name: string; value?: string }) => [e.name, e.value]),
    );
    assert.equal(gpuEnv.FERRY_LIBCUDA, '/host/nvidia/libcuda.so.1');
    assert.equal(
      agentConfigFromEnv({
        ...gpuEnv,
        FERRY_NODE: 'n1',
        FERRY_ADDRESS: '10.0.0.1',
        FERRY_REDIS_URL: 'redis://r:6379',
      }).gpuDevDir,
      '/host/dev',
    );

    const unkept = await render({ crds: { keep: false } });
    assert.equal(unkept.find('CustomResourceDefinition').metadata.annotations, undefined);

    const on = await render({
      metrics: { serviceMonitor: { enabled: true }, grafanaDashboard: { enabled: true } },
    });
    assert.deepEqual(on.find('ServiceMonitor').spec.endpoints, [
      { port: 'http', path: '/metrics', interval: '30s' },
    ]);
    const dashboard = JSON.parse(on.find('ConfigMap', '-grafana-dashboard').data['ferry.json']) as {
      uid: string;
    };
    assert.equal(dashboard.uid, 'ferry-migrations');
  });

  it('refuses to render an external Redis without its address, saying which value', async () => {
    await assert.rejects(
      renderChart({ values: mergeValues(defaults, { redis: { enabled: false } }) }),
      /redis\.externalUrl is required/,
    );
  });
});
