// The controller scale benchmark's simulated agents answer every step of a container migration
// with a result the controller accepts (a schema that grew a field once failed all their runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJobResult } from '../api/v1alpha1/job-results.ts';
import { simResult } from '../bench/sim-results.ts';

const STEPS = [
  'preflightSource',
  'preflightTarget',
  'sync',
  'checkpoint',
  'transfer',
  'restore',
  'verifyTarget',
  'cleanupSource',
  'cleanupTarget',
  'resumeSource',
  'rollbackTarget',
] as const;

test('every simulated step result passes its schema', () => {
  for (const kind of STEPS) {
    const r = parseJobResult(kind, simResult(kind));
    assert.ok(r.ok, r.ok ? '' : r.problem);
  }
});
