// Reads a Migration manifest (YAML or JSON) and validates it with the API schema. Errors name the
// field at fault, in the dotted form kubectl uses ("spec.source.container: ..."). Pure.
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { MigrationSchema, type Migration } from '../api/v1alpha1/migration.ts';

export class ManifestError extends Error {}

function fieldPath(path: PropertyKey[]): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    '',
  );
}

export function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const where = fieldPath(i.path) || '(document)';
      // Name unknown fields themselves, like kubectl's "unknown field" errors.
      if (i.code === 'unrecognized_keys')
        return `${where ? `${where}: ` : ''}unknown field(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`;
      if (i.code === 'invalid_type' && /received undefined/.test(i.message))
        return `${where}: required field is missing (${i.expected})`;
      return `${where}: ${i.message}`;
    })
    .join('\n');
}

export function parseManifest(text: string, source = 'input'): Migration[] {
  const docs = parseAllDocuments(text);
  const out: Migration[] = [];
  for (const [n, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    if (doc.errors.length)
      throw new ManifestError(`${source}: document ${n + 1} is not valid YAML: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const parsed = MigrationSchema.safeParse(value);
    if (!parsed.success)
      throw new ManifestError(
        `${source}: document ${n + 1} is not a valid Migration:\n${formatIssues(parsed.error.issues)}`,
      );
    if (parsed.data.status)
      throw new ManifestError(
        `${source}: status: only the controller writes status; remove it from the manifest`,
      );
    out.push(parsed.data);
  }
  if (!out.length) throw new ManifestError(`${source}: no Migration found`);
  return out;
}
