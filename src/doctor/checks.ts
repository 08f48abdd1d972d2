import type { DoctorFacts, NodeFact } from './facts.js';
import { paramValue, parseCmdline, type CmdlineParam } from './cmdline.js';

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';

export interface CheckResult {
  /** Stable id (kebab-case); part of the JSON contract. */
  readonly id: string;
  readonly status: CheckStatus;
  /** Stable kebab-case word for this outcome of the check (JSON contract; vfioctl(8), doctor). */
  readonly code: string;
  readonly message: string;
  /** What to do about it; null when nothing needs doing. */
  readonly fix: string | null;
}

const pass = (id: string, code: string, message: string): CheckResult => ({ id, status: 'PASS', code, message, fix: null });
const warn = (id: string, code: string, message: string, fix: string): CheckResult => ({ id, status: 'WARN', code, message, fix });
const fail = (id: string, code: string, message: string, fix: string): CheckResult => ({ id, status: 'FAIL', code, message, fix });

const GRUB_FIX = '(Debian/Ubuntu: GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot';
/** Module parameter booleans print as Y/N; a few builds print 1/0. */
const isOn = (v: string | undefined | null) => v !== undefined && v !== null && /^(y|1|on|true)$/i.test(v.trim());

/** Command-line tokens that switch the IOMMU off (kernel.md §8.1). */
function iommuOffTokens(params: readonly CmdlineParam[]): string[] {
  const off: string[] = [];
  for (const name of ['intel_iommu', 'amd_iommu']) {
    const v = paramValue(params, name);
    if (v !== undefined && v !== null && v.split(',').includes('off')) off.push(`${name}=${v}`);
  }
  const iommu = paramValue(params, 'iommu');
  if (iommu === 'off') off.push('iommu=off');
  return off;
}

function checkIommuActive(f: DoctorFacts, params: readonly CmdlineParam[]): CheckResult {
  const id = 'iommu-active';
  if (f.iommuGroupCount > 0) {
    const units = f.iommuUnits.length ? `units: ${f.iommuUnits.join(', ')}` : 'no units under /sys/class/iommu';
    return pass(id, 'iommu-active', `IOMMU active: ${f.iommuGroupCount} IOMMU group${f.iommuGroupCount === 1 ? '' : 's'} (${units})`);
  }
  if (f.iommuUnits.length > 0) {
    return fail(id, 'iommu-init-failed', `IOMMU units registered (${f.iommuUnits.join(', ')}) but no IOMMU groups exist`,
      'check the kernel log (dmesg | grep -i -e DMAR -e AMD-Vi -e iommu) for initialisation errors');
  }
  const off = iommuOffTokens(params);
  if (off.length) return fail(id, 'iommu-off-cmdline', `no IOMMU groups: the kernel command line turns the IOMMU off (${off.join(' ')})`, `remove ${off.join(' ')} from the kernel command line ${GRUB_FIX}`);
  if (f.firmwareDmar) return fail(id, 'iommu-not-enabled-dmar', 'no IOMMU groups although firmware has a DMAR table (Intel VT-d)', `add intel_iommu=on to the kernel command line ${GRUB_FIX}`);
  if (f.firmwareIvrs) return fail(id, 'iommu-not-enabled-ivrs', 'no IOMMU groups although firmware has an IVRS table (AMD-Vi)', 'check the kernel log for AMD-Vi errors; make sure amd_iommu=off is not set and the IOMMU is enabled in firmware setup');
  return fail(id, 'iommu-inactive', 'no IOMMU groups: the IOMMU is not active', 'enable VT-d (Intel) or IOMMU/AMD-Vi (AMD) in the firmware setup, then boot with intel_iommu=on on Intel');
}

