import type { FsRoot } from '../sysfs/fsroot.js';
import { ExitCode } from '../exit-codes.js';
import { VfioctlError } from '../errors.js';
import { removeJournal, writeJournal, type Journal } from './journal.js';
import { capture, failureOf, perform, restore, StepFailure } from './subjects.js';
import { describeStep, subjectIdOf, subjectKey, subjectOf, type Step, type SubjectKind, type SubjectState } from './steps.js';

/**
 * The one executor every mutating command runs its plan through. For each step it records the
 * step's subject in the journal before the subject's first change, performs the step and reads
 * it back. On any failure — a refused write, a read-back that disagrees, a failure of the
 * journal itself, an unexpected exception, SIGINT or SIGTERM — it puts every subject it touched
 * back in reverse order and reports, per subject, whether that worked.
 */

export type SubjectStatus = 'changed' | 'unchanged' | 'rolled-back' | 'rollback-failed';

export interface SubjectOutcome {
  readonly kind: SubjectKind;
  /** BDF, PF BDF or path. */
  readonly id: string;
  readonly status: SubjectStatus;
  /** rollback-failed: what it is left as. */
  readonly left: string | null;
  /** rollback-failed: a command that puts it back by hand. */
  readonly fix: string | null;
}

/** SIGINT or SIGTERM arrived during a change. */
export class Interrupted extends Error {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
    this.name = 'Interrupted';
  }
}

export interface ExecOptions {
  readonly fs: FsRoot;
  /** What the journal says the run is (`bind 0000:01:00.0`). */
  readonly command: string;
  /** Catch SIGINT/SIGTERM while changing (the real process; off for in-process callers that do not want it). */
  readonly catchSignals?: boolean;
  /** Called before each step with its number; a test hook may wait here. */
  readonly beforeStep?: (index: number, step: Step, tx: Transaction) => Promise<void>;
}

export type ExecResult<T> =
  | { readonly ok: true; readonly value: T; readonly subjects: readonly SubjectOutcome[] }
  | {
    readonly ok: false;
    readonly error: unknown;
    /** The failure as a message and exit code (70 for a programming error). */
    readonly message: string;
    readonly exitCode: number;
    /** The step that failed, if the failure was a step's. */
    readonly failedStep: Step | null;
    readonly subjects: readonly SubjectOutcome[];
    /** Every touched subject reads as it was before the run. */
    readonly rolledBack: boolean;
  };

interface Touched {
  readonly kind: SubjectKind;
  readonly id: string;
  readonly before: SubjectState;
}

/** A failure of the system (an errno, or vfioctl's own error for one), not of vfioctl's code. */
function isSystemError(err: unknown): boolean {
  return err instanceof VfioctlError || err instanceof StepFailure
    || (typeof err === 'object' && err !== null && 'code' in err && /^E[A-Z0-9]+$/.test(String((err as { code: unknown }).code)));
}

/** Yield to the event loop twice, so a pending signal's handler gets to run. */
const yieldLoop = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)));

export class Transaction {
  private readonly touched = new Map<string, Touched>();
  private index = 0;
  private signal: string | null = null;
  private readonly startedAt = new Date().toISOString();
  failedStep: Step | null = null;

  constructor(private readonly opts: ExecOptions) {}

  /** Called by the signal handler: the current step finishes, then the run rolls back. */
  interrupt(signal: string): void {
    this.signal ??= signal;
  }

  get interrupted(): boolean {
    return this.signal !== null;
  }

  private checkInterrupted(): void {
    if (this.signal !== null) throw new Interrupted(this.signal);
  }

  private journal(): Journal {
    return { pid: process.pid, command: this.opts.command, startedAt: this.startedAt, subjects: [...this.touched.values()].map((t) => t.before) };
  }

