import * as fs from 'node:fs';
import { run } from '../../src/cli/main.js';
import { FakeKernel } from './fake-kernel.js';

/**
 * vfioctl as a real process on a fake kernel, for tests that signal or kill it mid-change:
 *   node fake-cli.js ROOT SPEC.json [KERNEL-OPTIONS.json] -- vfioctl-args…
 * Standard output and error are the process's own; SIGINT and SIGTERM are caught as in bin/vfioctl.
 */
const [root, specFile, ...rest] = process.argv.slice(2);
const sep = rest.indexOf('--');
const optsFile = sep > 0 ? rest[0] : undefined;
const argv = rest.slice(sep + 1);
const spec = JSON.parse(fs.readFileSync(specFile!, 'utf8'));
const kernel = new FakeKernel(root!, spec, optsFile ? JSON.parse(fs.readFileSync(optsFile, 'utf8')) : {});
const write = (fd: number) => ({ write: (s: string) => fs.writeSync(fd, s) });
process.exitCode = await run(['--root', root!, ...argv], {
  stdout: write(1),
  stderr: write(2),
  env: process.env,
  isTTY: false,
  catchSignals: true,
  runner: async () => ({ exitCode: 1, stdout: '', stderr: 'no programs in tests' }),
  makeFs: () => kernel,
});
