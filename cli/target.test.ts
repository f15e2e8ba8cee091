import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseTarget } from './target.ts';

const flags = { cluster: 'local', clusterChosen: false };
const none = { localUp: false, homeKubeconfig: false };

test('a command talks to Kubernetes or a local cluster as kubectl users expect', () => {
  assert.deepEqual(chooseTarget({ ...flags, kubeconfig: 'k' }, {}, { ...none, localUp: true }), {
    kind: 'kube',
    kubeconfig: 'k',
    context: undefined,
  });
  assert.deepEqual(chooseTarget({ ...flags, context: 'prod' }, {}, none), {
    kind: 'kube',
    kubeconfig: undefined,
    context: 'prod',
  });
  // --cluster wins over KUBECONFIG; KUBECONFIG over a local cluster that happens to be up.
  assert.deepEqual(chooseTarget({ cluster: 'test', clusterChosen: true }, { KUBECONFIG: 'k' }, none), {
    kind: 'local',
    cluster: 'test',
  });
  assert.deepEqual(chooseTarget(flags, { KUBECONFIG: 'k' }, { ...none, localUp: true }), { kind: 'kube' });
  assert.deepEqual(chooseTarget(flags, {}, { localUp: true, homeKubeconfig: true }), {
    kind: 'local',
    cluster: 'local',
  });
  assert.deepEqual(chooseTarget(flags, {}, { localUp: false, homeKubeconfig: true }), { kind: 'kube' });
  const lost = chooseTarget(flags, {}, none);
  assert.ok('error' in lost && /no local cluster is up .* no kubeconfig/.test(lost.error));
});