function checkIommuCmdline(f: DoctorFacts, params: readonly CmdlineParam[]): CheckResult {
  const id = 'iommu-cmdline';
  const off = iommuOffTokens(params);
  if (off.length) return fail(id, 'iommu-off-cmdline', `the kernel command line disables the IOMMU: ${off.join(' ')}`, `remove ${off.join(' ')} from the kernel command line ${GRUB_FIX}`);
  const given = params.filter((p) => ['intel_iommu', 'amd_iommu', 'iommu'].includes(p.name)).map((p) => p.raw);
  if (given.length) {
    const pt = paramValue(params, 'iommu') === 'pt' ? ' (iommu=pt keeps host devices in passthrough; VFIO switches the domain when it claims a group)' : '';
    return pass(id, 'iommu-options', `IOMMU options on the command line: ${given.join(' ')}${pt}`);
  }
  if (f.iommuGroupCount === 0 && f.firmwareDmar) {
    // Debian's 6.1 kernel, among others, is built with CONFIG_INTEL_IOMMU_DEFAULT_ON off.
    return fail(id, 'intel-iommu-not-default', 'no intel_iommu= option, and this kernel does not enable VT-d by default', `add intel_iommu=on to the kernel command line ${GRUB_FIX}`);
  }
  return pass(id, 'no-iommu-options', f.iommuGroupCount > 0 ? 'no IOMMU options on the command line; the kernel enables the IOMMU by default' : 'no IOMMU options on the command line');
}

function checkFirmware(f: DoctorFacts): CheckResult {
  const id = 'iommu-firmware';
  const tables = [f.firmwareDmar ? 'DMAR (Intel VT-d)' : '', f.firmwareIvrs ? 'IVRS (AMD-Vi)' : ''].filter(Boolean);
  if (tables.length) return pass(id, 'firmware-table', `firmware describes an IOMMU: ${tables.join(', ')}`);
  if (f.iommuGroupCount > 0) return pass(id, 'iommu-other-description', 'no DMAR or IVRS ACPI table; the IOMMU is described another way (device tree, virtio-iommu)');
  return fail(id, 'no-firmware-table', 'firmware has no DMAR or IVRS ACPI table: VT-d/AMD-Vi is disabled in firmware setup or not supported',
    'enable VT-d (Intel) or IOMMU/AMD-Vi (AMD) in the firmware setup; on a VM, give it a virtual IOMMU (QEMU: -device intel-iommu,intremap=on)');
}

function checkInterruptRemapping(f: DoctorFacts, params: readonly CmdlineParam[]): CheckResult {
  const id = 'interrupt-remapping';
  const unsafe = isOn(f.type1AllowUnsafeInterrupts) || isOn(f.iommufdAllowUnsafeInterrupts);
  if (f.interrupts === undefined) {
    const captured = f.root !== undefined && f.root !== '/';
    return warn(id, 'interrupts-unreadable', `cannot read /proc/interrupts${captured ? ` in ${f.root}` : ''} to see whether interrupt remapping is on`,
      captured
        ? "capture the host with 'vfioctl snapshot DIR' (it copies /proc/interrupts), then run 'vfioctl --root DIR doctor'"
        : 'run vfioctl doctor on the host itself, where /proc is mounted (not in a container without /proc)');
  }
  // Remapped MSI chips are named IR-PCI-MSI…, IR-IO-APIC (Intel and AMD); GICv3 ITS isolates MSIs on arm64.
  if (/\bIR-[A-Z]/.test(f.interrupts)) return pass(id, 'remapping-on', 'interrupt remapping is on (IR- interrupt chips in /proc/interrupts)');
  if (/\bITS-(?:pMSI|MSI|fMSI)/.test(f.interrupts)) return pass(id, 'its-msi', 'MSIs are isolated by a GICv3 ITS');
  if (f.iommuGroupCount === 0) return warn(id, 'iommu-off', 'no interrupt remapping (the IOMMU is off)', 'enable the IOMMU first (see iommu-active)');
  if (!/\bPCI-MSI/.test(f.interrupts)) return warn(id, 'no-msi-in-use', 'no MSI interrupts in use, so /proc/interrupts cannot show whether remapping is on', "check the kernel log for 'Enabled IRQ remapping' (Intel) or 'Interrupt remapping enabled' (AMD)");
  const intremap = paramValue(params, 'intremap');
  const cause = intremap === 'off' ? ' (intremap=off is on the command line)' : '';
  if (unsafe) return warn(id, 'unsafe-interrupts-allowed', `MSIs are not remapped${cause}; VFIO works only because allow_unsafe_interrupts is set`, 'enable interrupt remapping (VT-d/x2APIC in firmware; no intremap=off) and drop allow_unsafe_interrupts');
  return fail(id, 'not-remapped', `MSIs are not remapped${cause}: VFIO refuses to attach groups (EPERM, "No interrupt remapping support")`,
    `enable interrupt remapping in firmware${intremap === 'off' ? ' and remove intremap=off' : ''}; only on a trusted host, vfio_iommu_type1.allow_unsafe_interrupts=1 works around it`);
}

