import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CommanderError } from 'commander';
import { VfioctlError, errnoMeaning, errnoOf } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { CliContext } from './context.js';
import { INPUT_MAX_BYTES } from '../provision/read-input.js';
import type { Command } from 'commander';
import { SCHEMA_VERSION } from './context.js';
import { invokedAs, personalise } from './first-minute.js';
import { commandNameOf, createBaseProgram, finishProgram, USAGE_HINT, VERSION } from './program-base.js';
import { fdWriter, isTerminal, readFdCapped } from './stdio.js';
import { koffiOf } from '../ffi/libc.js';
import type { FileCalls } from '../sysfs/file-calls.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { libcFileCalls } from '../sysfs/libc-file-calls.js';

/**
 * Run one invocation and return its exit code. The only place that turns errors into
 * exit codes; it never calls process.exit, so piped output is never cut short.
 */
export async function run(argv: readonly string[], ctx: CliContext): Promise<number> {
  // Keep what went to stdout after a write failed, so a change is still reported (on stderr).
  // Only a change needs that: the outcome of a read can simply be asked for again.
  let unsent = '';
  const keep = CHANGING_COMMANDS.has(commandNameOf(argv) ?? '');
  const out = ctx.stdout;
  const stdout = {
    write: (text: string) => {
      const r = out.write(text);
      if (keep && out.failure !== undefined && unsent.length < UNSENT_MAX) unsent += text;
      return r;
    },
    get failure() {
      return out.failure;
    },
  };
  const code = await runCommand(argv, { ...ctx, stdout });
  // Standard output failed (ENOSPC, EIO; a reader going away is not a failure): the output
  // is lost, so the run failed even if the command did its work; what it said goes to stderr.
  const lost = out.failure;
  if (lost === undefined) return code;
  const errno = errnoOf(lost);
  ctx.stderr.write(`vfioctl: cannot write to standard output: ${errno ? errnoMeaning(errno) : lost.message}${unsent ? '; what it would have said follows' : ''}\n`);
  if (unsent) ctx.stderr.write(unsent.slice(0, UNSENT_MAX) + (unsent.endsWith('\n') ? '' : '\n'));
  return code === ExitCode.OK ? ExitCode.FAILURE : code;
}

const CHANGING_COMMANDS = new Set(['bind', 'unbind', 'apply', 'vfs', 'grant', 'persist', 'snapshot']);

/** How much of the output that could not be written is repeated on stderr. */
const UNSENT_MAX = 256 << 10;

async function runCommand(argv: readonly string[], outer: CliContext): Promise<number> {
  const runState = { jsonPrinted: false };
  const ctx: CliContext = { ...outer, runState };
  const json = wantsJson(argv);
  // Under --json every run prints one document: the command's, or else the error document.
  const errorDoc = (exit: number, code: string, message: string, hint: string | null) => {
    if (!json || runState.jsonPrinted) return;
    ctx.stdout.write(JSON.stringify({ schemaVersion: SCHEMA_VERSION, error: { code, exit, message, hint } }, null, 2) + '\n');
  };
  // Under --json stdout is held until the command prints its document, so that --help and
  // --version can answer with a document too (commander's text inside) instead of the text.
  // From its document on, it goes straight out (in the same order): a large host's document
  // is written in pieces and never held whole.
  let captured = '';
  const release = () => {
    if (captured) ctx.stdout.write(captured);
    captured = '';
  };
  const passOn = (s: string) => {
    release();
    return ctx.stdout.write(s);
  };
  const held = {
    write: (s: string): unknown => {
      if (runState.jsonPrinted) return passOn(s);
      captured += s;
      return true;
    },
  };
  const inner: CliContext = json ? { ...ctx, stdout: held } : ctx;
  try {
    const program = await loadProgram(argv, inner);
    await program.parseAsync([...argv], { from: 'user' });
    release();
    return ExitCode.OK;
  } catch (err) {
    if (json && err instanceof CommanderError && err.exitCode === 0 && !runState.jsonPrinted) {
      const doc = err.code === 'commander.version' ? { version: VERSION } : { help: captured };
      captured = '';
      ctx.stdout.write(JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...doc }, null, 2) + '\n');
      return ExitCode.OK;
    }
    release();
    if (err instanceof CommanderError) {
      // help and version exit 0; every parse error is a usage error (commander says 1).
      if (err.exitCode === 0) return ExitCode.OK;
      const hint = personalise(ctx, USAGE_HINT);
      // Without a command commander has just printed the whole help: no hint after it.
      if (err.code !== 'commander.help') ctx.stderr.write(`hint: ${hint}\n`);
      errorDoc(ExitCode.USAGE, 'usage', err.message.replace(/^error: /, ''), hint);
      return ExitCode.USAGE;
    }
    if (err instanceof VfioctlError) {
      const hint = err.hint === undefined ? undefined : personalise(ctx, err.hint);
      ctx.stderr.write(`vfioctl: ${err.what}: ${err.why}\n`);
      if (hint) ctx.stderr.write(`hint: ${hint}\n`);
      errorDoc(err.code, err.errorCode, `${err.what}: ${err.why}`, hint ?? null);
      return err.code;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    ctx.stderr.write(`vfioctl: internal error (please report, vfioctl ${VERSION}, node ${process.version}): ${e.message}\n`);
    if (ctx.env.VFIOCTL_DEBUG) ctx.stderr.write(`${e.stack}\n`);
    errorDoc(ExitCode.INTERNAL, 'internal-error', `internal error (please report, vfioctl ${VERSION}, node ${process.version}): ${e.message}`, 'run again with VFIOCTL_DEBUG=1 for the stack trace, and report it');
    return ExitCode.INTERNAL;
  }
}

/** `--json` anywhere before a `--` that ends the options. */
export function wantsJson(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--json') return true;
  }
  return false;
}

