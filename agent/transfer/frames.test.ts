import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameDecoder, FrameType, ItemSchema, MAX_HEADER_BYTES, encodeFrame, jsonFrame } from './frames.ts';

test('decodes frames split across arbitrary chunk boundaries', () => {
  const bytes = Buffer.concat([
    jsonFrame(FrameType.Header, { a: 1 }),
    encodeFrame(FrameType.Data, Buffer.from('hello')),
    encodeFrame(FrameType.Data, Buffer.alloc(0)),
  ]);
  const dec = new FrameDecoder();
  const frames = [];
  for (let i = 0; i < bytes.length; i += 3) frames.push(...dec.push(bytes.subarray(i, i + 3)));
  assert.equal(frames.length, 3);
  assert.equal(frames[0]?.type, FrameType.Header);
  assert.deepEqual(JSON.parse(frames[0]!.payload.toString()), { a: 1 });
  assert.equal(frames[1]?.payload.toString(), 'hello');
  assert.equal(dec.pending, 0);
});

test('rejects an oversized header frame before buffering it', () => {
  const head = Buffer.alloc(5);
  head.writeUInt8(FrameType.Header, 0);
  head.writeUInt32BE(MAX_HEADER_BYTES + 1, 1);
  assert.throws(() => new FrameDecoder().push(head), /exceeds/);
});

test('rejects unknown frame types', () => {
  assert.throws(() => new FrameDecoder().push(Buffer.from([9, 0, 0, 0, 0])), /unknown frame type/);
});

test('reports a truncated stream as pending bytes', () => {
  const dec = new FrameDecoder();
  dec.push(encodeFrame(FrameType.Data, Buffer.from('abcdef')).subarray(0, 8));
  assert.equal(dec.pending, 8);
});

test('refuses item paths that climb out of the migration folder', () => {
  for (const p of ['../x', 'a/../../b', '/etc/passwd', 'a//b', './a']) {
    assert.equal(ItemSchema.safeParse({ type: 'file', path: p, size: 1, mode: 0o600 }).success, false, p);
  }
  assert.equal(
    ItemSchema.safeParse({ type: 'file', path: 'checkpoint/pages-1.img', size: 1, mode: 0o600 }).success,
    true,
  );
});
