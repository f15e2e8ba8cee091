// Reads a Migration manifest (YAML or JSON) and validates it with the API schema. Errors name the
// field at fault, in the dotted form kubectl uses ("spec.source.container: ..."). Pure.
import { parseAllDocuments } from 'yaml';
import { formatIssues } from '../api/v1alpha1/issues.ts';
import { MigrationSchema, type Migration } from '../api/v1alpha1/migration.ts';

export { formatIssues };

export class ManifestError extends Error {}

export function parseManifest(text: string, source = 'input'): Migration[] {
  const docs = parseAllDocuments(text);
  const out: Migration[] = [];
  for (const [n, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    if (doc.errors.length)
      throw new ManifestError(`${source}: document ${n + 1} is not valid YAML: ${doc.errors[0]!.message}`);
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (err) {
      // yaml refuses alias bombs ("Excessive alias count") here, after parsing.
      throw new ManifestError(`${source}: document ${n + 1} is not valid YAML: ${(err as Error).message}`);
    }
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
