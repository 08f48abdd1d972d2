/**
 * `vfioctl probe`: ask each vfio-bound device itself what it supports, through the ioctls a
 * VMM uses. Every refusal sysfs can show (not on a vfio driver, no group, group not viable,
 * group or cdev held open by another process) is found for every device before anything is
 * opened; then each device is opened, queried and closed in turn, and the kernel's EBUSY
 * settles whatever sysfs could not see (an opener that came in between).
 */
import type { Bdf } from '../model/address.js';
import { groupBlockers, groupOf, isVfioBound } from '../model/host.js';
import type { Host } from '../model/types.js';
import { refused, VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { vfioHolders } from '../sysfs/in-use.js';
import { DEV_VFIO, devicePath } from '../sysfs/paths.js';
import { vfioCdevName } from '../sysfs/vfio-nodes.js';
import { OpenError, openFailure, openViaCdev, openViaGroup, type DeviceNodes, type OpenDevice, type Via } from './open.js';
import { QueryError, queryDevice, type Queried } from './query.js';
import type { VfioSys } from './sys.js';

export type { Via } from './open.js';

/** One device, checked in sysfs and ready to open. */
export interface ProbeTarget {
  bdf: Bdf;
  group: number;
  via: Via;
  /** In-root paths of the nodes. */
  nodes: DeviceNodes;
}

export interface ProbeResult {
  bdf: Bdf;
  group: number;
  via: Via;
  /** The iommufd device id BIND_IOMMUFD gave (cdev), else null. */
  devId: number | null;
  queried: Queried;
}

const IOMMU_NODE = '/dev/iommu';
const CONTAINER_NODE = `${DEV_VFIO}/vfio`;

/**
 * The sysfs checks, for one device: throws the refusal (exit 4) that names the device and
 * the fix, or returns how to open it. `via` undefined: cdev where the kernel offers one
 * (the device has a cdev and /dev/iommu exists), else the group.
 */
export function checkTarget(fs: FsRoot, host: Host, bdf: Bdf, via: Via | undefined, holders = vfioHolders(fs, host)): ProbeTarget {
  const d = host.devices.get(bdf);
  if (!d) throw new VfioctlError(ExitCode.NOT_FOUND, bdf, 'no such PCI device');
  if (!isVfioBound(d)) {
    throw refused(`${bdf} is not on a vfio driver`, `its driver is ${d.driver ?? '(none)'}; probe opens only devices bound to vfio-pci or a variant`, `vfioctl bind ${bdf} (then probe it)`);
  }
  if (d.iommuGroup === null) throw refused(`${bdf} has no IOMMU group`, 'VFIO cannot open a device without one', 'enable the IOMMU (vfioctl doctor)');
  const group = groupOf(host, d.iommuGroup);
  const blockers = group ? groupBlockers(host, group) : [];
  if (blockers.length > 0) {
    const list = blockers.map((b) => `${b} (${host.devices.get(b)?.driver ?? '?'})`).join(', ');
    throw refused(`group ${d.iommuGroup} of ${bdf} is not viable`, `${list} ${blockers.length === 1 ? 'is' : 'are'} on a host driver, so the kernel would not hand the group to VFIO`, `vfioctl bind ${bdf} --group`);
  }
  const groupNode = `${DEV_VFIO}/${d.iommuGroup}`;
  if (!fs.lexists(groupNode)) {
    const noiommu = fs.lexists(`${DEV_VFIO}/noiommu-${d.iommuGroup}`);
    throw refused(`${bdf}: no ${groupNode}`, noiommu ? 'the group is a noiommu group: probe does not open unsafe noiommu devices' : 'the group node is missing (udev has not created it, or /dev is not devtmpfs)', noiommu ? undefined : 'check `ls -l /dev/vfio`');
  }
  const cdevName = vfioCdevName(fs, bdf);
  const cdev = cdevName === null ? null : `${DEV_VFIO}/devices/${cdevName}`;
  const cdevUsable = cdev !== null && fs.lexists(cdev) && fs.lexists(IOMMU_NODE);
  if (via === 'cdev' && !cdevUsable) {
    throw refused(`${bdf} has no VFIO device cdev`, cdev === null ? 'this kernel does not offer one (6.6+ with CONFIG_VFIO_DEVICE_CDEV)' : `${cdev} or ${IOMMU_NODE} is missing`, 'use --via group');
  }
  const chosen: Via = via ?? (cdevUsable ? 'cdev' : 'group');
  const held = holders(bdf);
  if (held.length > 0) {
    const who = [...new Set(held.map((h) => `${h.pid} (${h.via === 'cdev' ? cdev : groupNode})`))].join(', ');
    throw refused(`${bdf} is in use`, `process ${who} holds it open`, 'stop that process (a VMM?) first; probe never waits or takes a device away');
  }
  return { bdf, group: d.iommuGroup, via: chosen, nodes: { container: CONTAINER_NODE, group: groupNode, iommu: IOMMU_NODE, cdev } };
}

/** Host paths for the open(2)s: the root boundary applied (names were checked above). */
function hostNodes(fs: FsRoot, n: DeviceNodes): DeviceNodes {
  return { container: fs.abs(n.container), group: fs.abs(n.group), iommu: fs.abs(n.iommu), cdev: n.cdev === null ? null : fs.abs(n.cdev) };
}

/** Open one checked device, query it, close everything; kernel refusals become VfioctlErrors. */
export function probeOne(fs: FsRoot, sys: VfioSys, t: ProbeTarget, query: (fd: number) => Queried = (fd) => queryDevice(sys, fd)): ProbeResult {
  const nodes = hostNodes(fs, t.nodes);
  let dev: OpenDevice & { devId?: number };
  try {
    dev = t.via === 'cdev' ? openViaCdev(sys, nodes) : openViaGroup(sys, t.bdf, nodes);
  } catch (err) {
    if (err instanceof OpenError) {
      // A cdev already bound elsewhere answers EINVAL (vfio_df_open()): in use, if sysfs says it is open.
      if (err.stage === 'bind-iommufd' && err.errno === 'EINVAL' && deviceEnabled(fs, t.bdf)) throw openFailure(t.bdf, new OpenError(err.stage, 'EBUSY', err.node), t.group);
      throw openFailure(t.bdf, err, t.group);
    }
    throw err;
  }
  try {
    return { bdf: t.bdf, group: t.group, via: t.via, devId: dev.devId ?? null, queried: query(dev.fd) };
  } catch (err) {
    if (err instanceof QueryError) throw new VfioctlError(ExitCode.FAILURE, `${t.bdf}: ${err.query} failed`, `the kernel answered ${err.errno}`);
    throw err;
  } finally {
    dev.close();
  }
}

/** vfio-pci enables a device only while it is open (kernel.md §1.1 `enable`). */
function deviceEnabled(fs: FsRoot, bdf: Bdf): boolean {
  const v = Number(fs.read(`${devicePath(bdf)}/enable`));
  return Number.isFinite(v) && v > 0;
}

/** The reset-on-open warning: `--help`, the man page and a terminal say it before the first open. */
export const RESET_ON_OPEN_WARNING = 'opening a VFIO device resets it (vfio-pci resets on open and on close where it can) and wakes it to D0';
