import type { Bdf } from '../model/address.js';

/**
 * The steps a mutating command plans, as plain data: planners build them without I/O and the
 * executor carries them out. Every step changes one *subject* (a device's binding, a PF's
 * SR-IOV state, a device node's ownership, a file). Before the first step that touches a
 * subject, the executor records the subject's state in the journal; that recorded state is
 * the undo of every step on the subject, and each step is verified by reading the subject
 * back after the write.
 */
export type Step =
  /** Write driver_override (null clears it) and read it back. */
  | { readonly op: 'override'; readonly bdf: Bdf; readonly driver: string | null }
  /** Unbind from whatever driver the device is on; the driver link must be gone after. */
  | { readonly op: 'unbind'; readonly bdf: Bdf }
  /** drivers_probe; `want` must be the driver afterwards (null: the kernel's choice, unchecked). */
  | { readonly op: 'probe'; readonly bdf: Bdf; readonly want: string | null }
  /** Write the BDF to drivers/DRIVER/bind; the device must then be on it. */
  | { readonly op: 'bind'; readonly bdf: Bdf; readonly driver: string }
  /** sriov_drivers_autoprobe of a PF. */
  | { readonly op: 'autoprobe'; readonly pf: Bdf; readonly value: 0 | 1 }
  /** sriov_numvfs of a PF; the VF links must match afterwards. */
  | { readonly op: 'numvfs'; readonly pf: Bdf; readonly value: number }
  /** chown and chmod a device node. */
  | { readonly op: 'owner'; readonly path: string; readonly uid: number; readonly gid: number; readonly mode: number }
  /** Make a file hold `content` (atomically), be a symlink to `link`, or (both null) not exist. */
  | { readonly op: 'file'; readonly path: string; readonly content: string | null; readonly link: string | null; readonly mode: number };

export type SubjectKind = 'device' | 'sriov' | 'node' | 'file';

/** What one subject was before the run: enough to put it back, even from another process. */
export type SubjectState =
  | { readonly kind: 'device'; readonly bdf: Bdf; readonly driver: string | null; readonly override: string | null }
  | {
    readonly kind: 'sriov'; readonly pf: Bdf; readonly numvfs: number; readonly autoprobe: 0 | 1 | null;
    /** The VFs as they were, so a recreated VF goes back to the same driver and override. */
    readonly vfs: readonly { readonly bdf: Bdf; readonly driver: string | null; readonly override: string | null }[];
  }
  | { readonly kind: 'node'; readonly path: string; readonly uid: number; readonly gid: number; readonly mode: number }
  | { readonly kind: 'file'; readonly path: string; readonly content: string | null; readonly link: string | null; readonly mode: number | null };

/** The subject a step changes, as a stable key (`device:0000:01:00.0`, `file:/etc/…`). */
export function subjectOf(step: Step): { kind: SubjectKind; id: string } {
  switch (step.op) {
    case 'override':
    case 'unbind':
    case 'probe':
    case 'bind':
      return { kind: 'device', id: step.bdf };
    case 'autoprobe':
    case 'numvfs':
      return { kind: 'sriov', id: step.pf };
    case 'owner':
      return { kind: 'node', id: step.path };
    case 'file':
      return { kind: 'file', id: step.path };
  }
}

export const subjectKey = (s: { kind: SubjectKind; id: string }) => `${s.kind}:${s.id}`;

export function subjectIdOf(state: SubjectState): string {
  switch (state.kind) {
    case 'device':
      return state.bdf;
    case 'sriov':
      return state.pf;
    case 'node':
    case 'file':
      return state.path;
  }
}

/** One line for logs and --verbose: what the step writes where. */
export function describeStep(step: Step): string {
  switch (step.op) {
    case 'override':
      return `${step.bdf}: driver_override = ${step.driver ?? '(clear)'}`;
    case 'unbind':
      return `${step.bdf}: unbind from its driver`;
    case 'probe':
      return `${step.bdf}: drivers_probe${step.want ? ` (expect ${step.want})` : ''}`;
    case 'bind':
      return `${step.bdf}: bind to ${step.driver}`;
    case 'autoprobe':
      return `${step.pf}: sriov_drivers_autoprobe = ${step.value}`;
    case 'numvfs':
      return `${step.pf}: sriov_numvfs = ${step.value}`;
    case 'owner':
      return `${step.path}: owner ${step.uid}:${step.gid} mode ${step.mode.toString(8).padStart(4, '0')}`;
    case 'file':
      return step.content !== null ? `${step.path}: write` : step.link !== null ? `${step.path}: link -> ${step.link}` : `${step.path}: remove`;
  }
}
