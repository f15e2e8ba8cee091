import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifest } from './manifest.ts';

const good = `apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata:
  name: move-web
spec:
  source: { node: node1, container: web }
  target: { node: node2 }
`;

test('a valid manifest parses with the default namespace', () => {
  const [m] = parseManifest(good);
  assert.equal(m?.metadata.namespace, 'default');
  assert.equal(m?.spec.target.node, 'node2');
});

test('a missing field is named', () => {
  const bad = good.replace('container: web', 'containr: web');
  assert.throws(() => parseManifest(bad), /spec\.source\.container: required field is missing/);
  assert.throws(() => parseManifest(bad), /spec\.source: unknown field\(s\) "containr"/);
});

test('the same node as source and target is refused on target.node', () => {
  assert.throws(
    () => parseManifest(good.replace('node: node2', 'node: node1')),
    /spec\.target\.node: target\.node must differ/,
  );
});

test('a wrong apiVersion or kind is named', () => {
  assert.throws(() => parseManifest(good.replace('v1alpha1', 'v9')), /apiVersion/);
  assert.throws(() => parseManifest(good.replace('kind: Migration', 'kind: Pod')), /kind/);
});

test('an invalid name is refused with the DNS-1123 rule', () => {
  assert.throws(
    () => parseManifest(good.replace('move-web', 'Move_Web')),
    /metadata\.name: must be a DNS-1123 label/,
  );
});

test('broken YAML says so', () => {
  assert.throws(() => parseManifest('a: [1, 2'), /not valid YAML/);
});

test('a user-supplied status is refused', () => {
  assert.throws(
    () => parseManifest(good + 'status:\n  phase: Succeeded\n  phaseTransitionTimestamps: []\n'),
    /only the controller writes status/,
  );
});

test('an unknown mode is refused on spec.strategy.mode', () => {
  assert.throws(
    () => parseManifest(good + '  strategy: { mode: Teleport }\n'),
    /spec\.strategy\.mode: .*"Auto"\|"StopAndCopy"\|"PreCopy"\|"PostCopy"/,
  );
});

test('negative, malformed and absurd durations are refused with the field named', () => {
  assert.throws(
    () => parseManifest(good + '  timeouts: { progressTimeout: -5s }\n'),
    /spec\.timeouts\.progressTimeout: progressTimeout: a duration like/,
  );
  assert.throws(
    () => parseManifest(good + '  timeouts: { progressTimeout: 100h }\n'),
    /spec\.timeouts\.progressTimeout: progressTimeout: must be between 1s and 24h/,
  );
  assert.throws(
    () => parseManifest(good + '  strategy: { maxDowntime: soon }\n'),
    /spec\.strategy\.maxDowntime/,
  );
});

test('a bandwidth below 1Mi per second is refused', () => {
  assert.throws(
    () => parseManifest(good + '  strategy: { bandwidth: 10Ki }\n'),
    /spec\.strategy\.bandwidth: bandwidth: at least 1Mi per second/,
  );
});

test('a target with both node and nodeSelector is refused', () => {
  assert.throws(
    () =>
      parseManifest(
        good.replace('target: { node: node2 }', 'target: { node: node2, nodeSelector: { zone: b } }'),
      ),
    /spec\.target: give exactly one of target\.node and target\.nodeSelector/,
  );
});

test('defaults are filled in like the API server would', () => {
  const [m] = parseManifest(good);
  assert.equal(m?.spec.strategy.mode, 'Auto');
  assert.equal(m?.spec.timeouts.progressTimeout, '150s');
  assert.equal(m?.spec.sourcePolicy, 'Delete');
  assert.equal(m?.spec.abort, false);
});

test('the examples parse', async () => {
  const { readFile } = await import('node:fs/promises');
  for (const f of ['examples/migration.yaml', 'examples/pod-migration.yaml']) {
    const [m] = parseManifest(await readFile(f, 'utf8'), f);
    assert.equal(m?.kind, 'Migration', f);
  }
  const [pod] = parseManifest(await readFile('examples/pod-migration.yaml', 'utf8'));
  assert.equal(pod?.spec.source.pod, 'cache-0');
});