  /** Perform steps in order; throws on the first failure (the caller rolls back). */
  async run(steps: readonly Step[]): Promise<void> {
    const { fs } = this.opts;
    for (const step of steps) {
      this.checkInterrupted();
      if (this.opts.beforeStep) {
        await this.opts.beforeStep(this.index, step, this);
        this.checkInterrupted();
      }
      const subject = subjectOf(step);
      const key = subjectKey(subject);
      this.failedStep = step;
      if (!this.touched.has(key)) {
        const before = capture(fs, subject.kind, subject.id);
        this.touched.set(key, { kind: subject.kind, id: subject.id, before });
        try {
          writeJournal(fs, this.journal());
        } catch (err) {
          if (!isSystemError(err)) throw err; // a bug stays a bug (exit 70, after the rollback)
          throw new StepFailure(`cannot record ${describeStep(step)} in the journal before changing it: ${failureOf(err).message}`, failureOf(err).exitCode);
        }
      }
      perform(fs, step);
      this.failedStep = null;
      this.index++;
      await yieldLoop();
    }
    this.checkInterrupted();
  }

  /** Everything changed: forget the journal (this is the commit point). */
  commit(): SubjectOutcome[] {
    removeJournal(this.opts.fs);
    return [...this.touched.values()].map((t) => ({ kind: t.kind, id: t.id, status: 'changed' as const, left: null, fix: null }));
  }

  /** Put every touched subject back, newest first; then forget the journal. */
  rollback(): SubjectOutcome[] {
    const out = rollbackSubjects(this.opts.fs, [...this.touched.values()].map((t) => t.before));
    try {
      removeJournal(this.opts.fs);
    } catch {
      // A journal that cannot be removed is acted on by the next run: it restores the same states.
    }
    return out;
  }
}

/** Restore recorded states newest first; each is tried whatever happened to the others. */
export function rollbackSubjects(fs: FsRoot, states: readonly SubjectState[]): SubjectOutcome[] {
  const out: SubjectOutcome[] = [];
  for (const before of [...states].reverse()) {
    const problem = restore(fs, before);
    out.push({ kind: before.kind, id: subjectIdOf(before), status: problem ? 'rollback-failed' : 'rolled-back', left: problem?.left ?? null, fix: problem?.fix ?? null });
  }
  return out.reverse();
}

/**
 * While `fn` runs, SIGINT and SIGTERM do not kill the process: they mark `target` interrupted,
 * and the current step finishes before the run rolls back.
 */
async function withSignals<T>(enabled: boolean, target: { interrupt(signal: string): void }, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  const onInt = () => target.interrupt('SIGINT');
  const onTerm = () => target.interrupt('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await fn();
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

/**
 * Run `body` as one all-or-nothing change. The body plans and calls `tx.run(steps)` as often as
 * it needs (vfs creates VFs, rescans, then binds them); any throw rolls back everything.
 */
export async function execute<T>(opts: ExecOptions, body: (tx: Transaction) => Promise<T>): Promise<ExecResult<T>> {
  const tx = new Transaction(opts);
  return withSignals(opts.catchSignals === true, tx, async () => {
    try {
      const value = await body(tx);
      return { ok: true as const, value, subjects: tx.commit() };
    } catch (error) {
      const failedStep = tx.failedStep;
      const subjects = tx.rollback();
      const rolledBack = subjects.every((s) => s.status === 'rolled-back');
      let message: string;
      let exitCode: number;
      if (error instanceof Interrupted) {
        message = error.message;
        exitCode = ExitCode.FAILURE;
      } else if (error instanceof StepFailure) {
        message = error.message;
        exitCode = error.exitCode;
      } else if (error instanceof VfioctlError) {
        message = `${error.what}: ${error.why}`;
        exitCode = error.code;
      } else {
        // A system error (errno) is a failure; anything else is a bug: rolled back all the same, then 70.
        message = failureOf(error).message;
        exitCode = isSystemError(error) ? failureOf(error).exitCode : ExitCode.INTERNAL;
      }
      return { ok: false as const, error, message, exitCode, failedStep, subjects, rolledBack };
    }
  });
}
