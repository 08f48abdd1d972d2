import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { VfioctlError, errnoMeaning, errnoOf, notFound, usageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { quoteShort } from '../model/names.js';
import { readFdCapped } from '../cli/stdio.js';

/** Largest desired-state input accepted, file or standard input (a real one is a few KiB). */
export const INPUT_MAX_BYTES = 1 << 20;

const tooLarge = (source: string) =>
  usageError(source, `larger than ${INPUT_MAX_BYTES} bytes (1 MiB), the most a desired-state file may be`, 'give a desired-state file of at most 1 MiB; nothing was changed');

/**
 * The desired-state file named on the command line: a host path (not under --root, which
 * is the system being changed), or `-` for standard input. At most INPUT_MAX_BYTES are read
 * (`apply /dev/zero` and `yes | vfioctl apply -` stop there); a directory, a missing file or
 * more than the cap is an error that changes nothing.
 */
export async function readDesiredInput(file: string, readStdin: ((maxBytes?: number) => Promise<string>) | undefined, cwd: string): Promise<{ text: string; source: string }> {
  if (file === '-') {
    if (!readStdin) throw usageError('cannot read standard input', 'not available here');
    const text = await readStdin(INPUT_MAX_BYTES);
    if (text.length > INPUT_MAX_BYTES || Buffer.byteLength(text, 'utf8') > INPUT_MAX_BYTES) throw tooLarge('<stdin>');
    return { text, source: '<stdin>' };
  }
  const shown = file.length > 200 || /[\u0000-\u001f\u007f]/.test(file) ? quoteShort(file, 200) : file;
  if (file === '') throw usageError('file ""', 'empty file name', 'name a desired-state file, or - for standard input');
  const abs = resolve(cwd, file);
  let fd: number | undefined;
  try {
    // O_NONBLOCK: a FIFO without a writer reads as empty instead of hanging in open(2).
    fd = openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (st.isDirectory()) throw usageError(`file ${shown}`, 'is a directory', 'name a desired-state file; nothing was changed');
    if (st.isFile() && st.size > INPUT_MAX_BYTES) throw tooLarge(`file ${shown}`);
    const buf = readFdCapped(fd, INPUT_MAX_BYTES);
    if (buf.length > INPUT_MAX_BYTES) throw tooLarge(`file ${shown}`);
    return { text: buf.toString('utf8'), source: shown };
  } catch (err) {
    if (err instanceof VfioctlError) throw err;
    const code = errnoOf(err);
    if (code === 'ENAMETOOLONG' || code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') {
      throw usageError(`file ${shown}`, code === 'ENAMETOOLONG' ? 'name too long' : 'not a file name (it holds a NUL character)', 'name a desired-state file, or - for standard input');
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') throw notFound(`file ${shown}`, 'no such file', 'name a desired-state file, or - for standard input');
    if (code === 'EACCES' || code === 'EPERM') throw new VfioctlError(ExitCode.PERMISSION, `file ${shown}`, `cannot read it: ${errnoMeaning(code)}`);
    throw new VfioctlError(ExitCode.FAILURE, `file ${shown}`, `cannot read it: ${errnoMeaning(code)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
