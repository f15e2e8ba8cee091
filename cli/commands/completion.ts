// `ferry completion bash|zsh`: a shell completion script written from the command tree itself, so
// it knows every command, subcommand and flag there is (and the values of flags with a fixed set).
// bash: `source <(ferry completion bash)`; zsh: `source <(ferry completion zsh)` (bash's script
// through zsh's bashcompinit).
import type { Command } from 'commander';
import { FerryError } from '../../lib/errors.ts';
import { say, type Cli } from '../program.ts';

/** Each command path ("", "node", "node fence"…) with its words to offer and flags' fixed values. Pure. */
export function completionTable(
  root: Command,
): Map<string, { words: string[]; choices: Record<string, string[]> }> {
  const out = new Map<string, { words: string[]; choices: Record<string, string[]> }>();
  const walk = (cmd: Command, path: string[], inherited: Command['options']) => {
    const options = [...inherited, ...cmd.options];
    const choices: Record<string, string[]> = {};
    for (const o of options) if (o.argChoices && o.long) choices[o.long] = o.argChoices;
    const flags = options.flatMap((o) => [o.long, o.short]).filter((f): f is string => !!f);
    out.set(path.join(' '), { words: [...cmd.commands.map((c) => c.name()), ...flags, '--help'], choices });
    for (const sub of cmd.commands) walk(sub, [...path, sub.name()], path.length ? [] : cmd.options);
  };
  walk(root, [], []);
  return out;
}

/** The bash script: finds the deepest command the words name, then offers its words or a flag's values. Pure. */
export function bashCompletion(root: Command): string {
  const table = completionTable(root);
  const cases = [...table.entries()].map(([path, { words, choices }]) => {
    const values = Object.entries(choices)
      .map(
        ([flag, vals]) =>
          `        ${flag}) COMPREPLY=( $(compgen -W "${vals.join(' ')}" -- "$cur") ); return ;;`,
      )
      .join('\n');
    return [
      `    "${path}")`,
      values ? `      case "$prev" in\n${values}\n      esac` : '',
      `      COMPREPLY=( $(compgen -W "${words.join(' ')}" -- "$cur") ) ;;`,
    ]
      .filter(Boolean)
      .join('\n');
  });
  const known = [...table.keys()].filter(Boolean);
  return `# ferry shell completion (bash), written by \`ferry completion bash\`.
_ferry() {
  local cur prev path word i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "\${path:+$path }$word" in
${known.map((k) => `      "${k}") path="${k}" ;;`).join('\n')}
    esac
  done
  case "$path" in
${cases.join('\n')}
  esac
}
complete -F _ferry ferry
`;
}

export function completionCommand(cli: Cli): void {
  cli.program
    .command('completion')
    .description('a shell completion script: source <(ferry completion bash), or zsh')
    .argument('<shell>', 'bash | zsh')
    .action((shell: string) => {
      const bash = bashCompletion(cli.program);
      if (shell === 'bash') return say(bash);
      if (shell === 'zsh') return say(`autoload -U +X bashcompinit && bashcompinit\n${bash}`);
      throw new FerryError('InvalidInput', `completion: ${JSON.stringify(shell)}: bash or zsh`);
    });
}
