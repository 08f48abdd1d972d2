import { Command } from 'commander';
import type { CliContext } from './context.js';

/**
 * The root command with the global options and output settings, without any subcommand.
 * Kept apart from program.ts so that main.ts can build `groups` without loading every
 * other command module (start-up time is most of a `groups` run on small hosts).
 */
export const VERSION = '0.1.0';
/** Printed by main.ts after every usage error commander reports. */
export const USAGE_HINT = "run 'vfioctl --help' or 'vfioctl COMMAND --help' for usage";

/** The end of `vfioctl --help`: what scripts and shells need without the manual. */
const HELP_AFTER = `
Exit status:
  0   ok (also: nothing to do, no IOMMU groups, a reset plan that is not ready)
  1   failed            2  usage            3  no such device or group
  4   refused           5  permission denied (run as root)
  70  internal error (a bug: please report it)
  With --json every run prints one JSON document; on an error
  {"schemaVersion":1,"error":{"code","exit","message","hint"}} (schemas: schema/ in the package).

Environment:
  VFIOCTL_ROOT          default for --root
  NO_COLOR              never colour (--color on the command line wins)
  FORCE_COLOR           colour through a pipe too (--no-color and NO_COLOR win)
  TERM                  no colour on a dumb terminal
  COLUMNS               the width the groups table fits on a terminal
  VFIOCTL_LOCK_TIMEOUT  seconds bind, unbind, apply and vfs wait for another vfioctl (10)
  VFIOCTL_EXEC          the vfioctl that the unit written by persist runs
  VFIOCTL_DEBUG         stack traces of internal errors; code cache use at start-up
  NODE_EXTRA_CA_CERTS   dropped before Node starts (no TLS here; it costs start-up)

More: man vfioctl (in a checkout: man ./man/vfioctl.8).`;

/** commander's own messages in vfioctl's error format: `vfioctl: <what>`. */
function output(ctx: CliContext) {
  return {
    writeOut: (s: string) => void ctx.stdout.write(s),
    writeErr: (s: string) => void ctx.stderr.write(s),
    // `vfioctl: usage: unknown option '--x'`: the same what/why shape as every other error.
    // A quoted argument is cut to a short prefix: never echo a 100,000-character argv back.
    outputError: (s: string, write: (s: string) => void) => write(`vfioctl: usage: ${s.replace(/^error: /, '').replace(/'([^'\n]{40})[^'\n]+'/g, "'$1…'")}`),
  };
}

export function createBaseProgram(ctx: CliContext): Command {
  return new Command('vfioctl')
    .description('administer VFIO: IOMMU groups, driver binding, hot-reset planning')
    .version(VERSION, '-V, --version')
    .option('--root <dir>', 'resolve /sys, /dev, /proc, /lib/modules, /etc and /run under DIR (env VFIOCTL_ROOT)')
    .option('--color', 'force colour')
    .option('--no-color', 'never colour (also NO_COLOR)')
    .option('-v, --verbose', 'print each sysfs write on stderr')
    .addHelpText('after', HELP_AFTER)
    .exitOverride()
    .configureOutput(output(ctx));
}

/** Subcommands report like the root: exit codes through main.ts, messages in vfioctl form. */
export function finishProgram(program: Command, ctx: CliContext): Command {
  for (const sub of program.commands) sub.exitOverride().configureOutput(output(ctx));
  return program;
}

/** Global options that take a value: their argument is not the command name. */
const VALUE_OPTIONS = new Set(['--root']);
const FLAG_OPTIONS = new Set(['--color', '--no-color', '-v', '--verbose']);

/**
 * The subcommand named in argv when it can be told without parsing (only known global
 * options before it); undefined otherwise, and then the full program parses as usual.
 */
export function commandNameOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (VALUE_OPTIONS.has(a)) i++;
    else if (a.startsWith('--root=') || FLAG_OPTIONS.has(a)) continue;
    else return a.startsWith('-') ? undefined : a;
  }
  return undefined;
}
