import { fstatSync, writeSync } from 'node:fs';
import type { Writer } from './context.js';

// stdout and stderr for the real process, as plain write(2)s. process.stdout would load
// Node's stream machinery on every start-up (2–4 ms, as much as scanning a small host) to
// do the same thing: on Linux Node writes stdio synchronously anyway.

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * A writer that puts all of each text on `fd`. A full non-blocking pipe is waited out;
 * a reader that went away (EPIPE: `vfioctl groups --json | head`) calls `onReaderGone`,
 * which ends vfioctl quietly as SIGPIPE ends a C tool.
 */
export function fdWriter(fd: number, onReaderGone: () => void): Writer {
  return {
    write(text: string): boolean {
      const buf = Buffer.from(text, 'utf8');
      for (let off = 0; off < buf.length; ) {
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
            throw err;
          }
        }
      }
      return true;
    },
  };
}

/**
 * Whether `fd` is a terminal. Only a character device can be one, so pipes and files are
 * answered by fstat alone; node:tty, which loads the net and stream modules (2–3 ms), is
 * loaded only to tell a terminal from other character devices such as /dev/null.
 */
export async function isTerminal(fd: number): Promise<boolean> {
  try {
    if (!fstatSync(fd).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  const tty = await import('node:tty');
  return tty.isatty(fd);
}
