import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { FerryError } from '../lib/errors.ts';
import { ImmutableFieldError } from '../lib/store/migration-store.ts';
import { EXIT, exitCodeFor } from './exit-codes.ts';
import { ManifestError } from './manifest.ts';

test('exit codes: 0 for help, 2 for a command line or input refused as invalid, 1 for the rest', () => {
  assert.equal(exitCodeFor(new CommanderError(0, 'commander.helpDisplayed', '')), EXIT.done);
  assert.equal(
    exitCodeFor(new CommanderError(1, 'commander.unknownOption', "unknown option '--x'")),
    EXIT.usage,
  );
  assert.equal(exitCodeFor(new CommanderError(1, 'commander.missingArgument', 'missing')), EXIT.usage);
  assert.equal(exitCodeFor(new ManifestError('m.yaml: spec.source.container: required')), EXIT.usage);
  assert.equal(exitCodeFor(new ImmutableFieldError('spec.target: cannot change')), EXIT.usage);
  assert.equal(exitCodeFor(new FerryError('InvalidInput', '--volume v: NAME:/path')), EXIT.usage);
  assert.equal(exitCodeFor(new FerryError('ContainerNotFound', 'no container ghost')), EXIT.failed);
  assert.equal(exitCodeFor(new FerryError('ClusterUnavailable', 'Redis does not answer')), EXIT.failed);
  assert.equal(exitCodeFor(new Error('anything else')), EXIT.failed);
});
