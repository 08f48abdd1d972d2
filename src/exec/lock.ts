import type { ChildProcess } from 'node:child_process';
import { VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { ensureStateDir, STATE_ROOT } from './journal.js';

/**
 * One vfioctl at a time may change bindings. The lock is a kernel flock(2) on
 * /run/vfioctl/lock, held by a `flock … cat` child whose standard input is a pipe from this
 * process: when vfioctl ends in any way (SIGKILL and crashes included) the pipe closes, cat
 * exits and the kernel drops the lock. So a dead holder never blocks anyone, a pid that was
 * reused by an unrelated process holds nothing, and two processes can never hold it at once
 * (the kernel decides, not a read-then-delete of a pid file). The directory is root's alone
 * (ensureStateDir), so no other user can take or block the lock. The holder writes its pid
 * beside it, only to say who is being waited for.
 */
export const LOCK_PATH = `${STATE_ROOT}/lock`;
export const HOLDER_PATH = `${STATE_ROOT}/lock.holder`;
/** flock's exit status when the lock is held (--conflict-exit-code). */
const BUSY = 75;

export interface Lock {
  /** Drop the lock; resolves once the kernel has released it (the flock child has exited). */
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long to wait for another vfioctl (ms). */
  readonly waitMs: number;
  /** Called once when the lock is busy and we start waiting (a terminal says for whom). */
  readonly onWait?: (holderPid: number | null) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One attempt: the child holding the lock, or 'busy'. */
async function tryFlock(abs: string): Promise<ChildProcess | 'busy'> {
  const { spawn } = await import('node:child_process');
  const child = spawn('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(BUSY), '--', abs, 'cat'], { stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stderr = '';
    let settled = false;
    const settle = (f: () => void) => {
      if (!settled) {
        settled = true;
        f();
      }
    };
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // cat echoes the byte back only once flock holds the lock and has started it.
    child.stdout!.once('data', () => settle(() => resolve(child)));
    child.once('error', (err) => settle(() => reject(new VfioctlError(ExitCode.FAILURE, `cannot lock ${LOCK_PATH}`, `cannot run flock(1): ${(err as Error).message}`, 'install util-linux (it provides flock)'))));
    child.once('exit', (code) => settle(() => (code === BUSY
      ? resolve('busy')
      : reject(new VfioctlError(ExitCode.FAILURE, `cannot lock ${LOCK_PATH}`, `flock exited ${code}${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}`)))));
    child.stdin!.on('error', () => {}); // a flock that exited at once closes the pipe
    child.stdin!.write('\n');
  });
}

/** How long a lock whose recorded holder is dead may stay busy before it counts as held. */
const ORPHAN_GRACE_MS = 3000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holderPid(fs: FsRoot): number | null {
  const n = Number.parseInt(fs.read(HOLDER_PATH)?.trim() ?? '', 10);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** Take the lock, waiting up to `waitMs` for another vfioctl to finish. */
export async function takeLock(fs: FsRoot, opts: LockOptions): Promise<Lock> {
  ensureStateDir(fs);
  const info = fs.lstatInfo(LOCK_PATH);
  if (info !== undefined && info.kind !== 'file') {
    throw new VfioctlError(ExitCode.FAILURE, LOCK_PATH, `is a ${info.kind === 'dir' ? 'directory' : info.kind === 'link' ? 'symbolic link' : 'special file'}, not a lock file`, `remove it (rm -r ${LOCK_PATH}) and run again`, { errorCode: 'unsafe-state-dir' });
  }
  const abs = fs.abs(LOCK_PATH);
  const deadline = Date.now() + opts.waitMs;
  let told = false;
  for (;;) {
    const got = await tryFlock(abs);
    if (got !== 'busy') {
      const child = got;
      // The pipes must not keep vfioctl alive; the lock ends with the process anyway.
      child.unref();
      for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
      try {
        fs.writeFileAtomic(HOLDER_PATH, `${process.pid}\n`, 0o600);
      } catch {
        // Only a courtesy for waiters; the flock is what counts.
      }
      let held = true;
      return {
        release: async () => {
          if (!held) return;
          held = false;
          try {
            if (holderPid(fs) === process.pid) fs.removeFile(HOLDER_PATH);
          } catch {
            // A stale holder file only misnames whom a waiter waits for; the flock is what counts.
          }
          const gone = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));
          child.stdin!.end();
          // Wait (briefly) so the next vfioctl in this process finds the lock free; the timer
          // must not keep a finished process alive.
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([gone, new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
          clearTimeout(timer);
        },
      };
    }
    const pid = holderPid(fs);
    // A holder killed outright (SIGKILL) leaves its flock child behind for a moment, until it
    // sees its pipe close: wait that out rather than refuse the next run.
    if (Date.now() >= deadline && !(pid !== null && !processAlive(pid) && Date.now() < deadline + ORPHAN_GRACE_MS)) {
      throw new VfioctlError(ExitCode.FAILURE, `cannot lock ${LOCK_PATH}`, `another vfioctl${pid ? ` (pid ${pid})` : ''} is changing device bindings`,
        'wait for it to finish, or set VFIOCTL_LOCK_TIMEOUT to the seconds to wait', { errorCode: 'locked' });
    }
    if (!told) {
      told = true;
      opts.onWait?.(pid);
    }
    await sleep(Date.now() >= deadline ? 50 : Math.min(100, Math.max(1, deadline - Date.now())));
  }
}
