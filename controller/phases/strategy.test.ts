import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MigrationSpecSchema } from '../../api/v1alpha1/migration.ts';
import { chooseMode, stopAndCopyDowntimeMs } from './strategy.ts';

const spec = (strategy: Record<string, unknown>) =>
  MigrationSpecSchema.parse({
    source: { node: 'node1', container: 'c' },
    target: { node: 'node2' },
    strategy,
  });
const NONE = { memDirtyTrack: false, lazyPages: false };
const MiB = 2 ** 20;

test('an explicit mode is used when the source can run it, refused with its reason when not', () => {
  assert.deepEqual(chooseMode(spec({ mode: 'StopAndCopy' }), { features: NONE }, 'node1'), {
    mode: 'StopAndCopy',
    reason: 'requested',
  });
  const pre = chooseMode(spec({ mode: 'PreCopy' }), { features: NONE }, 'node1');
  assert.equal(pre.mode, undefined);
  assert.match(
    pre.reason,
    /^FeatureUnsupported: PreCopy needs soft-dirty .*mem_dirty_track.* fails on node1/,
  );
  const post = chooseMode(
    spec({ mode: 'PostCopy' }),
    { features: NONE, lazyPagesProblem: 'page-pipe: splice: Bad file descriptor' },
    'node1',
  );
  assert.match(
    post.reason,
    /PostCopy needs CRIU lazy pages .* on node1: page-pipe: splice: Bad file descriptor$/,
  );
  assert.equal(
    chooseMode(spec({ mode: 'PostCopy' }), { features: { ...NONE, lazyPages: true } }, 'n').mode,
    'PostCopy',
  );
});

test('Auto keeps StopAndCopy while its estimated freeze fits maxDowntime', () => {
  const m = {
    features: { memDirtyTrack: true, lazyPages: true },
    memoryBytes: 64 * MiB,
    linkBytesPerSecond: 1e9,
  };
  const c = chooseMode(spec({ mode: 'Auto', maxDowntime: '5s' }), m, 'node1');
  assert.equal(c.mode, 'StopAndCopy');
  assert.match(
    c.reason,
    /64 MiB over a 954 MiB\/s link: StopAndCopy would freeze about \d+ ms, maxDowntime 5s/,
  );
});

test('Auto prefers PreCopy, then PostCopy, when StopAndCopy would freeze too long; else says so', () => {
  const big = { memoryBytes: 4096 * MiB, linkBytesPerSecond: 100 * MiB };
  const s = spec({ mode: 'Auto', maxDowntime: '1s' });
  assert.equal(
    chooseMode(s, { ...big, features: { memDirtyTrack: true, lazyPages: true } }, 'n').mode,
    'PreCopy',
  );
  assert.equal(
    chooseMode(s, { ...big, features: { memDirtyTrack: false, lazyPages: true } }, 'n').mode,
    'PostCopy',
  );
  // Neither: a freeze longer than asked is refused before anything is frozen, unless the spec accepts it.
  const none = chooseMode(s, { ...big, features: NONE }, 'node1');
  assert.equal(none.mode, undefined);
  assert.match(
    none.reason,
    /^DowntimeOverBudget: .*node1 has neither soft-dirty tracking \(PreCopy\) nor working lazy pages.*overBudget: Proceed/,
  );
  const accepted = chooseMode(
    spec({ mode: 'Auto', maxDowntime: '1s', overBudget: 'Proceed' }),
    { ...big, features: NONE },
    'node1',
  );
  assert.equal(accepted.mode, 'StopAndCopy');
  assert.match(accepted.reason, /longer than asked \(overBudget: Proceed\)/);
});

test('Auto without a measured link falls back to StopAndCopy and says why', () => {
  const c = chooseMode(spec({ mode: 'Auto' }), { features: NONE }, 'node1');
  assert.deepEqual(c, {
    mode: 'StopAndCopy',
    reason: 'chosen by Auto: memory size or link rate unknown, so the simplest',
  });
});

test('the StopAndCopy estimate is bound by the slower of link and dump rate', () => {
  assert.ok(stopAndCopyDowntimeMs(GiB(1), 50e6) > stopAndCopyDowntimeMs(GiB(1), 5e9));
  assert.equal(stopAndCopyDowntimeMs(GiB(1), 5e9), stopAndCopyDowntimeMs(GiB(1), 1e12));
});
const GiB = (n: number) => n * 2 ** 30;

test('a bare process tree moves by StopAndCopy only', () => {
  const bare = (mode: string) =>
    MigrationSpecSchema.parse({
      source: { node: 'node1', container: 'p', pid: 4242 },
      target: { node: 'node2' },
      strategy: { mode },
    });
  const all = { memDirtyTrack: true, lazyPages: true };
  assert.equal(chooseMode(bare('Auto'), { features: all }, 'node1').mode, 'StopAndCopy');
  const post = chooseMode(bare('PostCopy'), { features: all }, 'node1');
  assert.equal(post.mode, undefined);
  assert.match(
    post.reason,
    /^FeatureUnsupported: a bare process tree \(source.pid\) moves by StopAndCopy only/,
  );
});
