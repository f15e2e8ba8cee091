import { test } from 'node:test';
import assert from 'node:assert/strict';
import { criuErrorLines } from './criu-log.ts';

test('quotes the first CRIU error lines and skips the harmless rlimit one', () => {
  const log = [
    '(00.000100) Version: 4.2.1',
    "(00.000200) Error (criu/util.c:100): Can't setup RLIMIT_NOFILE for self: Operation not permitted",
    '(00.010000) Error (criu/image.c:42): Unexpected EOF on image pages-1.img',
    '(00.020000) Error (criu/cr-restore.c:9): Restoring FAILED.',
  ].join('\n');
  assert.deepEqual(criuErrorLines(log), [
    'Error (criu/image.c:42): Unexpected EOF on image pages-1.img',
    'Error (criu/cr-restore.c:9): Restoring FAILED.',
  ]);
});
