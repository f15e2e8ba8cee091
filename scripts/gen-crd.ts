// Writes crds/ferry.dev_migrations.yaml, and the Helm chart's copy of it, from the zod schema
// (api/v1alpha1/crd.ts). Never edit the YAML by hand: change the schema and run
// `node --import tsx scripts/gen-crd.ts`.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { migrationCrd } from '../api/v1alpha1/crd.ts';

export const CRD_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../crds/ferry.dev_migrations.yaml',
);
/** The chart reads the CRD through .Files, which cannot reach outside the chart's folder. */
export const CHART_CRD_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../charts/ferry/files/ferry.dev_migrations.yaml',
);
export const renderCrd = (): string =>
  `# Generated from api/v1alpha1 by scripts/gen-crd.ts. Do not edit by hand.\n${stringify(migrationCrd(), { lineWidth: 0 })}`;

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const file of [CRD_FILE, CHART_CRD_FILE]) {
    await writeFile(file, renderCrd());
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}
