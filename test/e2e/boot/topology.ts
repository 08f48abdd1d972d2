/**
 * The boot lab's one topology: an e1000e NIC and an NVMe drive behind root ports, an e1000
 * behind a PCIe-to-PCI bridge, the guest's disk (virtio-blk) and three virtio-9p shares on the
 * root bus. Addresses are fixed by the slots below, so the desired state can name them.
 */
export interface BootDevice {
  readonly role: string;
  readonly bdf: string;
  readonly vendor: string;
  readonly device: string;
  readonly hostDriver: string;
  /** How the desired file names it: by address or by VENDOR:DEVICE (the rule's pattern form). */
  readonly match: string;
}

export const NIC: BootDevice = { role: 'e1000e', bdf: '0000:01:00.0', vendor: '8086', device: '10d3', hostDriver: 'e1000e', match: '0000:01:00.0' };
export const NVME: BootDevice = { role: 'nvme', bdf: '0000:02:00.0', vendor: '1b36', device: '0010', hostDriver: 'nvme', match: '1b36:0010' };
/** Conventional PCI behind the pcie-pci-bridge at 03:00.0: alone there, so its group is viable. */
export const BRIDGED: BootDevice = { role: 'e1000 behind pcie-pci-bridge', bdf: '0000:04:01.0', vendor: '8086', device: '100e', hostDriver: 'e1000', match: '0000:04:01.0' };
export const DEVICES: readonly BootDevice[] = [NIC, NVME, BRIDGED];

const dev = (...parts: string[]) => ['-device', parts.join(',')];

/**
 * The NVMe namespace's contents: 1 MiB with an MBR holding one partition, so that when the nvme
 * driver binds, the kernel logs the namespace (" nvme0n1: p1"): evidence the drive was taken.
 */
export function namespaceImage(): Buffer {
  const img = Buffer.alloc(1 << 20);
  const entry = 0x1be;
  img[entry + 4] = 0x83; // Linux
  img.writeUInt32LE(1, entry + 8); // first sector
  img.writeUInt32LE(img.length / 512 - 1, entry + 12); // sectors
  img[510] = 0x55;
  img[511] = 0xaa;
  return img;
}

/**
 * QEMU devices; `without` leaves devices out (a device that is gone, scenario 4); the NVMe
 * drive's namespace is `namespace` (a file from namespaceImage), read-only.
 */
export function topologyArgs(namespace: string, without: readonly BootDevice[] = []): string[] {
  const gone = new Set(without.map((d) => d.bdf));
  return [
    ...dev('pcie-root-port', 'id=rp1', 'bus=pcie.0', 'addr=0x2', 'chassis=1'),
    ...dev('pcie-root-port', 'id=rp2', 'bus=pcie.0', 'addr=0x3', 'chassis=2'),
    ...dev('pcie-root-port', 'id=rp3', 'bus=pcie.0', 'addr=0x4', 'chassis=3'),
    ...(gone.has(NIC.bdf) ? [] : dev('e1000e', 'bus=rp1', 'romfile=')),
    ...(gone.has(NVME.bdf) ? [] : ['-drive', `file=${namespace},format=raw,if=none,id=nvmens,readonly=on`, ...dev('nvme', 'bus=rp2', 'serial=bootlab', 'drive=nvmens')]),
    ...dev('pcie-pci-bridge', 'id=pb1', 'bus=rp3'),
    ...(gone.has(BRIDGED.bdf) ? [] : dev('e1000', 'bus=pb1', 'addr=0x1', 'romfile=')),
  ];
}

/** The desired state the scenarios persist: every device to vfio-pci. */
export function desiredState(devices: readonly BootDevice[] = DEVICES): string {
  return JSON.stringify({ schemaVersion: 1, devices: devices.map((d) => ({ match: d.match, driver: 'vfio-pci' })) }, null, 2) + '\n';
}
