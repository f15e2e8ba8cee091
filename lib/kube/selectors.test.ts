import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSelector, selects } from './selectors.ts';

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

test('a selector as kubectl -l writes it: pairs, inequality, existence; set forms refused', () => {
  const s = parseSelector('app=web, tier!=back,canary,!legacy');
  assert.ok(selects(s, { app: 'web', tier: 'front', canary: '' }));
  assert.ok(!selects(s, { app: 'web', tier: 'back', canary: '' }));
  assert.ok(!selects(s, { app: 'web', canary: '', legacy: 'y' }));
  assert.ok(!selects(s, { app: 'web' }), 'canary must exist');
  assert.ok(selects(parseSelector('app==web'), { app: 'web' }));
  assert.throws(() => parseSelector('tier in (a,b)'), /set-based selectors/);
  assert.throws(() => parseSelector('app=web,=x'), /is not a label requirement/);
});