function checkModule(f: DoctorFacts, module: 'vfio' | 'vfio_pci' | 'vfio_iommu_type1'): CheckResult {
  const id = `module-${module.replace(/_/g, '-')}`;
  if (f.modules[module] || (module === 'vfio_pci' && f.vfioPciDriver)) return pass(id, 'module-loaded', `${module} is loaded`);
  if (module === 'vfio_iommu_type1' && f.modules.iommufd) return pass(id, 'iommufd-loaded', 'vfio_iommu_type1 is not loaded; iommufd is (it can provide the container)');
  return warn(id, 'module-not-loaded', `${module} is not loaded`, `modprobe vfio-pci (loads vfio and vfio_iommu_type1 too); vfioctl bind loads it on demand`);
}

function checkUnsafeInterrupts(f: DoctorFacts): CheckResult {
  const id = 'allow-unsafe-interrupts';
  const on = [isOn(f.type1AllowUnsafeInterrupts) ? 'vfio_iommu_type1' : '', isOn(f.iommufdAllowUnsafeInterrupts) ? 'iommufd' : ''].filter(Boolean);
  if (on.length) {
    return warn(id, 'unsafe-interrupts-on', `allow_unsafe_interrupts is on (${on.join(', ')}): a device given to a guest can inject interrupts into the host`,
      'remove allow_unsafe_interrupts from /etc/modprobe.d and the kernel command line unless the platform truly lacks interrupt remapping');
  }
  return pass(id, 'unsafe-interrupts-off', f.type1AllowUnsafeInterrupts === undefined && f.iommufdAllowUnsafeInterrupts === undefined ? 'allow_unsafe_interrupts is not set (module not loaded)' : 'allow_unsafe_interrupts is off');
}

function checkVfioPciIds(params: readonly CmdlineParam[]): CheckResult {
  const id = 'vfio-pci-ids';
  const ids = params.filter((p) => p.name === 'vfio_pci.ids');
  if (!ids.length) return pass(id, 'no-vfio-pci-ids', 'no vfio-pci.ids= on the kernel command line');
  return warn(id, 'vfio-pci-ids', `${ids.map((p) => p.raw).join(' ')} on the kernel command line: every device with these ids, present or hot-plugged, binds to vfio-pci without any group or in-use check`,
    `remove it ${GRUB_FIX}, and keep the bindings per device instead: 'vfioctl apply --export > /root/vfio.json', then 'vfioctl persist /root/vfio.json'`);
}

function checkAcsOverride(params: readonly CmdlineParam[]): CheckResult {
  const id = 'acs-override';
  const acs = params.filter((p) => p.name === 'pcie_acs_override');
  if (!acs.length) return pass(id, 'no-acs-override', 'no ACS override: IOMMU groups reflect the hardware');
  return warn(id, 'acs-override', `${acs.map((p) => p.raw).join(' ')} (an out-of-tree patch) is in use: groups may be split where the hardware does not isolate, so devices in different groups can still reach each other by peer-to-peer DMA`,
    'remove pcie_acs_override= unless you accept that risk; move the card to a slot with a root port that has ACS');
}

function checkNoiommu(f: DoctorFacts): CheckResult {
  const id = 'noiommu';
  const nodes = f.groupNodes.filter((n) => /\/noiommu-\d+$/.test(n.path)).map((n) => n.path);
  if (isOn(f.noiommuMode) || nodes.length) {
    const what = nodes.length ? `; noiommu groups in use: ${nodes.join(', ')}` : '';
    return warn(id, 'noiommu-on', `unsafe noiommu mode is enabled (vfio.enable_unsafe_noiommu_mode): devices without an IOMMU group can be bound with no DMA protection, tainting the kernel${what}`,
      "set vfio.enable_unsafe_noiommu_mode=0 (echo N > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode) unless this host is meant to run without an IOMMU");
  }
  return pass(id, 'noiommu-off', f.noiommuMode === undefined ? 'noiommu mode is not available (vfio not loaded or built without CONFIG_VFIO_NOIOMMU)' : 'noiommu mode is off');
}

/** What `vfioctl grant` is given for the first of these nodes: its group, else any device. */
function grantTarget(nodes: readonly NodeFact[]): string {
  const group = nodes.map((n) => /^\/dev\/vfio\/(\d+)$/.exec(n.path)?.[1]).find((g) => g !== undefined);
  return group === undefined ? 'SELECTOR' : `group:${group}`;
}

