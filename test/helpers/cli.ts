import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli/main.js';
import type { Runner } from '../../src/cli/context.js';
import type { FsRoot } from '../../src/sysfs/fsroot.js';
import { validateJsonRun } from './schema.js';

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
  /** Host pci.ids used when the tree has none (default: none, so no test depends on the machine's). */
  pciIdsFallback?: readonly string[];
  /** Where vfioctl is installed (default: this checkout). */
  packageDir?: string;
  /** Skip the --json schema check (only for tests of invalid output handling). */
  noSchemaCheck?: boolean;
  /** The fake VFIO kernel for probe and reset-plan --verify (helpers/fake-vfio.ts). */
  vfioSys?: () => Promise<import('../../src/vfio/sys.js').VfioSys>;
  /** Whether stderr is a terminal (probe's reset-on-open warning). */
  stderrIsTTY?: boolean;
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

/**
 * Run vfioctl in-process with string sinks; `--root` is added when `root` is given. Every run
 * with --json is checked against schema/ (helpers/schema.ts): one document, the right schema.
 */
export async function cli(argv: string[], root?: string, opts: CliOptions = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const full = root ? ['--root', root, ...argv] : argv;
  const code = await run(full, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: opts.env ?? { NO_COLOR: '1' },
    isTTY: opts.isTTY ?? false,
    runner: opts.runner ?? recordingRunner().runner,
    packageDir: opts.packageDir ?? REPO,
    pciIdsFallback: opts.pciIdsFallback ?? [],
    ...(opts.makeFs ? { makeFs: opts.makeFs } : {}),
    ...(opts.readStdin ? { readStdin: opts.readStdin } : {}),
    ...(opts.vfioSys ? { vfioSys: opts.vfioSys } : {}),
    ...(opts.stderrIsTTY !== undefined ? { stderrIsTTY: async () => opts.stderrIsTTY! } : {}),
  });
  if (!opts.noSchemaCheck) validateJsonRun(full, code, stdout);
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}
