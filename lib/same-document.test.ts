import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sameDocument } from './same-document.ts';

test('documents are equal whatever their key order, and undefined keys do not count', () => {
  assert.ok(sameDocument({ a: 1, b: { c: [1, { d: 'x' }] } }, { b: { c: [1, { d: 'x' }] }, a: 1 }));
  assert.ok(sameDocument({ a: 1, gone: undefined }, { a: 1 }));
  assert.ok(sameDocument({ a: 1 }, { a: 1, gone: undefined }));
  assert.ok(sameDocument([], []));
  assert.ok(sameDocument(null, null));
});

test('any difference of value, type, length or key makes them differ', () => {
  assert.ok(!sameDocument({ a: 1 }, { a: 2 }));
  assert.ok(!sameDocument({ a: 1 }, { a: 1, b: 0 }));
  assert.ok(!sameDocument({ a: 1, b: 0 }, { a: 1 }));
  assert.ok(!sameDocument({ a: '1' }, { a: 1 }));
  assert.ok(!sameDocument([1, 2], [1, 2, 3]));
  assert.ok(!sameDocument({ a: [] }, { a: {} }));
  assert.ok(!sameDocument({ a: null }, { a: {} }));
  assert.ok(!sameDocument({ a: { b: [{ c: 1 }] } }, { a: { b: [{ c: 1, d: false }] } }));
});