const octal = (m: number) => m.toString(8).padStart(4, '0');
const owner = (n: NodeFact) => `${n.path} ${n.uid}:${n.gid} ${octal(n.mode)}`;

function checkDevVfio(f: DoctorFacts): CheckResult {
  const id = 'dev-vfio-permissions';
  if (!f.devVfio) return warn(id, 'no-dev-vfio', '/dev/vfio does not exist (vfio is not loaded)', 'modprobe vfio-pci');
  // Group and device nodes are 0600 root:root by default; anything "other" can open devices.
  const open = [...f.groupNodes, ...f.deviceNodes].filter((n) => (n.mode & 0o006) !== 0);
  if (open.length) {
    return fail(id, 'world-accessible', `world-accessible VFIO nodes, any local user can take over their devices: ${open.map(owner).join(', ')}`,
      `chmod 0600 ${open.map((n) => n.path).join(' ')}, or give one user access with 'vfioctl grant ${grantTarget(open)} --user USER'`);
  }
  if (f.container && (f.container.mode & 0o666) !== 0o666) {
    return warn(id, 'container-not-0666', `/dev/vfio/vfio is ${octal(f.container.mode)}: users granted a group cannot open the container`, 'chmod 0666 /dev/vfio/vfio (the kernel default; it grants nothing by itself)');
  }
  const granted = [...f.groupNodes, ...f.deviceNodes].filter((n) => n.uid !== 0 || n.gid !== 0);
  const summary = `${f.groupNodes.length} group node${f.groupNodes.length === 1 ? '' : 's'}`;
  return pass(id, 'permissions-ok', granted.length ? `${summary}; granted to non-root: ${granted.map(owner).join(', ')}` : `${summary}, none accessible to other users`);
}

const olderThan66 = (release: string | null): boolean | null => {
  const m = release ? /^(\d+)\.(\d+)/.exec(release) : null;
  return m ? Number(m[1]) < 6 || (Number(m[1]) === 6 && Number(m[2]) < 6) : null;
};

/** Where iommufd stands: built in, a loaded module, a module on disk, absent, or unknown. */
function iommufdState(f: DoctorFacts): 'builtin' | 'loaded' | 'available' | 'absent' | 'unknown' {
  const i = f.iommufd!;
  const cfg = i.config?.CONFIG_IOMMUFD;
  if (i.sysModule || f.modules.iommufd) return i.loadable ? 'loaded' : 'builtin';
  if (i.builtinListed === true || cfg === 'y') return 'builtin';
  if (i.depListed === true || cfg === 'm') return 'available';
  if (i.config !== null || (i.depListed === false && i.builtinListed === false)) return 'absent';
  return 'unknown';
}

/** iommufd (kernel.md §1.3): module or built in, /dev/iommu and its mode. */
function checkIommufd(f: DoctorFacts): CheckResult {
  const id = 'iommufd';
  const state = iommufdState(f);
  const node = f.iommufdNode ? `/dev/iommu is ${f.iommufdNode.uid}:${f.iommufdNode.gid} ${octal(f.iommufdNode.mode)}` : 'no /dev/iommu';
  if (state === 'builtin' || state === 'loaded') {
    const what = state === 'builtin' ? 'iommufd is built into the kernel' : 'iommufd is loaded as a module';
    if (!f.iommufdNode) return warn(id, 'iommufd-no-node', `${what}, but there is no /dev/iommu`, 'check that devtmpfs/udev created /dev/iommu (misc device "iommu"); VFIO cdev users need it');
    return pass(id, state === 'builtin' ? 'iommufd-builtin' : 'iommufd-loaded', `${what}; ${node}`);
  }
  if (state === 'available') return pass(id, 'iommufd-available', `iommufd is a module of this kernel, not loaded (${node}); 'modprobe iommufd' when a VMM wants the cdev interface`);
  if (state === 'absent') return pass(id, 'iommufd-absent', `this kernel has no iommufd (CONFIG_IOMMUFD off): VFIO is used through groups and the type1 container only`);
  return pass(id, 'iommufd-unknown', `iommufd is not loaded, and neither the kernel config nor modules.dep/modules.builtin says whether it exists (${node})`);
}

