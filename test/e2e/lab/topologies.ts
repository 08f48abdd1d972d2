/**
 * The lab's QEMU topologies: one VM per entry. Shared by the host (to build the
 * QEMU command line) and by the guest scenarios (to know which roles exist).
 *
 * Every VM also has, on the root bus: the q35 host bridge (00:00.0), the ICH9
 * functions at 00:1f, and the two virtio-9p devices at 00:10.0 and 00:11.0 that
 * carry the host's root and the results share (never unbound by scenarios).
 * NICs get no netdev backend on purpose: no frame can leave the VM.
 */

/** A device the scenarios look up by vendor:device (unique within its topology). */
export interface Role {
  readonly name: string;
  readonly vendor: string;
  readonly device: string;
  /** Host driver the kernel binds at boot. */
  readonly hostDriver: string;
}

export interface Topology {
  readonly name: string;
  readonly description: string;
  /** QEMU -device arguments (argument array, no shell). */
  readonly qemuArgs: readonly string[];
  readonly roles: readonly Role[];
  /** Extra setup a scenario may want (SR-IOV VFs to create). */
  readonly sriovVfs?: number;
}

const E1000E = { vendor: '8086', device: '10d3', hostDriver: 'e1000e' };
const NVME = { vendor: '1b36', device: '0010', hostDriver: 'nvme' };
const VIRTIO_NET = { vendor: '1af4', device: '1000', hostDriver: 'virtio-pci' };
const E1000 = { vendor: '8086', device: '100e', hostDriver: 'e1000' };
const RTL8139 = { vendor: '10ec', device: '8139', hostDriver: '8139cp' };

const dev = (...parts: string[]) => ['-device', parts.join(',')];

