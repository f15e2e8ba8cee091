import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selects } from './nodes.ts';

test('a label selector selects as Kubernetes reads it: pairs, expressions, empty selects all, absent none', () => {
  const web = { app: 'web', tier: 'front' };
  assert.ok(selects({ matchLabels: { app: 'web' } }, web));
  assert.ok(!selects({ matchLabels: { app: 'db' } }, web));
  assert.ok(selects({}, web), 'an empty selector selects every pod');
  assert.ok(!selects(undefined, web), 'no selector selects none');
  const expr = (operator: string, values?: string[]) => ({
    matchExpressions: [{ key: 'tier', operator, ...(values ? { values } : {}) }],
  });
  assert.ok(selects(expr('In', ['front', 'edge']), web));
  assert.ok(!selects(expr('In', ['back']), web));
  assert.ok(selects(expr('NotIn', ['back']), web));
  assert.ok(selects(expr('NotIn', ['back']), { app: 'web' }), 'NotIn holds for a missing key');
  assert.ok(selects(expr('Exists'), web));
  assert.ok(!selects(expr('DoesNotExist'), web));
  assert.ok(!selects(expr('Sometimes'), web), 'an unknown operator selects nothing');
});
