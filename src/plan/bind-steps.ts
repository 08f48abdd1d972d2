import type { Bdf } from '../model/address.js';
import { STATE_DIR, recordPath, recordText, type DeviceRecord } from '../apply/state.js';
import type { Step } from '../exec/steps.js';
import type { PlannedAction } from './bind-plan.js';

/**
 * The executor steps of a bind or unbind plan, in the kernel's order (kernel.md §3.5):
 * override first, then unbind, then probe (or an explicit bind), each read back by the
 * executor. Pure: what the device had before and the resolved driver names come in.
 */
export interface DeviceFacts {
  /** driver_override now. */
  readonly override: string | null;
  /** Module of the driver it is on now (for its record). */
  readonly module: string | null;
  /** Its record under /run/vfioctl, if any. */
  readonly record: DeviceRecord | undefined;
}

/** The device whose action a bind/unbind step belongs to: its own, or the one its record is of. */
export function deviceOfStep(step: Step): Bdf | null {
  if (step.op === 'file') return step.path.startsWith(`${STATE_DIR}/`) ? step.path.slice(STATE_DIR.length + 1).replace(/\.json$/, '') : null;
  return 'bdf' in step ? step.bdf : null;
}

export function bindSteps(
  work: readonly { action: PlannedAction; driver: string | null }[],
  facts: ReadonlyMap<Bdf, DeviceFacts>,
  now: string,
): Step[] {
  const out: Step[] = [];
  const forget: Step[] = [];
  const record = (bdf: Bdf, rec: DeviceRecord): Step => ({ op: 'file', path: recordPath(bdf), content: recordText(rec), link: null, mode: 0o600 });
  for (const { action: a, driver } of work) {
    const f = facts.get(a.bdf);
    if (a.kind === 'bind') {
      const to = driver!;
      // From the host (or unbound): this is what unbind gives it back to. A record left from an
      // earlier bind is stale once something else put the device back on the host.
      if (!a.fromVfio) out.push(record(a.bdf, { bdf: a.bdf, driver: a.from, module: f?.module ?? null, override: f?.override ?? null, boundTo: to, at: now }));
      // vfio-pci → variant (or back): the device still belongs to the host driver recorded first.
      else if (f?.record) out.push(record(a.bdf, { ...f.record, boundTo: to }));
      out.push(
        { op: 'override', bdf: a.bdf, driver: to },
        { op: 'unbind', bdf: a.bdf },
        { op: 'probe', bdf: a.bdf, want: to },
      );
    } else if (a.kind === 'release') {
      out.push(
        { op: 'override', bdf: a.bdf, driver: null },
        { op: 'unbind', bdf: a.bdf },
        driver !== null ? { op: 'bind', bdf: a.bdf, driver } : { op: 'probe', bdf: a.bdf, want: null },
      );
      // Released devices are the host's again: their records go last, once nothing else can fail.
      if (f?.record) forget.push({ op: 'file', path: recordPath(a.bdf), content: null, link: null, mode: 0o600 });
    }
  }
  return [...out, ...forget];
}
