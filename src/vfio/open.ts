/**
 * Opening a VFIO device the way a VMM does, and closing everything again in reverse order:
 *
 * - group: /dev/vfio/vfio (a container), /dev/vfio/N, VFIO_GROUP_GET_STATUS (viable?),
 *   VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU (type1v2), VFIO_GROUP_GET_DEVICE_FD;
 * - cdev (6.6+): /dev/iommu, /dev/vfio/devices/vfioX, VFIO_DEVICE_BIND_IOMMUFD,
 *   IOMMU_IOAS_ALLOC, VFIO_DEVICE_ATTACH_IOMMUFD_PT.
 *
 * Neither path blocks: the group node is single-open and a second opener gets EBUSY
 * (kernel.md §2.4), as does a cdev bind while the group is open elsewhere; a cdev already
 * bound by another process answers EINVAL (vfio_df_open()), which the caller turns into "in
 * use" only when sysfs agrees. Opening resets the device and wakes it to D0 (§6.4).
 */
import { ExitCode } from '../exit-codes.js';
import { VfioctlError } from '../errors.js';
import type { SysResult, VfioSys } from './sys.js';
import { IOCTL, VFIO_API_VERSION, VFIO_TYPE1v2_IOMMU, decodeBindIommufd, decodeGroupStatus, decodeIoasAlloc, encodeAttachPt, encodeBindIommufd, encodeDestroy, encodeDeviceName, encodeFdArg, encodeGroupStatus, encodeIoasAlloc } from './uapi.js';

export type Via = 'group' | 'cdev';

/** An open device: its fd, and how to close what opening it took (last opened first). */
export interface OpenDevice {
  readonly fd: number;
  readonly via: Via;
  close(): void;
}

/** Host paths of the nodes one device is opened through. */
export interface DeviceNodes {
  container: string;
  group: string;
  iommu: string;
  cdev: string | null;
}

/** The stages a refusal or failure names (and the unit tests' fake kernel counts). */
export type Stage =
  | 'open-container' | 'api-version' | 'check-extension' | 'open-group' | 'group-status' | 'set-container' | 'set-iommu' | 'get-device-fd'
  | 'open-iommufd' | 'open-cdev' | 'bind-iommufd' | 'ioas-alloc' | 'attach-pt';

/** A kernel refusal, with the stage and errno, before the command maps it to an exit status. */
export class OpenError extends Error {
  constructor(readonly stage: Stage, readonly errno: string, readonly node: string) {
    super(`${stage}: ${errno}`);
  }
}

/** Close stack: each successful step pushes its undo; close() runs them last first, once. */
class Closer {
  private undo: (() => void)[] = [];
  push(f: () => void) {
    this.undo.push(f);
  }
  /** An undo that must run after the latest one (the IOAS goes after the device fd closes). */
  pushBelowLast(f: () => void) {
    this.undo.splice(Math.max(0, this.undo.length - 1), 0, f);
  }
  close() {
    for (let f = this.undo.pop(); f; f = this.undo.pop()) f();
  }
}

function must(r: SysResult, stage: Stage, node: string, closer: Closer): number {
  if (r.ok) return r.value;
  closer.close();
  throw new OpenError(stage, r.errno, node);
}

