import type { Command } from 'commander';
import type { ChalkInstance } from 'chalk';
import { statSync } from 'node:fs';
import { errnoMeaning, errnoOf, usageError } from '../errors.js';
import { quoteShort } from '../model/names.js';
import { FsRoot } from '../sysfs/fsroot.js';
import { loadPciNames, type PciNames } from '../sysfs/pciids.js';
import { PCI_IDS_CANDIDATES } from '../sysfs/paths.js';
import { makeChalk, resolveColorLevel } from './color.js';
import { writeJson } from './render/json-stream.js';

import type { Runner, Writer } from '../ports.js';

export type { RunResult, Runner, Writer } from '../ports.js';

declare module '../ports.js' {
  interface Writer {
    /**
     * Set once a write failed for another reason than the reader going away (ENOSPC, EIO):
     * what was printed since is lost. A command that changed something says so on stderr
     * when this is set; run() exits 1 with the message (src/cli/stdio.ts).
     */
    readonly failure?: Error | undefined;
  }
}

/** What the outside world gives the CLI; tests pass string sinks and a fake runner. */
export interface CliContext {
  readonly stdout: Writer;
  readonly stderr: Writer;
  readonly env: Record<string, string | undefined>;
  readonly isTTY: boolean;
  readonly runner: Runner;
  /** Override FsRoot construction (tests use a fake kernel). */
  readonly makeFs?: (root: string) => FsRoot;
  /** SIGINT/SIGTERM during a change roll it back instead of killing the process (the real process). */
  readonly catchSignals?: boolean;
  /**
   * Standard input as text, for `apply -` and `persist -`: at most `maxBytes + 1` bytes of it
   * when `maxBytes` is given (the caller refuses more; src/provision/read-input.ts).
   */
  readonly readStdin?: (maxBytes?: number) => Promise<string>;
  /** The terminal's width, asked only when a table is drawn on a TTY (main.ts reads it from fd 1). */
  readonly terminalColumns?: () => number | undefined;
  /**
   * Host paths of pci.ids to use when the --root tree has none (default: the usual hwdata
   * paths on this machine; tests point at test/fixtures/pci.ids or at nothing).
   */
  readonly pciIdsFallback?: readonly string[];
  /**
   * How to name vfioctl in a suggested command so that it runs as printed: `vfioctl` when
   * that is on PATH, else the path it was started by (`./bin/vfioctl`). Default `vfioctl`.
   */
  readonly invokedAs?: () => string;
  /** The directory vfioctl is installed in (bin/, examples/, schema/), for hints naming shipped files. */
  readonly packageDir?: string;
  /** Whether stderr is a terminal (probe's reset-on-open warning goes there only then). Default false. */
  readonly stderrIsTTY?: () => Promise<boolean>;
  /** The open/close/ioctl calls of `probe` and `reset-plan --verify` (default: libc's, through koffi; tests pass a fake kernel). */
  readonly vfioSys?: () => Promise<import('../vfio/sys.js').VfioSys>;
  /**
   * Called by a command about to read every function of a large host (groups), with the
   * FsRoot it reads through: the real process sets V8 flags for a long scan and switches
   * the reads to libc's calls there (main.ts); absent in tests.
   */
  readonly tuneForLongScan?: (fs: import('../sysfs/fsroot.js').FsRoot) => void;
  /** Per-run state that main.ts reads back (set by run(); absent when a test builds a context by hand). */
  readonly runState?: RunState;
}

/** What one run did that main.ts needs to know when it ends in an error. */
export interface RunState {
  /** A command printed its --json document (then main.ts prints no error document). */
  jsonPrinted: boolean;
}

export interface GlobalOptions {
  root?: string;
  json?: boolean;
  color?: boolean;
  verbose?: boolean;
}

/** Per-invocation state derived from the global options. */
export interface Session {
  readonly ctx: CliContext;
  readonly fs: FsRoot;
  readonly json: boolean;
  readonly chalk: ChalkInstance;
  readonly verbose: boolean;
  /** Fields every JSON document of this run carries besides its own (e.g. `recovered`). */
  readonly jsonExtras: Record<string, unknown>;
  print(text: string): void;
  printJson(doc: Record<string, unknown>): void;
  /** Vendor, device, subsystem and class names (pci.ids of the tree, else of this host). */
  pciNames(): PciNames;
  warn(text: string): void;
}

export const SCHEMA_VERSION = 1;

/**
 * `--root` (or VFIOCTL_ROOT) must name an existing directory: a missing path, a file, a
 * dangling link or a link loop is a usage error (exit 2), never "an empty host". Empty is a
 * usage error too (it would silently mean the current directory).
 */
export function checkRoot(root: string, source: string): string {
  const fail = (why: string) => usageError(`${source} ${quoteShort(root, 200)}`, why, 'name the directory that holds sys/, proc/, dev/ … (default /); nothing was changed');
  if (root === '') throw fail('is empty');
  let st: import('node:fs').Stats;
  try {
    st = statSync(root);
  } catch (err) {
    const code = errnoOf(err);
    throw fail(code === 'ENOENT' ? 'no such directory (or a dangling symbolic link)'
      : code === 'ELOOP' ? 'a loop of symbolic links'
      : code === 'ENOTDIR' ? 'not a directory' : `cannot be used: ${errnoMeaning(code)}`);
  }
  if (!st.isDirectory()) throw fail('not a directory');
  return root;
}

export function openSession(ctx: CliContext, cmd: Command): Session {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const root = opts.root !== undefined ? checkRoot(opts.root, '--root')
    : ctx.env.VFIOCTL_ROOT !== undefined ? checkRoot(ctx.env.VFIOCTL_ROOT, 'VFIOCTL_ROOT') : '/';
  const json = opts.json === true;
  const fs = ctx.makeFs ? ctx.makeFs(root) : new FsRoot(root);
  const chalk = makeChalk(json ? 0 : resolveColorLevel(ctx.env, ctx.isTTY, opts.color));
  const errChalk = makeChalk(resolveColorLevel(ctx.env, ctx.isTTY, opts.color));
  fs.onWrite = opts.verbose ? (p, v) => void ctx.stderr.write(`write ${p} <- ${JSON.stringify(v)}\n`) : undefined;
  const jsonExtras: Record<string, unknown> = {};
  return {
    ctx,
    fs,
    jsonExtras,
    json,
    chalk,
    verbose: opts.verbose === true,
    print: (text) => void ctx.stdout.write(text.endsWith('\n') ? text : text + '\n'),
    printJson: (doc) => {
      if (ctx.runState) ctx.runState.jsonPrinted = true;
      // Written in pieces (a LazyArray member is made as it is written): the text of a large
      // host's document is never held whole.
      writeJson({ schemaVersion: SCHEMA_VERSION, ...doc, ...jsonExtras }, (text) => void ctx.stdout.write(text), '\n');
    },
    pciNames: () => loadPciNames(fs, fs.root === '/' ? [] : ctx.pciIdsFallback ?? PCI_IDS_CANDIDATES),
    warn: (text) => void ctx.stderr.write(`${errChalk.yellow('warning:')} ${text}\n`),
  };
}
