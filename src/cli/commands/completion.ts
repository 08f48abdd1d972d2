import { Argument, Option, type Command } from 'commander';
import { usageError } from '../../errors.js';
import { CANDIDATE_KINDS, completionCandidates, type CandidateKind } from '../completion-candidates.js';
import { openSession, type CliContext } from '../context.js';
import { bashCompletion, fishCompletion, zshCompletion, type CommandSpec, type OptionSpec, type ProgramSpec, type ValueKind } from '../render/completion.js';

/** What an option's value completes to, where the name alone does not say (`grant --group` is a Unix group). */
const OPTION_VALUES: Record<string, ValueKind> = {
  '*:--root': 'dir',
  '*:--user': 'user',
  'grant:--group': 'unixgroup',
  'groups:--group': 'group',
  '*:--device': 'device',
  '*:--variant': 'driver',
  '*:--to': 'driver',
  'vfs:--bind': 'driver',
  '*:--tar': 'file',
};

function optionSpec(cmdName: string, o: Option): OptionSpec | null {
  if (!o.long || o.hidden) return null;
  let value: ValueKind = 'none';
  if (o.required || o.optional) {
    value = o.argChoices?.length ? { choices: o.argChoices } : OPTION_VALUES[`${cmdName}:${o.long}`] ?? OPTION_VALUES[`*:${o.long}`] ?? 'any';
  }
  return { long: o.long, short: o.short ?? null, description: o.description, value };
}

function argSpec(a: Argument): ValueKind {
  if (a.argChoices?.length) return { choices: a.argChoices };
  // Selectors that take group:N say so in their description.
  if (/selector/.test(a.name())) return /group:N/.test(a.description) ? 'selector' : 'device';
  if (/file/.test(a.name())) return 'file';
  if (/dir/.test(a.name())) return 'dir';
  return 'any';
}

/** The live commander tree as plain data. */
export function programSpec(program: Command): ProgramSpec {
  const opts = (name: string, list: readonly Option[]) => list.map((o) => optionSpec(name, o)).filter((o): o is OptionSpec => o !== null);
  const commands: CommandSpec[] = program.commands.map((c) => ({
    name: c.name(),
    description: c.description(),
    options: opts(c.name(), c.options),
    args: c.registeredArguments.map(argSpec),
    variadic: c.registeredArguments.at(-1)?.variadic === true,
  }));
  const globals = opts('', program.options);
  if (!globals.some((o) => o.long === '--help')) globals.push({ long: '--help', short: '-h', description: 'display help', value: 'none' });
  return { name: program.name(), globals, commands };
}

export function registerCompletion(program: Command, ctx: CliContext): void {
  program
    .command('completion')
    .description('print a shell completion script for bash, zsh or fish')
    .addArgument(new Argument('[shell]', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']))
    // For the scripts: the words to offer, from the tree under --root (vfioctl(8), completion).
    .addOption(new Option('--candidates <kind>', 'print completion candidates (used by the scripts)').choices(CANDIDATE_KINDS).hideHelp())
    .action((shell: 'bash' | 'zsh' | 'fish' | undefined, opts: { candidates?: CandidateKind }, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (opts.candidates !== undefined) {
        const words = completionCandidates(s.fs, opts.candidates);
        if (words.length) s.print(words.join('\n'));
        return;
      }
      if (shell === undefined) throw usageError('completion', 'name a shell: bash, zsh or fish', 'vfioctl completion bash > /etc/bash_completion.d/vfioctl');
      const spec = programSpec(program);
      s.print(shell === 'bash' ? bashCompletion(spec) : shell === 'zsh' ? zshCompletion(spec) : fishCompletion(spec));
    });
}
