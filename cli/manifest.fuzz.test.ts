// Fuzzing the manifest reader (fast-check): random documents, random text, alias bombs and
// mutations of a valid Migration never crash it; every refusal is a ManifestError naming where.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ManifestError, parseManifest } from './manifest.ts';

const valid = {
  apiVersion: 'ferry.dev/v1alpha1',
  kind: 'Migration',
  metadata: { name: 'move-web', namespace: 'default' },
  spec: {
    source: { node: 'node1', container: 'web' },
    target: { node: 'node2' },
    strategy: { mode: 'Auto', maxDowntime: '2s', bandwidth: '100Mi', compression: 'Auto' },
    timeouts: { progressTimeout: '2m', completionTimeoutPerGiB: '10m' },
    sourcePolicy: 'Delete',
  },
};

/** Every path to a value in a document, e.g. ['spec', 'source', 'node']. */
function paths(v: unknown, at: string[] = []): string[][] {
  if (typeof v !== 'object' || v === null) return [at];
  return [at, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...at, k]))];
}

function mutate(doc: unknown, path: string[], how: 'delete' | 'replace' | 'extra', value: unknown): unknown {
  const copy = structuredClone(doc) as Record<string, unknown>;
  if (!path.length) return how === 'replace' ? value : copy;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = path.at(-1)!;
  if (how === 'delete') delete o[last];
  else if (how === 'replace') o[last] = value;
  else if (typeof o[last] === 'object' && o[last] !== null)
    (o[last] as Record<string, unknown>).zzUnknown = value;
  else o[last] = { zzUnknown: value };
  return copy;
}

/** Parses; a refusal must be a ManifestError, and it is returned. */
function attempt(text: string): ManifestError | undefined {
  try {
    parseManifest(text, 'fuzz');
    return undefined;
  } catch (err) {
    assert.ok(err instanceof ManifestError, `not a ManifestError: ${String(err)}`);
    assert.match(err.message, /^fuzz: /);
    return err;
  }
}

const RUNS = { numRuns: 500, seed: 20261127 };

test('the document the mutations start from is valid', () =>
  assert.equal(attempt(stringify(valid)), undefined));

test('random documents are accepted or refused with a ManifestError, never a crash', () => {
  fc.assert(
    fc.property(fc.anything({ maxDepth: 4 }), (doc) => {
      attempt(stringify(doc));
    }),
    RUNS,
  );
});

test('random text, and YAML built to exhaust the parser, are refused cleanly', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (text) => void attempt(text)),
    RUNS,
  );
  // A billion-laughs alias bomb, a deep nesting, and a huge number.
  const bomb = [
    'a: &a [x, x, x, x, x, x, x, x, x]',
    ...Array.from({ length: 9 }, (_, i) => {
      const p = String.fromCharCode(97 + i);
      const n = String.fromCharCode(98 + i);
      return `${n}: &${n} [*${p}, *${p}, *${p}, *${p}, *${p}, *${p}, *${p}, *${p}, *${p}]`;
    }),
  ].join('\n');
  assert.ok(attempt(bomb));
  assert.ok(attempt(`${'['.repeat(5000)}${']'.repeat(5000)}`));
  assert.ok(attempt(stringify({ ...valid, spec: { ...valid.spec, strategy: { maxIterations: 1e308 } } })));
});

test('a valid Migration mutated anywhere is refused naming the mutated field (or its parent)', () => {
  const all = paths(valid).filter((p) => p.length);
  fc.assert(
    fc.property(
      fc.constantFrom(...all),
      fc.constantFrom('delete' as const, 'replace' as const, 'extra' as const),
      fc.oneof(
        fc.string(),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(fc.integer(), { maxLength: 3 }),
      ),
      (path, how, value) => {
        const err = attempt(stringify(mutate(valid, path, how, value)));
        if (!err) return; // some mutations stay valid (an optional field deleted, a value allowed)
        const named = err.message.split('\n').slice(1);
        const dotted = path.join('.');
        const parent = path.slice(0, -1).join('.');
        assert.ok(
          named.some(
            (l) =>
              l.startsWith(dotted) || (parent && l.startsWith(`${parent}:`)) || l.startsWith('(document)'),
          ) || /status|no Migration/.test(err.message),
          `mutating ${dotted} (${how}) was refused with:\n${err.message}`,
        );
      },
    ),
    RUNS,
  );
});
