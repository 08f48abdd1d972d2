import type { Command } from 'commander';
import type { ChalkInstance } from 'chalk';
import { FsRoot } from '../sysfs/fsroot.js';
import { loadPciNames, type PciNames } from '../sysfs/pciids.js';
import { PCI_IDS_CANDIDATES } from '../sysfs/paths.js';
import { makeChalk, resolveColorLevel } from './color.js';

import type { Runner, Writer } from '../ports.js';

export type { RunResult, Runner, Writer } from '../ports.js';

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
  /** Standard input as text, for `apply -` and `persist -`. */
  readonly readStdin?: () => Promise<string>;
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

export function openSession(ctx: CliContext, cmd: Command): Session {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const root = opts.root ?? ctx.env.VFIOCTL_ROOT ?? '/';
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
      ctx.stdout.write(JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...doc, ...jsonExtras }, null, 2) + '\n');
    },
    pciNames: () => loadPciNames(fs, fs.root === '/' ? [] : ctx.pciIdsFallback ?? PCI_IDS_CANDIDATES),
    warn: (text) => void ctx.stderr.write(`${errChalk.yellow('warning:')} ${text}\n`),
  };
}
