// The Migration CRD, generated from the zod schema: a structural OpenAPI v3 schema with every
// field described (for `kubectl explain`), CEL rules for what JSON Schema cannot say, the status
// subresource and printer columns. `scripts/gen-crd.ts` writes it to crds/; a test fails on drift.
import { z } from 'zod';
import { MigrationSchema } from './migration.ts';

type Json = Record<string, unknown>;

const GROUP = 'ferry.dev';
const VERSION = 'v1alpha1';

/** Turns zod's JSON Schema into a Kubernetes structural schema. */
function structural(node: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || k === 'propertyNames') continue;
    if (k === 'const') {
      out.enum = [v];
      continue;
    }
    // .int() bounds are ±2^53: noise in a CRD.
    if ((k === 'minimum' || k === 'maximum') && Math.abs(v as number) >= Number.MAX_SAFE_INTEGER) continue;
    if (k === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(v as Record<string, Json>).map(([p, s]) => [p, structural(s)]),
      );
      continue;
    }
    if (
      k === 'items' ||
      (k === 'additionalProperties' && typeof v === 'object' && Object.keys(v as Json).length)
    ) {
      out[k] = structural(v as Json);
      continue;
    }
    if (k === 'additionalProperties') continue; // false or {}: structural schemas prune unknown fields
    out[k] = v;
  }
  return out;
}

export function migrationOpenApiSchema(): Json {
  const schema = structural(z.toJSONSchema(MigrationSchema, { io: 'input', unrepresentable: 'any' }) as Json);
  const props = schema.properties as Record<string, Json>;
  // The API server owns metadata's schema.
  props.metadata = { type: 'object', description: 'Standard object metadata.' };
  props.apiVersion = { type: 'string', description: 'ferry.dev/v1alpha1' };
  props.kind = { type: 'string', description: 'Migration' };
  const spec = props.spec!;
  spec.description = 'What to move, where, and how. Only abort may change after creation.';
  spec['x-kubernetes-validations'] = [
    {
      rule: '!has(self.target.node) || self.source.node != self.target.node',
      message: 'target.node must differ from source.node',
    },
    {
      rule: 'self.source == oldSelf.source && self.target == oldSelf.target && self.strategy == oldSelf.strategy && self.timeouts == oldSelf.timeouts && self.sourcePolicy == oldSelf.sourcePolicy',
      message: 'only spec.abort can change after the migration was created',
    },
  ];
  const target = (spec.properties as Record<string, Json>).target!;
  target['x-kubernetes-validations'] = [
    {
      rule: 'has(self.node) != has(self.nodeSelector)',
      message: 'give exactly one of target.node and target.nodeSelector',
    },
  ];
  (props.status as Json).description ??= 'What the controller observed.';
  // One condition per type, merged by type under server-side apply (metav1.Condition's contract).
  const conditions = ((props.status as Json).properties as Record<string, Json>).conditions!;
  conditions['x-kubernetes-list-type'] = 'map';
  conditions['x-kubernetes-list-map-keys'] = ['type'];
  schema.description = 'Moves a running container to another node with its memory, files and connections.';
  return schema;
}

export function migrationCrd(): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `migrations.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: 'Migration',
        listKind: 'MigrationList',
        plural: 'migrations',
        singular: 'migration',
        shortNames: ['mig'],
        categories: ['ferry'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
            { name: 'Source', type: 'string', jsonPath: '.spec.source.node' },
            { name: 'Target', type: 'string', jsonPath: '.status.migrationState.targetNode' },
            {
              name: 'Mode',
              type: 'string',
              description: 'the strategy used',
              jsonPath: '.status.migrationState.mode',
            },
            {
              name: 'Downtime',
              type: 'string',
              description: 'time frozen',
              jsonPath: '.status.migrationState.downtime',
            },
            { name: 'Pod', type: 'string', priority: 1, jsonPath: '.spec.source.pod' },
            { name: 'Container', type: 'string', priority: 1, jsonPath: '.spec.source.container' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: migrationOpenApiSchema() },
        },
      ],
    },
  };
}
