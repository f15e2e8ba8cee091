import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { CRD_FILE, renderCrd } from '../../scripts/gen-crd.ts';
import { migrationOpenApiSchema } from './crd.ts';

type Json = Record<string, unknown>;

/** Every schema node below the root, with its path. */
function* walk(node: Json, at = ''): Generator<[string, Json]> {
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, Json>)) {
    yield [`${at}.${name}`, child];
    yield* walk(child, `${at}.${name}`);
  }
  if (node.items) yield* walk(node.items as Json, `${at}[]`);
}

test('crds/ matches the zod schema (regenerate with scripts/gen-crd.ts)', async () => {
  assert.equal(
    await readFile(CRD_FILE, 'utf8'),
    renderCrd(),
    'crds/ferry.dev_migrations.yaml drifted from api/v1alpha1',
  );
});

test('every field has a description, so kubectl explain helps', () => {
  const missing = [...walk(migrationOpenApiSchema())].filter(([, n]) => !n.description).map(([p]) => p);
  assert.deepEqual(missing, []);
});

test('the schema is structural: every node has a type, no properties with additionalProperties', () => {
  for (const [p, n] of walk(migrationOpenApiSchema())) {
    assert.ok(typeof n.type === 'string', `${p} has no type`);
    assert.ok(!(n.properties && n.additionalProperties), `${p} mixes properties and additionalProperties`);
    for (const bad of ['anyOf', 'oneOf', 'allOf', '$ref', 'const'])
      assert.ok(!(bad in n), `${p} uses ${bad}`);
  }
});

test('defaults are in the schema, so the API server fills them like the CLI does', () => {
  const spec = (migrationOpenApiSchema().properties as Record<string, Json>).spec as Json;
  const strategy = (spec.properties as Record<string, Json>).strategy as Json;
  assert.equal(((strategy.properties as Record<string, Json>).mode as Json).default, 'Auto');
  assert.deepEqual(((strategy.properties as Record<string, Json>).mode as Json).enum, [
    'Auto',
    'StopAndCopy',
    'PreCopy',
    'PostCopy',
  ]);
});
