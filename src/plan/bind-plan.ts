import type { Bdf } from '../model/address.js';
import { isVfioDriver, keepsGroupViable } from '../model/drivers.js';
import { deviceOf, groupOf, isVfioBound } from '../model/host.js';
import type { Host, PciDevice } from '../model/types.js';

/**
 * Bind and unbind planning: which device goes where, which is left alone, which is refused
 * and why. Pure: the command gathers the facts (variant choice, host use, records) first.
 */

export type ActionStatus = 'planned' | 'bound' | 'unbound' | 'unchanged' | 'refused' | 'failed' | 'rolled-back';

export type RefusalCode = 'bridge' | 'variant-mismatch' | 'module-missing' | 'group' | 'in-use' | 'no-iommu-group' | 'sriov-vfs' | 'not-attempted';

/** A host-use finding as the planner needs it (matches sysfs/in-use HostUse). */
export interface UseFinding {
  readonly code: string;
  readonly detail: string;
}

/** The driver a device should go to, as resolved for it. */
export interface DriverChoice {
  readonly driver: string;
  readonly module: string | null;
  /** The driver is registered now (else its module must be loaded first). */
  readonly registered: boolean;
  /** One of the module's vfio_pci aliases matches the device (always true for vfio-pci). */
  readonly matches: boolean;
  /** Not registered, and its module is known not to be on disk (modules.dep, modules.builtin, /sys/module): loading it would fail. */
  readonly missing?: boolean;
}

export interface PlannedAction {
  readonly bdf: Bdf;
  readonly from: string | null;
  /** Driver the device should end on; null = whatever the kernel probes (unbind without a record). */
  readonly to: string | null;
  readonly module: string | null;
  /** bind: to vfio; release: back from vfio; unchanged; refused. */
  readonly kind: 'bind' | 'release' | 'unchanged' | 'refused';
  readonly reason: string | null;
  readonly refusal: RefusalCode | null;
  /** Refusals overridden by --force and other things worth saying. */
  readonly warnings: readonly string[];
  /** Brought in by --group rather than selected. */
  readonly pulledIn: boolean;
  /** Must be loaded before the write (its driver is not registered). */
  readonly needsLoad: boolean;
  /** The device is on a vfio-family driver now (its host driver, if recorded, stays recorded). */
  readonly fromVfio: boolean;
}

export interface Plan {
  readonly actions: readonly PlannedAction[];
  /** Some action is refused: nothing may be written. */
  readonly refused: boolean;
  /** A real run would change something. */
  readonly changes: boolean;
}

/** Host uses that do not make a plan refuse: an interface that is merely up carries no traffic yet. */
const INFORMATIONAL = new Set(['net-up']);

function driverLabel(d: PciDevice): string {
  return `${d.bdf} (${d.driver ?? 'no driver'})`;
}

function finish(actions: PlannedAction[]): Plan {
  const refused = actions.some((a) => a.kind === 'refused');
  // A refusal stops the whole run: report the others as not attempted, so the output
  // never suggests a partial change happened.
  const out = refused
    ? actions.map((a) => (a.kind === 'bind' || a.kind === 'release'
      ? { ...a, kind: 'unchanged' as const, refusal: 'not-attempted' as const, reason: 'not attempted: another device was refused' }
      : a))
    : actions;
  return { actions: out, refused, changes: !refused && out.some((a) => a.kind === 'bind' || a.kind === 'release') };
}

function refuseOrWarn(force: boolean, code: RefusalCode, reason: string, warnings: string[]): { code: RefusalCode; reason: string } | null {
  if (!force) return { code, reason };
  warnings.push(`${reason} (overridden by --force)`);
  return null;
}

export interface BindInput {
  readonly host: Host;
  /** Selected devices, sorted. */
  readonly selected: readonly Bdf[];
  /** Devices named directly (not only through group:N): a bridge among them is refused, not skipped. */
  readonly explicit: ReadonlySet<Bdf>;
  readonly group: boolean;
  readonly force: boolean;
  /** Driver choice for every selected device and every endpoint of their groups. */
  readonly choices: ReadonlyMap<Bdf, DriverChoice>;
  readonly uses: ReadonlyMap<Bdf, readonly UseFinding[]>;
  /** noiommu mode is enabled: devices without a group can still be bound. */
  readonly noiommu: boolean;
  /** Drivers known to be vfio-family beyond isVfioBound (variants whose module has vfio_pci aliases). */
  readonly vfioDrivers: ReadonlySet<string>;
  /** --variant auto: a device already on any vfio driver stays there (switching needs an explicit name). */
  readonly keepVfio?: boolean;
}

