import type { PciNames } from '../../sysfs/pciids.js';
import type { PciDevice } from '../../model/types.js';
import { isVfioBound, overrideMismatch } from '../../model/host.js';
import { NO_VFIO_NODES, type VfioNodes } from '../../sysfs/vfio-nodes.js';

/**
 * The device object of the JSON contract (schemaVersion 1). Field names are fixed;
 * new fields may be added, none renamed or dropped.
 */
export function deviceJson(d: PciDevice, names: PciNames, nodes: (d: PciDevice) => VfioNodes = () => NO_VFIO_NODES) {
  const n = nodes(d);
  return {
    bdf: d.bdf,
    vendorId: d.vendorId,
    deviceId: d.deviceId,
    subsystemVendorId: d.subsystemVendorId,
    subsystemDeviceId: d.subsystemDeviceId,
    classCode: d.classCode,
    vendorName: names.vendor(d.vendorId),
    deviceName: names.device(d.vendorId, d.deviceId),
    className: names.className(d.classCode),
    subsystemVendorName: d.subsystemVendorId === null ? null : names.vendor(d.subsystemVendorId),
    subsystemName: d.subsystemVendorId === null || d.subsystemDeviceId === null ? null : names.subsystem(d.vendorId, d.deviceId, d.subsystemVendorId, d.subsystemDeviceId),
    driver: d.driver,
    driverOverride: d.driverOverride,
    overrideMismatch: overrideMismatch(d),
    bridge: d.bridge,
    resetMethods: [...d.resetMethods],
    physfn: d.physfn,
    numaNode: d.numaNode,
    iommuGroup: d.iommuGroup,
    virtfns: [...d.virtfns],
    parent: d.parent,
    rootBus: d.rootBus,
    bootVga: d.bootVga,
    vfioBound: isVfioBound(d),
    // The VFIO interfaces it offers (src/sysfs/vfio-nodes.ts), null when absent.
    vfioGroupNode: n.vfioGroupNode,
    vfioCdev: n.vfioCdev,
  };
}

export type DeviceJson = ReturnType<typeof deviceJson>;

/** `[8086:10d3] Intel Corporation 82574L Gigabit Network Connection`, names when known. */
export function describeDevice(d: PciDevice, names: PciNames): string {
  const vendor = names.vendor(d.vendorId);
  const device = names.device(d.vendorId, d.deviceId);
  const label = [vendor, device].filter(Boolean).join(' ');
  return `[${d.vendorId}:${d.deviceId}]${label ? ' ' + label : ''}`;
}

/** `[1af4:1100] Red Hat, Inc. QEMU Virtual Machine` as lspci -v prints the subsystem; '-' without one. */
export function describeSubsystem(d: PciDevice, names: PciNames): string {
  if (d.subsystemVendorId === null || d.subsystemDeviceId === null) return '-';
  const vendor = names.vendor(d.subsystemVendorId);
  const name = names.subsystem(d.vendorId, d.deviceId, d.subsystemVendorId, d.subsystemDeviceId);
  const label = [vendor, name].filter(Boolean).join(' ');
  return `[${d.subsystemVendorId}:${d.subsystemDeviceId}]${label ? ' ' + label : ''}`;
}

export function describeClass(d: PciDevice, names: PciNames): string {
  return names.className(d.classCode) ?? d.classCode;
}
