import type { Command } from 'commander';
import type { ChalkInstance } from 'chalk';
import { FsRoot } from '../sysfs/fsroot.js';
import { makeChalk, resolveColorLevel } from './color.js';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with an argument array (never a shell string). Injected so tests can record. */
export type Runner = (file: string, args: readonly string[]) => Promise<RunResult>;

export interface Writer {
  write(text: string): unknown;
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
  return {
    ctx,
    fs,
    json,
    chalk,
    verbose: opts.verbose === true,
    print: (text) => void ctx.stdout.write(text.endsWith('\n') ? text : text + '\n'),
    printJson: (doc) => void ctx.stdout.write(JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...doc }, null, 2) + '\n'),
    warn: (text) => void ctx.stderr.write(`${errChalk.yellow('warning:')} ${text}\n`),
  };
}
