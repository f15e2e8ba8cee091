import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kubeletError } from './kubelet.ts';

describe('what a kubelet answer means', () => {
  const what = 'shop/db/postgres';
  it('maps each refusal to an error that says what to do', () => {
    assert.match(kubeletError(401, 'Unauthorized', what).toString(), /^AuthRefused: .*nodes\/checkpoint/);
    assert.match(
      kubeletError(
        403,
        'Forbidden (user=x, verb=create, resource=nodes, subresource=checkpoint)',
        what,
      ).toString(),
      /^AuthRefused/,
    );
    assert.match(
      kubeletError(404, '404 page not found', what).toString(),
      /^FeatureUnsupported: .*ContainerCheckpoint feature gate/,
    );
    assert.match(
      kubeletError(404, 'container postgres does not exist', what).toString(),
      /^ContainerNotFound: .*does not exist/,
    );
    assert.match(
      kubeletError(
        500,
        'checkpointing of shop/db/postgres failed (rpc error: code = Unknown desc = criu failed)',
        what,
      ).toString(),
      /^CriuDumpFailed: .*criu failed/,
    );
    assert.equal(kubeletError(500, 'x', what).final, true);
  });
});