export function openViaGroup(sys: VfioSys, bdf: string, nodes: DeviceNodes): OpenDevice {
  const c = new Closer();
  const container = must(sys.open(nodes.container), 'open-container', nodes.container, c);
  c.push(() => sys.close(container));
  if (must(sys.ioctl(container, IOCTL.VFIO_GET_API_VERSION), 'api-version', nodes.container, c) !== VFIO_API_VERSION) {
    c.close();
    throw new OpenError('api-version', 'EINVAL', nodes.container);
  }
  if (must(sys.ioctl(container, IOCTL.VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU), 'check-extension', nodes.container, c) !== 1) {
    c.close();
    throw new OpenError('check-extension', 'EOPNOTSUPP', nodes.container);
  }
  const group = must(sys.open(nodes.group), 'open-group', nodes.group, c);
  c.push(() => sys.close(group));
  const status = encodeGroupStatus();
  must(sys.ioctl(group, IOCTL.VFIO_GROUP_GET_STATUS, status), 'group-status', nodes.group, c);
  if (!decodeGroupStatus(status).viable) {
    c.close();
    throw new OpenError('group-status', 'EPERM', nodes.group);
  }
  must(sys.ioctl(group, IOCTL.VFIO_GROUP_SET_CONTAINER, encodeFdArg(container)), 'set-container', nodes.group, c);
  must(sys.ioctl(container, IOCTL.VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 'set-iommu', nodes.container, c);
  const fd = must(sys.ioctl(group, IOCTL.VFIO_GROUP_GET_DEVICE_FD, encodeDeviceName(bdf)), 'get-device-fd', nodes.group, c);
  c.push(() => sys.close(fd));
  return { fd, via: 'group', close: () => c.close() };
}

export function openViaCdev(sys: VfioSys, nodes: DeviceNodes): OpenDevice & { devId: number } {
  const cdev = nodes.cdev;
  if (cdev === null) throw new OpenError('open-cdev', 'ENOENT', '/dev/vfio/devices');
  const c = new Closer();
  const iommufd = must(sys.open(nodes.iommu), 'open-iommufd', nodes.iommu, c);
  c.push(() => sys.close(iommufd));
  const fd = must(sys.open(cdev), 'open-cdev', cdev, c);
  c.push(() => sys.close(fd));
  const bind = encodeBindIommufd(iommufd);
  must(sys.ioctl(fd, IOCTL.VFIO_DEVICE_BIND_IOMMUFD, bind), 'bind-iommufd', cdev, c);
  const ioas = encodeIoasAlloc();
  must(sys.ioctl(iommufd, IOCTL.IOMMU_IOAS_ALLOC, ioas), 'ioas-alloc', nodes.iommu, c);
  const ioasId = decodeIoasAlloc(ioas).ioasId;
  // Closing the device fd detaches it from the IOAS; then the IOAS goes, then iommufd.
  c.pushBelowLast(() => void sys.ioctl(iommufd, IOCTL.IOMMU_DESTROY, encodeDestroy(ioasId)));
  must(sys.ioctl(fd, IOCTL.VFIO_DEVICE_ATTACH_IOMMUFD_PT, encodeAttachPt(ioasId)), 'attach-pt', cdev, c);
  return { fd, via: 'cdev', devId: decodeBindIommufd(bind).devId, close: () => c.close() };
}

/** Messages for an OpenError: exit status, what went wrong, and the fix. */
export function openFailure(bdf: string, e: OpenError, group: number | null): VfioctlError {
  const node = e.node;
  const where = `${bdf}: ${node}`;
  switch (true) {
    case e.errno === 'EBUSY':
      return new VfioctlError(ExitCode.REFUSED, `${bdf} is in use`, `the kernel answered EBUSY at ${e.stage} (${node}): another process (a VMM?) holds ${group === null ? 'the device' : `group ${group} or the device`} open`, 'stop the process holding it (see `vfioctl show` for holders), then try again; probe never waits or takes a device away');
    case e.stage === 'group-status' && e.errno === 'EPERM':
      return new VfioctlError(ExitCode.REFUSED, `group ${group} of ${bdf} is not viable`, 'VFIO_GROUP_GET_STATUS reports the group not viable: a member is on a host driver', `bind the whole group to vfio-pci (vfioctl bind ${bdf} --group)`);
    case (e.stage === 'set-container' || e.stage === 'get-device-fd' || e.stage === 'bind-iommufd') && e.errno === 'EPERM':
      return new VfioctlError(ExitCode.REFUSED, `${bdf} cannot be opened`, `the kernel answered EPERM at ${e.stage}: the group is not viable or the device lacks MSI isolation`, 'check `vfioctl groups` and `vfioctl doctor` (interrupt remapping)');
    case e.stage === 'set-iommu' && e.errno === 'EPERM':
      return new VfioctlError(ExitCode.FAILURE, `${bdf}: VFIO_SET_IOMMU failed`, 'EPERM: no interrupt remapping (type1 refuses without allow_unsafe_interrupts)', 'check `vfioctl doctor`');
    case (e.stage.startsWith('open-') && (e.errno === 'EACCES' || e.errno === 'EPERM')):
      return new VfioctlError(ExitCode.PERMISSION, `cannot open ${node}`, `permission denied (${e.errno})`, 'run as root, or give the user the node with `vfioctl grant`');
    case e.stage.startsWith('open-') && e.errno === 'ENOENT':
      return new VfioctlError(ExitCode.FAILURE, `cannot open ${node}`, `no such node (ENOENT)`, e.stage === 'open-container' ? 'load the vfio module (modprobe vfio-pci)' : e.stage === 'open-iommufd' ? 'the kernel has no iommufd (CONFIG_IOMMUFD): use --via group' : 'the device is no longer on a vfio driver?');
    default:
      return new VfioctlError(ExitCode.FAILURE, `${where}`, `the kernel answered ${e.errno} at ${e.stage}`, undefined);
  }
}

