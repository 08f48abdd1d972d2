import type { TreeSpec } from './tree.js';

/**
 * A small host shaped like the QEMU lab: an e1000e behind a root port, two conventional NICs
 * behind a PCIe-to-PCI bridge (one group with the bridge), an NVMe disk, the boot VGA and a
 * device already on vfio-pci.
 */
export const LAB_ALIASES = `alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v00008086d000010D3sv*sd*bc*sc*i* vfio_pci_lab
`;

export function labSpec(extra: Partial<TreeSpec> = {}): TreeSpec {
  return {
    osrelease: '6.1.0-test',
    modulesAlias: LAB_ALIASES,
    drivers: { 'vfio-pci': 'vfio_pci', vfio_pci_lab: 'vfio_pci_lab', e1000: 'e1000', e1000e: 'e1000e', nvme: 'nvme' },
    devices: [
      { bdf: '0000:00:00.0', id: '8086:29c0', class: '060000', group: 0, resetMethods: null },
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 2 },
      { bdf: '0000:00:02.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 3 },
      { bdf: '0000:02:00.0', parent: '0000:00:02.0', id: '1b36:000e', class: '060400', group: 4 },
      { bdf: '0000:03:01.0', parent: '0000:02:00.0', id: '8086:100e', class: '020000', driver: 'e1000', group: 4, pcie: false },
      { bdf: '0000:03:02.0', parent: '0000:02:00.0', id: '8086:100e', class: '020000', driver: 'e1000', group: 4, pcie: false },
      { bdf: '0000:00:03.0', id: '1b36:0010', class: '010802', driver: 'nvme', group: 5 },
      { bdf: '0000:00:04.0', id: '1234:1111', class: '030000', driver: 'bochs-drm', group: 6, bootVga: true },
      { bdf: '0000:00:05.0', id: '1af4:1041', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio0', group: 7, enable: 0, override: 'vfio-pci' },
    ],
    net: { eth0: '0000:01:00.0', eth1: '0000:03:01.0', eth2: '0000:03:02.0' },
    block: { nvme0n1: '0000:00:03.0' },
    devVfio: [7],
    ...extra,
  };
}
