import { CommanderError } from 'commander';
import { VfioctlError, errnoMeaning, errnoOf } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { CliContext } from './context.js';
import { INPUT_MAX_BYTES } from '../provision/read-input.js';
import type { Command } from 'commander';
import { commandNameOf, createBaseProgram, finishProgram, VERSION } from './program-base.js';
import { fdWriter, isTerminal, readFdCapped } from './stdio.js';

/**
 * Run one invocation and return its exit code. The only place that turns errors into
 * exit codes; it never calls process.exit, so piped output is never cut short.
 */
export async function run(argv: readonly string[], ctx: CliContext): Promise<number> {
  const code = await runCommand(argv, ctx);
  // Standard output failed (ENOSPC, EIO; a reader going away is not a failure): the output
  // is lost, so the run failed even if the command did its work (which it reported on stderr).
  const lost = ctx.stdout.failure;
  if (lost === undefined) return code;
  const errno = errnoOf(lost);
  ctx.stderr.write(`vfioctl: cannot write to standard output: ${errno ? errnoMeaning(errno) : lost.message}\n`);
  return code === ExitCode.OK ? ExitCode.FAILURE : code;
}

async function runCommand(argv: readonly string[], ctx: CliContext): Promise<number> {
  try {
    const program = await loadProgram(argv, ctx);
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; every parse error is a usage error (commander says 1).
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    if (err instanceof VfioctlError) {
      ctx.stderr.write(`vfioctl: ${err.what}: ${err.why}\n`);
      if (err.hint) ctx.stderr.write(`hint: ${err.hint}\n`);
      return err.code;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    ctx.stderr.write(`vfioctl: internal error (please report, vfioctl ${VERSION}, node ${process.version}): ${e.message}\n`);
    if (ctx.env.VFIOCTL_DEBUG) ctx.stderr.write(`${e.stack}\n`);
    return ExitCode.INTERNAL;
  }
}

/**
 * `groups` is the command run most and on the largest hosts; it is built without the other
 * command modules. Since src is bundled that saves only 2–3 ms of start-up (measured on the
 * 120-function bench host), kept while start-up is over its target. Anything else, --help
 * included, gets the full command tree. Only for commands no other module extends at import
 * time (show is: variants adds a section to it).
 */
const FAST_COMMANDS: Record<string, () => Promise<(program: Command, ctx: CliContext) => void>> = {
  groups: async () => (await import('./commands/groups.js')).registerGroups,
};

async function loadProgram(argv: readonly string[], ctx: CliContext): Promise<Command> {
  const name = commandNameOf(argv);
  const fast = name === undefined ? undefined : FAST_COMMANDS[name];
  if (!fast) return (await import('./program.js')).createProgram(ctx);
  const program = createBaseProgram(ctx);
  (await fast())(program, ctx);
  return finishProgram(program, ctx);
}

/** Entry point used by bin/vfioctl. */
export async function main(): Promise<void> {
  // The reader went away (`vfioctl groups | head`): stop quietly as a SIGPIPE'd tool would.
  const readerGone = () => process.exit(process.exitCode ?? 0);
  const [{ execaRunner }, isTTY] = await Promise.all([import('./runner.js'), isTerminal(1)]);
  process.exitCode = await run(process.argv.slice(2), {
    stdout: fdWriter(1, readerGone),
    stderr: fdWriter(2, readerGone),
    env: process.env,
    isTTY,
    runner: execaRunner,
    // Bounded: at most maxBytes + 1 bytes are read (`yes | vfioctl apply -` stops there).
    readStdin: async (maxBytes = INPUT_MAX_BYTES) => readFdCapped(0, maxBytes).toString('utf8'),
  });
}