export const TOPOLOGIES: readonly Topology[] = [
  {
    name: 'rootbus',
    description: 'endpoints directly on the q35 root bus (no upstream bridge), plus the boot VGA device',
    qemuArgs: [
      '-vga', 'std',
      ...dev('e1000e', 'bus=pcie.0', 'addr=0x2', 'romfile='),
      ...dev('virtio-net-pci', 'bus=pcie.0', 'addr=0x3', 'disable-legacy=off', 'romfile='),
      ...dev('nvme', 'bus=pcie.0', 'addr=0x4', 'serial=lab-root'),
    ],
    roles: [
      { name: 'e1000e', ...E1000E },
      { name: 'virtio-net', ...VIRTIO_NET },
      { name: 'nvme', ...NVME },
    ],
  },
  {
    name: 'rootports',
    description: 'each endpoint behind its own pcie-root-port',
    qemuArgs: [
      ...dev('pcie-root-port', 'id=rp1', 'bus=pcie.0', 'addr=0x2', 'chassis=1'),
      ...dev('pcie-root-port', 'id=rp2', 'bus=pcie.0', 'addr=0x3', 'chassis=2'),
      ...dev('pcie-root-port', 'id=rp3', 'bus=pcie.0', 'addr=0x4', 'chassis=3'),
      ...dev('e1000e', 'bus=rp1', 'romfile='),
      ...dev('nvme', 'bus=rp2', 'serial=lab-rp'),
      ...dev('virtio-net-pci', 'bus=rp3', 'disable-legacy=off', 'romfile='),
    ],
    roles: [
      { name: 'e1000e', ...E1000E },
      { name: 'nvme', ...NVME },
      { name: 'virtio-net', ...VIRTIO_NET },
    ],
  },
  {
    name: 'switch',
    description: 'root port -> x3130 upstream port -> two xio3130 downstream ports with an endpoint each',
    qemuArgs: [
      ...dev('pcie-root-port', 'id=rp1', 'bus=pcie.0', 'addr=0x2', 'chassis=1'),
      ...dev('x3130-upstream', 'id=up1', 'bus=rp1'),
      ...dev('xio3130-downstream', 'id=dn1', 'bus=up1', 'chassis=2', 'slot=1'),
      ...dev('xio3130-downstream', 'id=dn2', 'bus=up1', 'chassis=3', 'slot=2'),
      ...dev('e1000e', 'bus=dn1', 'romfile='),
      ...dev('nvme', 'bus=dn2', 'serial=lab-sw'),
    ],
    roles: [
      { name: 'e1000e', ...E1000E },
      { name: 'nvme', ...NVME },
    ],
  },
  {
    name: 'pcibridge',
    description: 'root port -> pcie-pci-bridge with two conventional PCI devices (e1000, rtl8139)',
    qemuArgs: [
      ...dev('pcie-root-port', 'id=rp1', 'bus=pcie.0', 'addr=0x2', 'chassis=1'),
      ...dev('pcie-pci-bridge', 'id=pb1', 'bus=rp1'),
      ...dev('e1000', 'bus=pb1', 'addr=0x1', 'romfile='),
      ...dev('rtl8139', 'bus=pb1', 'addr=0x2', 'romfile='),
      ...dev('pcie-root-port', 'id=rp2', 'bus=pcie.0', 'addr=0x3', 'chassis=2'),
      ...dev('e1000e', 'bus=rp2', 'romfile='),
    ],
    roles: [
      { name: 'e1000', ...E1000 },
      { name: 'rtl8139', ...RTL8139 },
      { name: 'e1000e', ...E1000E },
    ],
  },
  {
    name: 'multifunction',
    description: 'one root port with a two-function device: e1000e at .0 (multifunction=on) and virtio-net at .1',
    qemuArgs: [
      ...dev('pcie-root-port', 'id=rp1', 'bus=pcie.0', 'addr=0x2', 'chassis=1'),
      ...dev('e1000e', 'bus=rp1', 'addr=0x0.0', 'multifunction=on', 'romfile='),
      ...dev('virtio-net-pci', 'bus=rp1', 'addr=0x0.1', 'disable-legacy=off', 'romfile='),
    ],
    roles: [
      { name: 'e1000e', ...E1000E },
      { name: 'virtio-net', ...VIRTIO_NET },
    ],
  },
  {
    name: 'sriov',
    description: 'root port -> nvme PF with SR-IOV (2 VFs created at run time), plus an e1000e on the root bus (sorts before the PF)',
    qemuArgs: [
      ...dev('pcie-root-port', 'id=rp1', 'bus=pcie.0', 'addr=0x2', 'chassis=1'),
      // QEMU requires an NVMe subsystem for SR-IOV.
      ...dev('nvme-subsys', 'id=subsys0'),
      ...dev('nvme', 'bus=rp1', 'serial=lab-sriov', 'subsys=subsys0', 'sriov_max_vfs=2', 'sriov_vq_flexible=4',
        'sriov_vi_flexible=2', 'max_ioqpairs=6', 'msix_qsize=4'),
      // For apply's rollback scenario: a device that binds first (00:03.0 < 01:00.0).
      ...dev('e1000e', 'bus=pcie.0', 'addr=0x3', 'romfile='),
    ],
    // The PF stays first: the lab's VF set-up takes roles[0].
    roles: [{ name: 'nvme', ...NVME }, { name: 'e1000e', ...E1000E }],
    sriovVfs: 2,
  },
  {
    name: 'pciehp',
    description: 'root ports with native PCIe hotplug (pciehp, ACPI bridge hotplug off): e1000e alone behind one, nvme PF with SR-IOV behind another (8 VFs: 02:00.1-.7 in the slot at device 0, 02:01.0 outside it)',
    qemuArgs: [
      // With ACPI bridge hotplug on (q35's default) acpiphp owns the root ports' slots, and
      // acpiphp cannot reset a slot; off, the kernel's native pciehp takes them (kernel.md §11 (j)).
      '-global', 'ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off',
      // Distinct physical slot numbers, so the slots get distinct names.
      ...dev('pcie-root-port', 'id=rp1', 'bus=pcie.0', 'addr=0x2', 'chassis=1', 'slot=1'),
      ...dev('pcie-root-port', 'id=rp2', 'bus=pcie.0', 'addr=0x3', 'chassis=2', 'slot=2'),
      ...dev('e1000e', 'bus=rp1', 'romfile='),
      ...dev('nvme-subsys', 'id=subsys0'),
      ...dev('nvme', 'bus=rp2', 'serial=lab-hp', 'subsys=subsys0', 'sriov_max_vfs=8', 'sriov_vq_flexible=16',
        'sriov_vi_flexible=8', 'max_ioqpairs=18', 'msix_qsize=10'),
    ],
    // The PF stays first: the lab's VF set-up takes roles[0].
    roles: [{ name: 'nvme', ...NVME }, { name: 'e1000e', ...E1000E }],
    sriovVfs: 8,
  },
];

export function topology(name: string): Topology {
  const t = TOPOLOGIES.find((x) => x.name === name);
  if (!t) throw new Error(`unknown lab topology "${name}"`);
  return t;
}

