/**
 * The pci.ids lines a snapshot needs for the names vfioctl prints: the vendors and
 * devices present (and their matching subsystem lines) plus the small class section.
 * The whole database is over a megabyte; the subset keeps fixtures small.
 */
export interface PresentId {
  vendor: string;
  device: string;
  subVendor: string | null;
  subDevice: string | null;
}

export function pciIdsSubset(text: string, present: readonly PresentId[]): string {
  const vendors = new Set(present.map((p) => p.vendor));
  const devices = new Set(present.map((p) => `${p.vendor}:${p.device}`));
  const subsystems = new Set(present.map((p) => `${p.vendor}:${p.device}:${p.subVendor} ${p.subDevice}`));
  const out: string[] = [];
  let vendor: string | null = null;
  let device: string | null = null;
  let inClasses = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (inClasses || line.startsWith('C ')) {
      inClasses = true; // the class section comes last and is kept whole
      out.push(line);
      continue;
    }
    if (!line.startsWith('\t')) {
      const id = line.slice(0, 4).toLowerCase();
      vendor = vendors.has(id) ? id : null;
      device = null;
      if (vendor) out.push(line);
    } else if (!line.startsWith('\t\t')) {
      const id = line.slice(1, 5).toLowerCase();
      device = vendor && devices.has(`${vendor}:${id}`) ? id : null;
      if (device) out.push(line);
    } else if (vendor && device && subsystems.has(`${vendor}:${device}:${line.slice(2, 11).toLowerCase()}`)) {
      out.push(line);
    }
  }
  return out.join('\n') + '\n';
}
