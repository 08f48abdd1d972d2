import { VfioctlError, errnoMeaning, errnoOf } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { FsRoot } from '../sysfs/fsroot.js';

/**
 * One vfioctl at a time may change bindings: two runs interleaving driver_override and
 * unbind writes on the same group would leave both confused.
 *
 * The lock is a file created with O_CREAT|O_EXCL holding the owner's pid. Node has no
 * flock(2), and a helper process holding `flock` would outlive a crashed parent badly; the
 * pid file instead survives a crash, so a lock whose pid no longer exists is stale and is
 * taken over. (Two processes taking over the same stale lock at the same instant could
 * race; that needs a crash and a simultaneous start, and /run/lock is cleared at boot.)
 */
export const LOCK_PATH = '/run/lock/vfioctl.lock';

export interface Lock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return typeof err === 'object' && err !== null && 'code' in err && err.code === 'EPERM';
  }
}

const EMPTY_GRACE_MS = 500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Take the lock, waiting up to `waitMs` for another vfioctl to finish. */
export async function takeLock(fs: FsRoot, waitMs = 0): Promise<Lock> {
  const started = Date.now();
  const deadline = started + waitMs;
  for (;;) {
    let created: boolean;
    try {
      created = fs.createExclusive(LOCK_PATH, `${process.pid}\n`);
    } catch (err) {
      const code = errnoOf(err);
      throw new VfioctlError(code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? ExitCode.PERMISSION : ExitCode.FAILURE,
        `cannot create ${LOCK_PATH}`, errnoMeaning(code), 'run as root', { cause: err });
    }
    if (created) {
      let held = true;
      return {
        release: () => {
          if (!held) return;
          held = false;
          // Only remove the file if it is still ours.
          if (fs.read(LOCK_PATH)?.trim() === String(process.pid)) fs.removeFile(LOCK_PATH);
        },
      };
    }
    const text = fs.read(LOCK_PATH)?.trim() ?? '';
    // An empty file is a lock being created right now (open and write are two steps).
    if (text === '' && Date.now() - started < EMPTY_GRACE_MS) {
      await sleep(10);
      continue;
    }
    const owner = Number.parseInt(text, 10);
    if (!Number.isInteger(owner) || owner <= 0 || !alive(owner)) {
      fs.removeFile(LOCK_PATH); // stale: its owner is gone
      continue;
    }
    if (Date.now() >= deadline) {
      throw new VfioctlError(ExitCode.FAILURE, `cannot lock ${LOCK_PATH}`, `another vfioctl (pid ${owner}) is changing device bindings`,
        'wait for it to finish (VFIOCTL_LOCK_TIMEOUT sets how many seconds to wait)');
    }
    await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
  }
}
