import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { createBaseProgram, finishProgram } from './program-base.js';
import { registerGroups } from './commands/groups.js';
import { registerShow } from './commands/show.js';
import { registerSnapshot } from './commands/snapshot.js';
import { registerResetPlan } from './commands/reset-plan.js';
import { registerDoctor } from './commands/doctor.js';
import { registerGrant } from './commands/grant.js';
import { registerPersist } from './commands/persist.js';
import { registerApply } from './commands/apply.js';
import { registerVfs } from './commands/vfs.js';
import { registerCompletion } from './commands/completion.js';
import { registerBind } from './commands/bind.js';
import { registerUnbind } from './commands/unbind.js';
import { registerVariants } from './commands/variants.js';
import { registerProbe } from './commands/probe.js';

export { VERSION } from './program-base.js';

/** Build the command tree. No globals: everything comes from ctx, so tests run it in-process. */
export function createProgram(ctx: CliContext): Command {
  const program = createBaseProgram(ctx);
  // Order of `vfioctl --help`: look, bind, plan, provision, tools.
  registerGroups(program, ctx);
  registerShow(program, ctx);
  registerVariants(program, ctx);
  registerBind(program, ctx);
  registerUnbind(program, ctx);
  registerResetPlan(program, ctx);
  registerProbe(program, ctx);
  registerApply(program, ctx);
  registerPersist(program, ctx);
  registerVfs(program, ctx);
  registerGrant(program, ctx);
  registerDoctor(program, ctx);
  registerSnapshot(program, ctx);
  registerCompletion(program, ctx);
  return finishProgram(program, ctx);
}
