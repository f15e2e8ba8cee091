import { test } from 'node:test';
import assert from 'node:assert/strict';
import { criuErrorLines, criuFailure } from './criu-log.ts';

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

test('a CRIU that died without a word is said to have died, with its last line, not as runc’s socket error', () => {
  const log = '(00.001) Dumping pages\n(00.120) Dumping task 42\n';
  assert.equal(
    criuFailure(log, 'runc checkpoint ... read unixpacket @->@: EOF', 'dump'),
    'CRIU died during the dump without an error of its own (killed, or out of memory); its last words: "Dumping task 42"',
  );
  assert.equal(
    criuFailure('(00.1) Error (criu/mem.c:1): no space\n', 'exit status 1', 'dump'),
    'CRIU says: Error (criu/mem.c:1): no space',
  );
});
