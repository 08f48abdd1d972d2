import type { Command } from 'commander';
import type { ChalkInstance } from 'chalk';
import { FsRoot } from '../sysfs/fsroot.js';
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
    printJson: (doc) => void ctx.stdout.write(JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...doc, ...jsonExtras }, null, 2) + '\n'),
    warn: (text) => void ctx.stderr.write(`${errChalk.yellow('warning:')} ${text}\n`),
  };
}
