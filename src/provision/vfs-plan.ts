import type { Step } from '../exec/steps.js';
import type { PciDevice } from '../model/types.js';

/**
 * The sriov_numvfs sequence for one PF (kernel.md §9), pure. The kernel refuses a change
 * between two non-zero counts (EBUSY), a count above sriov_totalvfs (ERANGE) and any count on
 * a PF without a driver (ENOENT); those are caught here, before any write.
 */
export type VfStep =
  | { op: 'autoprobe'; value: 0 | 1 }
  | { op: 'numvfs'; value: number };

export type VfRefusal = { code: 'not-pf' | 'range' | 'no-driver' | 'vfio-pf'; reason: string };

export interface VfPlan {
  readonly steps: VfStep[];
  /** Existing VFs that the steps destroy (must not be in use). */
  readonly destroys: readonly string[];
  readonly refusal: VfRefusal | null;
}

export function planVfs(pf: PciDevice, count: number, bind: boolean, autoprobe: 0 | 1 | null, vfioPciSriov: boolean): VfPlan {
  const none = (code: VfRefusal['code'], reason: string): VfPlan => ({ steps: [], destroys: [], refusal: { code, reason } });
  if (pf.sriovTotalVfs === null) return none('not-pf', `${pf.bdf} has no SR-IOV capability (no sriov_totalvfs)`);
  if (count > pf.sriovTotalVfs) {
    return none('range', `${count} VFs asked but the device supports at most ${pf.sriovTotalVfs} (sriov_totalvfs); the kernel would refuse with ERANGE`);
  }
  const current = pf.sriovNumVfs ?? 0;
  if (current === count) return { steps: [], destroys: [], refusal: null };
  if (count > 0 && pf.driver === null) {
    return none('no-driver', `${pf.bdf} has no driver; VFs are created by the PF's driver, so sriov_numvfs gives ENOENT until one is bound`);
  }
  if (count > 0 && pf.driver === 'vfio-pci' && !vfioPciSriov) {
    return none('vfio-pf', `${pf.bdf} is on vfio-pci, which creates VFs only with vfio_pci.enable_sriov=1 (else ENOENT)`);
  }
  const steps: VfStep[] = [];
  if (current > 0) steps.push({ op: 'numvfs', value: 0 }); // non-zero to non-zero is EBUSY
  if (count > 0) {
    // With autoprobe 0 new VFs stay unbound, so no host VF driver grabs them before vfio does.
    const flip = bind && autoprobe === 1;
    if (flip) steps.push({ op: 'autoprobe', value: 0 });
    steps.push({ op: 'numvfs', value: count });
    if (flip) steps.push({ op: 'autoprobe', value: 1 });
  }
  return { steps, destroys: current > 0 ? [...pf.virtfns] : [], refusal: null };
}

/** The executor steps of a VF plan, split where the new VFs get bound: autoprobe goes back on last. */
export function vfsSteps(pf: string, plan: VfPlan): { create: Step[]; finish: Step[] } {
  const toStep = (st: VfStep): Step => (st.op === 'numvfs' ? { op: 'numvfs', pf, value: st.value } : { op: 'autoprobe', pf, value: st.value });
  const isRestore = (st: VfStep) => st.op === 'autoprobe' && st.value === 1;
  return { create: plan.steps.filter((st) => !isRestore(st)).map(toStep), finish: plan.steps.filter(isRestore).map(toStep) };
}