const isVfioDevice = (d: PciDevice, vfioDrivers: ReadonlySet<string>) => isVfioBound(d) || (d.driver !== null && vfioDrivers.has(d.driver));

/** Plan `vfioctl bind`. */
export function planBind(input: BindInput): Plan {
  const { host, force } = input;
  // Targets in address order; value = pulled in by --group.
  const targets = new Map<Bdf, boolean>();
  for (const bdf of input.selected) {
    const d = deviceOf(host, bdf);
    if (d.bridge && !input.explicit.has(bdf)) continue; // group:N: bridges stay where they are
    targets.set(bdf, false);
  }
  const groupIds = [...new Set([...targets.keys()].map((b) => deviceOf(host, b).iommuGroup).filter((g): g is number => g !== null))];
  if (input.group) {
    for (const id of groupIds) {
      for (const peer of groupOf(host, id)?.devices ?? []) {
        const p = deviceOf(host, peer);
        // Already-viable peers (unbound, pcieport, pci-stub, vfio) are left alone; bridges stay.
        if (targets.has(peer) || p.bridge || keepsGroupViable(p.driver, p.vfioFamily) || input.vfioDrivers.has(p.driver ?? '')) continue;
        targets.set(peer, true);
      }
    }
  }

  // Members that would keep a DMA-API driver once the targets are bound.
  const blockersOf = new Map<number, PciDevice[]>();
  for (const id of groupIds) {
    const blockers = (groupOf(host, id)?.devices ?? [])
      .filter((b) => !targets.has(b))
      .map((b) => deviceOf(host, b))
      .filter((p) => !keepsGroupViable(p.driver, p.vfioFamily) && !input.vfioDrivers.has(p.driver ?? ''));
    if (blockers.length > 0) blockersOf.set(id, blockers);
  }

  const sorted = [...targets.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const actions: PlannedAction[] = sorted.map((bdf) => {
    const d = deviceOf(host, bdf);
    const pulledIn = targets.get(bdf) ?? false;
    const choice = input.choices.get(bdf);
    const warnings: string[] = [];
    const base = { bdf, from: d.driver, to: choice?.driver ?? null, module: choice?.module ?? null, pulledIn, warnings, needsLoad: false, fromVfio: isVfioDevice(d, input.vfioDrivers) };
    const refuse = (code: RefusalCode, reason: string): PlannedAction => ({ ...base, kind: 'refused', refusal: code, reason });

    if (d.bridge) return refuse('bridge', 'a bridge cannot be bound to a vfio driver (the kernel refuses it with EINVAL); bind the endpoints behind it');
    if (!choice) return refuse('variant-mismatch', 'no vfio driver can be chosen for this device (no modalias, and its ids are unknown)');
    if (d.driver === choice.driver) return { ...base, kind: 'unchanged', refusal: null, reason: `already bound to ${choice.driver}` };
    if (input.keepVfio && base.fromVfio) {
      return { ...base, to: d.driver, kind: 'unchanged', refusal: null, reason: `already bound to ${d.driver} (a vfio driver; name --variant ${choice.driver} to switch)` };
    }

    const checks: ({ code: RefusalCode; reason: string } | null)[] = [];
    if (!choice.matches) {
      checks.push(refuseOrWarn(force, 'variant-mismatch',
        `${choice.driver} does not support ${d.vendorId}:${d.deviceId}: no vfio_pci alias of module ${choice.module ?? choice.driver} matches its modalias, and the kernel would bind it anyway`, warnings));
    }
    if (choice.missing) {
      checks.push(refuseOrWarn(force, 'module-missing',
        `module ${choice.module ?? choice.driver} is named in modules.alias but is not installed for this kernel (not loaded, not built in, no .ko in modules.dep), so loading it would fail; install it or name another driver with --variant`, warnings));
    }
    const blockers = d.iommuGroup === null ? undefined : blockersOf.get(d.iommuGroup);
    if (blockers) {
      const bridges = blockers.filter((p) => p.bridge);
      const fix = bridges.length > 0 ? `unbind ${bridges.map((p) => p.bdf).join(', ')} from ${bridges.map((p) => p.driver).join(', ')} (bridges cannot use vfio)` : 'use --group to bind them too';
      checks.push(refuseOrWarn(force, 'group',
        `IOMMU group ${d.iommuGroup} would not be viable: ${blockers.map(driverLabel).join(', ')} would keep a host driver; ${fix}`, warnings));
    }
    if (d.iommuGroup === null && !input.noiommu) {
      checks.push(refuseOrWarn(force, 'no-iommu-group', 'the device has no IOMMU group (IOMMU off?), so vfio-pci cannot take it', warnings));
    }
    if ((d.sriovNumVfs ?? 0) > 0) {
      checks.push(refuseOrWarn(force, 'sriov-vfs', `the device has ${d.sriovNumVfs} SR-IOV VFs enabled; vfio-pci refuses such a PF (EBUSY); set sriov_numvfs to 0 first`, warnings));
    }
    const fromVfio = base.fromVfio;
    const uses = (input.uses.get(bdf) ?? []).filter((u) => (fromVfio ? u.code === 'vfio-open' : true));
    for (const u of uses.filter((x) => INFORMATIONAL.has(x.code))) warnings.push(u.detail);
    const blocking = uses.filter((u) => !INFORMATIONAL.has(u.code));
    if (blocking.length > 0) {
      checks.push(refuseOrWarn(force, 'in-use',
        `in use by the host: ${blocking.map((u) => u.detail).join('; ')}${fromVfio ? ' (unbinding would block until it is closed)' : ''}`, warnings));
    }
    const first = checks.find((c) => c !== null);
    if (first) return refuse(first.code, first.reason);
    return { ...base, kind: 'bind', refusal: null, reason: pulledIn ? `bound with its group (--group)` : null, needsLoad: !choice.registered };
  });
  return finish(actions);
}

export interface UnbindInput {
  readonly host: Host;
  readonly selected: readonly Bdf[];
  readonly force: boolean;
  /** --to DRIVER, resolved. */
  readonly to: { driver: string; module: string | null } | null;
  /** Driver each device had before vfioctl bound it (from /run/vfioctl). */
  readonly records: ReadonlyMap<Bdf, { driver: string | null; module: string | null }>;
  readonly uses: ReadonlyMap<Bdf, readonly UseFinding[]>;
  readonly vfioDrivers: ReadonlySet<string>;
}

/** Plan `vfioctl unbind`: give vfio-bound devices back to a host driver. */
export function planUnbind(input: UnbindInput): Plan {
  const actions: PlannedAction[] = input.selected.map((bdf) => {
    const d = deviceOf(input.host, bdf);
    const warnings: string[] = [];
    const rec = input.records.get(bdf);
    const to = input.to?.driver ?? rec?.driver ?? null;
    const module = input.to ? input.to.module : rec?.module ?? null;
    const onVfio = isVfioDevice(d, input.vfioDrivers);
    const base = { bdf, from: d.driver, to, module, pulledIn: false, warnings, needsLoad: false, fromVfio: onVfio };
    const overrideVfio = d.driverOverride !== null && (isVfioDriver(d.driverOverride) || input.vfioDrivers.has(d.driverOverride));
    if (!onVfio && !(d.driver === null && overrideVfio)) {
      return { ...base, to: d.driver, kind: 'unchanged', refusal: null, reason: d.driver ? `not bound to a vfio driver (on ${d.driver})` : 'not bound to any driver' };
    }
    const open = (input.uses.get(bdf) ?? []).filter((u) => u.code === 'vfio-open');
    if (open.length > 0) {
      const r = refuseOrWarn(input.force, 'in-use', `a VFIO user has it open: ${open.map((u) => u.detail).join('; ')} (the kernel's unbind would block until it is closed)`, warnings);
      if (r) return { ...base, kind: 'refused', refusal: r.code, reason: r.reason };
    }
    if (to === null) warnings.push('no driver recorded for it under /run/vfioctl: the kernel picks one');
    return { ...base, kind: 'release', refusal: null, reason: null };
  });
  return finish(actions);
}

/**
 * One plan from a bind plan and a release plan (apply), with bind's all-or-nothing rule: if any
 * device is refused, nothing is attempted.
 */
export function mergePlans(plans: readonly Plan[]): Plan {
  const all = plans.flatMap((p) => p.actions).sort((a, b) => (a.bdf < b.bdf ? -1 : a.bdf > b.bdf ? 1 : 0));
  return finish(all);
}
