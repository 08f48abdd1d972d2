import { fstatSync, readSync, writeSync } from 'node:fs';
import type { Writer } from './context.js';

// stdout and stderr for the real process, as plain write(2)s. process.stdout would load
// Node's stream machinery on every start-up (2–4 ms, as much as scanning a small host) to
// do the same thing: on Linux Node writes stdio synchronously anyway.

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * A writer that puts all of each text on `fd`. A full non-blocking pipe is waited out;
 * a reader that went away (EPIPE: `vfioctl groups --json | head`) calls `onReaderGone`,
 * which ends vfioctl quietly as SIGPIPE ends a C tool. Any other failure (ENOSPC, EIO:
 * `vfioctl groups > /dev/full`) is kept in `failure` and later texts are dropped: run()
 * then exits 1 with the message on standard error, and a command that changed something
 * can tell from `failure` that its report on standard output was lost.
 */
export function fdWriter(fd: number, onReaderGone: () => void): Writer & { failure: Error | undefined } {
  const writer = {
    failure: undefined as Error | undefined,
    write(text: string): boolean {
      if (writer.failure) return false;
      // The text itself first: Node encodes it into its own memory (a 4.7 MB groups --json
      // in about a third of the time of making a Buffer of it). Only a write cut short (a
      // signal, a full non-blocking pipe) goes on from a Buffer, at the byte it stopped at.
      let off = 0;
      try {
        off = writeSync(fd, text);
      } catch {
        // EAGAIN and the rest: met again, and handled, below
      }
      const size = Buffer.byteLength(text, 'utf8');
      if (off === size) return true;
      const buf = Buffer.from(text, 'utf8');
      while (off < buf.length) {
        try {
          off += writeSync(fd, buf, off, buf.length - off);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') {
            Atomics.wait(PAUSE, 0, 0, 1);
          } else if (code === 'EPIPE') {
            onReaderGone();
            return false;
          } else {
            writer.failure = err instanceof Error ? err : new Error(String(err));
            return false;
          }
        }
      }
      return true;
    },
  };
  return writer;
}

/**
 * Up to `maxBytes + 1` bytes from `fd` (standard input for `apply -`), so a caller can tell
 * "more than the cap" without reading /dev/zero or `yes` to the end. Waits out EAGAIN on a
 * non-blocking descriptor; stops at end of file.
 */
export function readFdCapped(fd: number, maxBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(maxBytes + 1);
  let total = 0;
  while (total < buf.length) {
    let n: number;
    try {
      n = readSync(fd, buf, total, buf.length - total, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(PAUSE, 0, 0, 1);
        continue;
      }
      throw err;
    }
    if (n === 0) break;
    total += n;
  }
  return buf.subarray(0, total);
}

/** Character major 1: the kernel's memory devices (/dev/null, zero, full, random, urandom, kmsg), never a terminal. */
const MEM_MAJOR = 1;

/** The major number of a device number, as glibc's major() takes it apart. */
export function majorOf(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

/**
 * Whether `fd` is a terminal. Only a character device can be one, so pipes and files are
 * answered by fstat alone, and so is /dev/null (a script's `>/dev/null`) by its major;
 * node:tty, which loads the net and stream modules (3–4 ms), is loaded only to tell a
 * terminal from the remaining character devices.
 */
export async function isTerminal(fd: number): Promise<boolean> {
  try {
    const st = fstatSync(fd);
    if (!st.isCharacterDevice() || majorOf(st.rdev) === MEM_MAJOR) return false;
  } catch {
    return false;
  }
  const tty = await import('node:tty');
  return tty.isatty(fd);
}
