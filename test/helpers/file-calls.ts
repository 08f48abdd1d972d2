import { createRequire } from 'node:module';
import { koffiOf } from '../../src/ffi/libc.js';
import { nodeFileCalls, type FileCalls } from '../../src/sysfs/file-calls.js';
import { libcFileCalls } from '../../src/sysfs/libc-file-calls.js';

/** libc's calls through koffi, as a long scan takes them (koffi is a dependency: its absence fails the test). */
export function libcCalls(): FileCalls {
  const calls = libcFileCalls(koffiOf(createRequire(import.meta.url)('koffi')));
  if (calls === null) throw new Error('libc file calls: libc could not be loaded through koffi');
  return calls;
}

/** Both call sets FsRoot reads through, for tests that must hold under each. */
export function eachFileCalls(): FileCalls[] {
  return [nodeFileCalls, libcCalls()];
}