/** Whether vfio-bound devices offer a cdev (/dev/vfio/devices/vfioX, 6.6+ with CONFIG_VFIO_DEVICE_CDEV). */
function checkCdev(f: DoctorFacts): CheckResult {
  const id = 'vfio-cdev';
  const i = f.iommufd!;
  const cdevs = Math.max(i.vfioDevCdevs, f.deviceNodes.length);
  if (cdevs > 0) return pass(id, 'cdev-offered', `${cdevs} vfio device${cdevs === 1 ? '' : 's'} offer${cdevs === 1 ? 's' : ''} a cdev under /dev/vfio/devices: a VMM can use them through iommufd, one device at a time`);
  const cfg = i.config?.CONFIG_VFIO_DEVICE_CDEV;
  if (cfg === 'y') return pass(id, 'cdev-supported', 'the kernel is built with CONFIG_VFIO_DEVICE_CDEV; no vfio-bound device offers one yet');
  if (olderThan66(i.kernelRelease) === true) return pass(id, 'cdev-not-offered', `kernel ${i.kernelRelease} is older than 6.6: no VFIO device cdevs, only group nodes`);
  if (i.vfioDevEntries > 0 || (i.config !== null && cfg !== 'y')) {
    return pass(id, 'cdev-not-offered', i.vfioDevEntries > 0
      ? `${i.vfioDevEntries} vfio device${i.vfioDevEntries === 1 ? '' : 's'} without a cdev (no device number under /sys/class/vfio-dev): the kernel is built without CONFIG_VFIO_DEVICE_CDEV; only group nodes`
      : 'the kernel is built without CONFIG_VFIO_DEVICE_CDEV: only group nodes');
  }
  return pass(id, 'cdev-unknown', 'no vfio-bound device shows whether this kernel offers VFIO device cdevs');
}

/** Who provides the legacy container /dev/vfio/vfio: VFIO with vfio_iommu_type1, or iommufd's compatibility mode. */
function checkContainer(f: DoctorFacts): CheckResult {
  const id = 'vfio-container';
  const i = f.iommufd!;
  const cfg = i.config;
  const node = f.container ? '/dev/vfio/vfio' : 'the container (/dev/vfio/vfio, absent now)';
  const compat = `${node} is provided by iommufd's compatibility mode (CONFIG_IOMMUFD_VFIO_CONTAINER): group users get iommufd underneath; its allow_unsafe_interrupts is iommufd's, and a non-viable group fails at VFIO_GROUP_GET_DEVICE_FD rather than at VFIO_GROUP_SET_CONTAINER`;
  if (cfg?.CONFIG_IOMMUFD_VFIO_CONTAINER === 'y') return pass(id, 'container-iommufd', compat);
  if (f.modules.vfio_iommu_type1 || cfg?.CONFIG_VFIO_CONTAINER === 'y' || cfg?.CONFIG_VFIO_IOMMU_TYPE1 === 'y' || cfg?.CONFIG_VFIO_IOMMU_TYPE1 === 'm') {
    return pass(id, 'container-type1', `${node} is VFIO's own container, backed by vfio_iommu_type1`);
  }
  const state = iommufdState(f);
  const type1Missing = i.type1DepListed === false && i.type1BuiltinListed !== true;
  if (type1Missing && (state === 'builtin' || state === 'loaded' || state === 'available')) return pass(id, 'container-iommufd', compat);
  if (i.type1DepListed === true || i.type1BuiltinListed === true) return pass(id, 'container-type1', `${node} is VFIO's own container, backed by vfio_iommu_type1 (loaded on first use)`);
  return pass(id, 'container-unknown', `cannot tell whether ${node} comes from vfio_iommu_type1 or iommufd (no kernel config, modules.dep or loaded module says)`);
}

/** Every check, in a fixed order. Pure: facts in, results out. */
export function runChecks(f: DoctorFacts): CheckResult[] {
  const params = parseCmdline(f.cmdline);
  return [
    checkIommuActive(f, params),
    checkIommuCmdline(f, params),
    checkFirmware(f),
    checkInterruptRemapping(f, params),
    checkModule(f, 'vfio'),
    checkModule(f, 'vfio_pci'),
    checkModule(f, 'vfio_iommu_type1'),
    checkUnsafeInterrupts(f),
    checkVfioPciIds(params),
    checkAcsOverride(params),
    checkNoiommu(f),
    checkDevVfio(f),
    // Appended: older fact sets (without iommufd) keep their list.
    ...(f.iommufd ? [checkIommufd(f), checkCdev(f), checkContainer(f)] : []),
  ];
}
