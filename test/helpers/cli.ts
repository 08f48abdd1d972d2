import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli/main.js';
import type { Runner } from '../../src/cli/context.js';
import type { FsRoot } from '../../src/sysfs/fsroot.js';

/** The checkout (tests run from dist/test/…) and its shipped entry point. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(REPO, 'bin/vfioctl');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (throws if it is not exactly one document). */
  json: () => any;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  isTTY?: boolean;
  runner?: Runner;
  makeFs?: (root: string) => FsRoot;
  /** Standard input for `apply -` (given the cap, as the real reader is). */
  readStdin?: (maxBytes?: number) => Promise<string>;
}

/** A runner that records calls and fails them all unless told otherwise. */
export function recordingRunner(answer: (file: string, args: readonly string[]) => { exitCode: number; stdout?: string; stderr?: string } = () => ({ exitCode: 1, stderr: 'not available in tests' })) {
  const calls: { file: string; args: string[] }[] = [];
  const runner: Runner = async (file, args) => {
    calls.push({ file, args: [...args] });
    const a = answer(file, args);
    return { exitCode: a.exitCode, stdout: a.stdout ?? '', stderr: a.stderr ?? '' };
  };
  return { runner, calls };
}

/** Run vfioctl in-process with string sinks; `--root` is added when `root` is given. */
export async function cli(argv: string[], root?: string, opts: CliOptions = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(root ? ['--root', root, ...argv] : argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: opts.env ?? { NO_COLOR: '1' },
    isTTY: opts.isTTY ?? false,
    runner: opts.runner ?? recordingRunner().runner,
    ...(opts.makeFs ? { makeFs: opts.makeFs } : {}),
    ...(opts.readStdin ? { readStdin: opts.readStdin } : {}),
  });
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}
