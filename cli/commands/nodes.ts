// `ferry node fence|unfence|forget NODE`: an operator's word that a node is dead (powered off, its
// containers gone) or back. ferry never acts on a node's silence where a second copy could follow
// (docs/fencing.md); a fence is what lets it act around that node: resume a source whose target
// went silent after the hand-over, or give up a source that went silent holding the frozen copy.
import { fenceNode, unfenceNode } from '../../lib/fences.ts';
import { forgetNode } from '../../lib/node-registry.ts';
import { say, type Cli } from '../program.ts';

export function nodeCommands(cli: Cli): void {
  const cmd = cli.program
    .command('node')
    .description('declare a node dead (fence) or back (unfence), or forget one removed for good');
  cmd
    .command('fence')
    .argument('<node>', 'the node, as ferry get nodes names it')
    .option('--reason <text>', 'why, for the logs and the Migration status', 'fenced by an operator')
    .description(
      'declare NODE dead: only after you made sure it runs nothing (powered off, or its containers killed). Migrations waiting on its silence then go on without it, and its agent takes no job until unfenced',
    )
    .action(async (node: string, o: { reason: string }) => {
      await cli.withClient(async (c) => {
        await fenceNode(c.redis, cli.cluster(), { node, reason: o.reason, time: new Date().toISOString() });
      });
      say(`node ${node} fenced: ferry treats it as dead; \`ferry node unfence ${node}\` lets it back`);
    });
  cmd
    .command('forget')
    .argument('<node>', 'the node')
    .description(
      'forget a node taken out of the cluster for good: ferry_agent_up stops reporting it as down (it comes back if its agent beats again)',
    )
    .action(async (node: string) => {
      const was = await cli.withClient((c) => forgetNode(c.redis, cli.cluster(), node));
      say(was ? `node ${node} forgotten` : `node ${node} was not known`);
    });
  cmd
    .command('unfence')
    .argument('<node>', 'the node')
    .description('let a fenced node act again (its agent has already undone what it held)')
    .action(async (node: string) => {
      const was = await cli.withClient((c) => unfenceNode(c.redis, cli.cluster(), node));
      say(was ? `node ${node} unfenced` : `node ${node} was not fenced`);
    });
}
