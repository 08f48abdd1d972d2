import type { Command } from 'commander';
import type { ChalkInstance } from 'chalk';
import { statSync } from 'node:fs';
import { errnoMeaning, errnoOf, usageError } from '../errors.js';
import { quoteShort } from '../model/names.js';
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
  /**
   * Set once a write failed for another reason than the reader going away (ENOSPC, EIO):
   * what was printed since is lost. A command that changed something says so on stderr
   * when this is set; run() exits 1 with the message (src/cli/stdio.ts).
   */
  readonly failure?: Error | undefined;
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
  /**
   * Standard input as text, for `apply -` and `persist -`: at most `maxBytes + 1` bytes of it
   * when `maxBytes` is given (the caller refuses more; src/provision/read-input.ts).
   */
  readonly readStdin?: (maxBytes?: number) => Promise<string>;
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
