/**
 * Devices the kernel flags PCI_DEV_FLAGS_NO_BUS_RESET (`quirk_no_bus_reset`,
 * `quirk_nvidia_no_bus_reset` in drivers/pci/quirks.c; kernel.md §5.4). The flag is not
 * visible in sysfs, so the table lives here. Same list in 6.1, 6.12 and 7.2 stable.
 */
interface NoBusResetRule {
  readonly vendor: string;
  readonly matches: (device: number) => boolean;
  readonly what: string;
}

const exact = (...ids: number[]) => (d: number) => ids.includes(d);

const NO_BUS_RESET: readonly NoBusResetRule[] = [
  { vendor: '10de', matches: exact(0x22ce, 0x22d0), what: 'NVIDIA GB10 root port' },
  { vendor: '10de', matches: (d) => (d & 0xffc0) === 0x2340, what: 'NVIDIA Hopper-class GPU' },
  { vendor: '168c', matches: exact(0x0030, 0x0032, 0x0033, 0x0034, 0x003c, 0x003e), what: 'Atheros AR9xxx/QCA988x' },
  { vendor: '17cb', matches: exact(0x1103, 0x1107, 0x0308), what: 'Qualcomm WCN6855/WCN7850/SDX62' },
  { vendor: '177d', matches: exact(0xa100), what: 'Cavium CN8xxx root port' },
  { vendor: '104c', matches: exact(0xb005), what: 'TI KeyStone C667X' },
  { vendor: '1b21', matches: exact(0x1164), what: 'ASMedia ASM1164' },
];

/** What the quirk calls the device when the kernel forbids bus resets around it; undefined otherwise. */
export function noBusResetQuirk(vendorId: string, deviceId: string): string | undefined {
  const device = Number.parseInt(deviceId, 16);
  if (Number.isNaN(device)) return undefined;
  return NO_BUS_RESET.find((r) => r.vendor === vendorId.toLowerCase() && r.matches(device))?.what;
}
