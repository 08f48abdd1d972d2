import { Command } from 'commander';
import type { CliContext } from './context.js';
import { registerGroups } from './commands/groups.js';
import { registerShow } from './commands/show.js';
import { registerSnapshot } from './commands/snapshot.js';
import { registerResetPlan } from './commands/reset-plan.js';
import { registerDoctor } from './commands/doctor.js';
import { registerGrant } from './commands/grant.js';
import { registerCompletion } from './commands/completion.js';
import { registerBind } from './commands/bind.js';
import { registerUnbind } from './commands/unbind.js';
import { registerVariants } from './commands/variants.js';
import { registerPersist } from './commands/persist.js';
import { registerApply } from './commands/apply.js';
import { registerVfs } from './commands/vfs.js';

export const VERSION = '0.1.0';

/** commander's own messages in vfioctl's error format: `vfioctl: <what>`. */
function output(ctx: CliContext) {
  return {
    writeOut: (s: string) => void ctx.stdout.write(s),
    writeErr: (s: string) => void ctx.stderr.write(s),
    // `vfioctl: usage: unknown option '--x'`: the same what/why shape as every other error.
    outputError: (s: string, write: (s: string) => void) => write(`vfioctl: usage: ${s.replace(/^error: /, '')}`),
  };
}

/** Build the command tree. No globals: everything comes from ctx, so tests run it in-process. */
export function createProgram(ctx: CliContext): Command {
  const program = new Command('vfioctl')
    .description('administer VFIO: IOMMU groups, driver binding, hot-reset planning')
    .version(VERSION, '-V, --version')
    .option('--root <dir>', 'resolve /sys, /dev, /proc, /lib/modules, /etc and /run under DIR (env VFIOCTL_ROOT)')
    .option('--color', 'force colour')
    .option('--no-color', 'never colour (also NO_COLOR)')
    .option('-v, --verbose', 'print each sysfs write on stderr')
    .showHelpAfterError("hint: run 'vfioctl --help' or 'vfioctl COMMAND --help' for usage")
    .exitOverride()
    .configureOutput(output(ctx));
  registerGroups(program, ctx);
  registerShow(program, ctx);
  registerSnapshot(program, ctx);
  registerResetPlan(program, ctx);
  registerDoctor(program, ctx);
  registerGrant(program, ctx);
  registerCompletion(program, ctx);
  registerBind(program, ctx);
  registerUnbind(program, ctx);
  registerVariants(program, ctx);
  registerPersist(program, ctx);
  registerApply(program, ctx);
  registerVfs(program, ctx);
  for (const sub of program.commands) sub.exitOverride().configureOutput(output(ctx));
  return program;
}
