import * as path from 'node:path';
import { notFound, usageError } from '../errors.js';
import { FsRoot } from '../sysfs/fsroot.js';

/**
 * The desired-state file named on the command line: a host path (not under --root, which
 * is the system being changed), or `-` for standard input.
 */
export async function readDesiredInput(file: string, readStdin: (() => Promise<string>) | undefined, cwd: string): Promise<{ text: string; source: string }> {
  if (file === '-') {
    if (!readStdin) throw usageError('cannot read standard input', 'not available here');
    return { text: await readStdin(), source: '<stdin>' };
  }
  const abs = path.resolve(cwd, file);
  const text = new FsRoot('/').readText(abs);
  if (text === undefined) throw notFound(`file ${file}`, 'cannot read it (missing or not readable)');
  return { text, source: file };
}
