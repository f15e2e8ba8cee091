import assert from 'node:assert/strict';
import { test } from 'node:test';
import ssh2 from 'ssh2';
import { generateNodeKey, publicBlob } from './ssh-keys.ts';

test('every node key ferry makes is readable, private and public half (ssh2 alone fails about 1 in 256)', () => {
  // 2000 pairs: with ssh2's keygen bug, at least one malformed pair would come out with odds of
  // 1 - (255/256)^2000, over 99.9 %.
  for (let i = 0; i < 2000; i++) {
    const k = generateNodeKey('n');
    assert.ok(!(ssh2.utils.parseKey(k.privateKey) instanceof Error), k.privateKey);
    assert.equal(publicBlob(k.publicKey).length, 4 + 11 + 4 + 32, k.publicKey);
  }
});
