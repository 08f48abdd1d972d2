import { JOURNAL_PATH, readJournal, removeJournal } from '../exec/journal.js';
import { VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { rollbackSubjects, type ExecOptions, type SubjectOutcome, type Transaction } from '../exec/executor.js';
import { takeLock, type Lock } from '../exec/lock.js';
import { describeStep, type Step } from '../exec/steps.js';
import type { Session } from './context.js';

/**
 * What every mutating command does around its change: take the lock, finish the business of
 * an interrupted earlier run (put its subjects back), run the change through the executor,
 * release the lock. Dry runs take no lock and change nothing.
 */

/** Seconds to wait for another vfioctl's lock (VFIOCTL_LOCK_TIMEOUT). */
export function lockWaitMs(env: Record<string, string | undefined>): number {
  const n = Number(env.VFIOCTL_LOCK_TIMEOUT ?? '10');
  return Number.isFinite(n) && n >= 0 && n <= 86_400 ? n * 1000 : 10_000;
}

export interface Recovery {
  readonly pid: number;
  readonly command: string;
  readonly startedAt: string;
  /** Every subject the interrupted run had recorded, as put back now. */
  readonly subjects: readonly SubjectOutcome[];
  readonly complete: boolean;
}

/**
 * An earlier run that was killed (SIGKILL, power cut, crash) left its journal: put everything it
 * recorded back to the state before that run, say so on stderr and in this run's JSON.
 */
export function recoverInterrupted(s: Session): Recovery | null {
  const read = readJournal(s.fs);
  if (read.state === 'none') return null;
  if (read.state === 'damaged') {
    s.warn(`${read.why}: an interrupted run's journal that cannot be trusted was removed; check the devices with vfioctl groups`);
    try {
      removeJournal(s.fs);
    } catch (err) {
      throw new VfioctlError(ExitCode.FAILURE, `cannot remove ${JOURNAL_PATH}`, err instanceof Error ? err.message : String(err), `remove it by hand: rm ${JOURNAL_PATH}`);
    }
    s.jsonExtras.recovered = { damaged: read.why };
    return null;
  }
  const j = read.journal;
  const subjects = rollbackSubjects(s.fs, j.subjects);
  try {
    removeJournal(s.fs);
  } catch (err) {
    throw new VfioctlError(ExitCode.FAILURE, `cannot remove ${JOURNAL_PATH}`, `${err instanceof Error ? err.message : String(err)}; the interrupted run's devices were put back, but its journal stays`, `remove it by hand (rm ${JOURNAL_PATH}) once the devices look right in vfioctl groups`);
  }
  const complete = subjects.every((x) => x.status === 'rolled-back');
  s.warn(`an earlier vfioctl run (pid ${j.pid}, "${j.command}", started ${j.startedAt}) was interrupted; ${complete ? 'put back' : 'tried to put back'} what it had changed:`);
  for (const x of subjects) {
    s.ctx.stderr.write(`  ${x.kind} ${x.id}: ${x.status === 'rolled-back' ? 'restored' : `NOT restored: ${x.left}; fix: ${x.fix}`}\n`);
  }
  const recovery = { pid: j.pid, command: j.command, startedAt: j.startedAt, subjects, complete };
  s.jsonExtras.recovered = recovery;
  return recovery;
}

/** Run `fn` holding the change lock (after recovering an interrupted run), unless this is a dry run. */
export async function withChange<T>(s: Session, dryRun: boolean, fn: () => Promise<T>): Promise<T> {
  if (dryRun) {
    if (readJournal(s.fs).state !== 'none') s.warn('an interrupted vfioctl run left changes behind; the next run that is not a dry run puts them back first');
    return fn();
  }
  const lock: Lock = await takeLock(s.fs, {
    waitMs: lockWaitMs(s.ctx.env),
    onWait: (pid) => {
      if (s.ctx.isTTY) s.ctx.stderr.write(`waiting for vfioctl${pid ? ` (pid ${pid})` : ''} to finish…\n`);
    },
  });
  try {
    recoverInterrupted(s);
    return await fn();
  } finally {
    await lock.release();
  }
}

/**
 * Executor options for a command: its journal name, signal handling in the real process, and
 * the test hook VFIOCTL_TEST_PAUSE_BEFORE_STEP=N (say so on stderr before step N, then wait up
 * to VFIOCTL_TEST_PAUSE_MS, default 20 s, or until a signal) that lets tests interrupt a change
 * at a chosen step.
 */
export function execOptions(s: Session, command: string): Omit<ExecOptions, 'fs'> {
  const at = s.ctx.env.VFIOCTL_TEST_PAUSE_BEFORE_STEP;
  const pauseAt = at !== undefined && /^\d{1,4}$/.test(at) ? Number(at) : null;
  const pauseMs = Math.min(Number(s.ctx.env.VFIOCTL_TEST_PAUSE_MS ?? '20000') || 20000, 600_000);
  return {
    command: command.slice(0, 200),
    catchSignals: s.ctx.catchSignals === true,
    ...(pauseAt === null ? {} : {
      beforeStep: async (index: number, step: Step, tx?: Transaction) => {
        if (index !== pauseAt) return;
        s.ctx.stderr.write(`vfioctl: test hook: paused before step ${index}: ${describeStep(step)}\n`);
        const until = Date.now() + pauseMs;
        while (Date.now() < until && !tx?.interrupted) await new Promise((r) => setTimeout(r, 20));
      },
    }),
  };
}