/**
 * `groups` is the command run most and on the largest hosts, and `reset-plan` one whose cost
 * should be its device's neighbourhood; they are built without the other command modules.
 * Since src is bundled that saves only 2–5 ms of start-up (measured on the bench's hosts),
 * kept while start-up is over its target. Anything else, --help included, gets the full
 * command tree. Only for commands no other module extends at import
 * time (show is: variants adds a section to it).
 */
const FAST_COMMANDS: Record<string, () => Promise<(program: Command, ctx: CliContext) => void>> = {
  groups: async () => (await import('./commands/groups.js')).registerGroups,
  // Its target is start-up plus its neighbourhood (issue 15): the other commands' modules were 5 ms of it.
  'reset-plan': async () => (await import('./commands/reset-plan.js')).registerResetPlan,
  // The same target as reset-plan's. variants.js adds show's variant section as it loads.
  show: async () => (await Promise.all([import('./commands/show.js'), import('./commands/variants.js')]))[0].registerShow,
};

async function loadProgram(argv: readonly string[], ctx: CliContext): Promise<Command> {
  const name = commandNameOf(argv);
  const fast = name === undefined ? undefined : FAST_COMMANDS[name];
  if (!fast) return (await import('./program.js')).createProgram(ctx);
  const program = createBaseProgram(ctx);
  (await fast())(program, ctx);
  return finishProgram(program, ctx);
}

function packageDirOf(script: string | undefined): string | undefined {
  if (!script) return undefined;
  try {
    return dirname(dirname(realpathSync(script)));
  } catch {
    return undefined;
  }
}

/**
 * V8 flags for `groups`, a run that reads every function of the host and lasts a second or
 * less (measured as instructions of all threads with callgrind, and CPU time in npm run
 * bench, on the bench's hosts):
 *  - --interrupt-budget=400000 (default 67584): a function is optimised by TurboFan after
 *    about 6 times as much work. Compiling the scan's hot functions early cost more than
 *    their code saved before a 4,096-function run ended (table: 1.76 -> 1.60 G instructions),
 *    while 16,384 functions still get them optimised (3.76 -> 3.71 G; without TurboFan, 4.23 G);
 *  - --semi-space-growth-factor=1: the young generation keeps its first size instead of
 *    growing to 2 x 16 MB, which a scan's long-lived objects made it do (groups --json on
 *    16,384 functions: RSS 101 -> 71 MB, CPU no worse).
 * Set once the bundle is loaded (its code cache is made and checked under V8's default
 * flags), and only for groups on a large host: loading node:v8 costs start-up.
 */
const V8_FOR_SCANS = '--interrupt-budget=400000 --semi-space-growth-factor=1';

/**
 * Set V8_FOR_SCANS (once), and read through libc's calls (sysfs/libc-file-calls.ts).
 * node:v8 brings Node's whole stream stack with it (about 25 modules, 5 ms) and koffi takes
 * about 5 ms to load, more than either saves on a small host: groups asks for them only
 * once the host's listing shows a long scan ahead (LONG_SCAN_FUNCTIONS in
 * commands/groups.ts). Without process.getBuiltinModule (Node before 20.16) the run keeps
 * V8's defaults; where koffi cannot load, Node's calls.
 */
let tuned = false;
function tuneForLongScan(packageDir: string | undefined, fs: FsRoot): void {
  if (!tuned) {
    tuned = true;
    (process.getBuiltinModule?.('node:v8') as typeof import('node:v8') | undefined)?.setFlagsFromString(V8_FOR_SCANS);
  }
  if (fs.fileCalls.kind === 'node') fs.fileCalls = loadLibcFileCalls(packageDir) ?? fs.fileCalls;
}

let libcCalls: FileCalls | null | undefined;
/** koffi from vfioctl's own node_modules (bin/vfioctl runs a bundle that does not hold it). */
function loadLibcFileCalls(packageDir: string | undefined): FileCalls | null {
  if (libcCalls === undefined) {
    try {
      const requireHere = createRequire(join(packageDir ?? process.cwd(), 'package.json'));
      libcCalls = libcFileCalls(koffiOf(requireHere('koffi')));
    } catch {
      libcCalls = null;
    }
  }
  return libcCalls;
}

/** Entry point used by bin/vfioctl. */
export async function main(): Promise<void> {
  // The reader went away (`vfioctl groups | head`): stop quietly as a SIGPIPE'd tool would.
  const readerGone = () => process.exit(process.exitCode ?? 0);
  const [{ execaRunner }, isTTY] = await Promise.all([import('./runner.js'), isTerminal(1)]);
  const packageDir = packageDirOf(process.argv[1]);
  process.exitCode = await run(process.argv.slice(2), {
    // bin/vfioctl is <package>/bin/vfioctl (through any symlink on PATH).
    packageDir,
    invokedAs: () => (process.argv[1] ? invokedAs(process.argv[1], process.env, process.cwd()) : 'vfioctl'),
    // process.stdout is a tty.WriteStream on a terminal: made only when a table needs the width.
    terminalColumns: () => (isTTY ? process.stdout.columns : undefined),
    stdout: fdWriter(1, readerGone),
    stderr: fdWriter(2, readerGone),
    env: process.env,
    isTTY,
    // Asked only by the commands that warn there (probe), not at every start-up.
    stderrIsTTY: () => isTerminal(2),
    runner: execaRunner,
    catchSignals: true,
    tuneForLongScan: (fs) => tuneForLongScan(packageDir, fs),
    // Bounded: at most maxBytes + 1 bytes are read (`yes | vfioctl apply -` stops there).
    readStdin: async (maxBytes = INPUT_MAX_BYTES) => readFdCapped(0, maxBytes).toString('utf8'),
  });
}
