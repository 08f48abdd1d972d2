/** Shared guest set-up: which devices the lab binds to vfio, and SR-IOV VF creation. */
import * as fs from 'node:fs';
import { findRole, isLabPlumbing, labTopology, truthDevice, vfsOf } from './guest.js';

/** Endpoints the lab may hand to vfio-pci: not bridges, not the 9p plumbing, not ICH9/host bridge. */
export function eligible(bdf: string): boolean {
  const d = truthDevice(bdf);
  return !d.bridge && !isLabPlumbing(bdf) && !bdf.startsWith('0000:00:1f.') && bdf !== '0000:00:00.0' && !d.classCode.startsWith('0300');
}

export async function createVfs(): Promise<string[]> {
  const t = labTopology();
  if (!t.sriovVfs) return [];
  const pf = findRole(t.roles[0]!)[0]!;
  // Autoprobe off: the VFs have no queues assigned, so the nvme driver would only time out on them.
  fs.writeFileSync(`/sys/bus/pci/devices/${pf}/sriov_drivers_autoprobe`, '0');
  fs.writeFileSync(`/sys/bus/pci/devices/${pf}/sriov_numvfs`, String(t.sriovVfs));
  return vfsOf(pf);
}

