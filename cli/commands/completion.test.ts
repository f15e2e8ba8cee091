import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { Cli, rootCommand } from '../program.ts';
import { bashCompletion } from './completion.ts';
import { addCommands } from './index.ts';

/** What bash offers for the words typed so far (the last one being completed). */
function offers(script: string, words: string[]): string[] {
  const out = execFileSync('bash', [
    '-c',
    `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ferry; echo "\${COMPREPLY[@]}"`,
  ]);
  return out.toString().trim().split(/\s+/).filter(Boolean);
}

test('bash completes commands, subcommands, flags and the values of flags with a fixed set', () => {
  const cli = new Cli(rootCommand());
  addCommands(cli);
  const script = bashCompletion(cli.program);
  execFileSync('bash', ['-n', '-c', script]);
  assert.deepEqual(offers(script, ['ferry', 'dr']), ['drain']);
  assert.deepEqual(offers(script, ['ferry', 'node', 'f']), ['fence', 'forget']);
  assert.deepEqual(offers(script, ['ferry', 'drain', 'node1', '--uncordon', '']), [
    'never',
    'failed',
    'always',
  ]);
  assert.deepEqual(offers(script, ['ferry', 'get', 'migrations', '--all']), ['--all-namespaces']);
  assert.deepEqual(offers(script, ['ferry', 'apply', '--dry-run', 's']), ['server']);
  assert.ok(offers(script, ['ferry', '']).includes('completion'));
});
