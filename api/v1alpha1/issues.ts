// Schema errors as people read them: each names the field at fault in the dotted form kubectl
// uses ("spec.source.container: required field is missing"). Pure.
import type { z } from 'zod';

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
