import type { ChalkInstance } from 'chalk';
import type { Host } from '../../model/types.js';
import type { ProbeResult } from '../../vfio/probe.js';
import { FLAG } from '../../vfio/uapi.js';

/**
 * One device of `probe --json` (schema/probe.schema.json): the fields issue 13 fixed (bdf,
 * via, info{flags,regions,irqs}, migration{flags}|null, dirtyTracking, lowPower,
 * hotResetInfo{devices[{bdf,group}]}|null) plus group, devId, info.capabilities,
 * hotResetInfo.flags, hotResetError and errors. In cdev mode the kernel names devices by
 * iommufd device id, not group: `group` then comes from sysfs and `devId` is the kernel's.
 */
export function probeDeviceJson(r: ProbeResult, host: Host): Record<string, unknown> {
  const q = r.queried;
  return {
    bdf: r.bdf,
    via: r.via,
    group: r.group,
    devId: r.devId,
    info: {
      flags: q.info.flagNames,
      regions: q.info.regions,
      irqs: q.info.irqs,
      capabilities: q.info.caps.map((c) => ({ id: c.id, version: c.version, name: c.name })),
    },
    migration: q.migration === null ? null : { flags: q.migration.flagNames },
    dirtyTracking: q.dirtyTracking,
    lowPower: q.lowPower,
    hotResetInfo: q.hotReset.ok ? { flags: q.hotReset.info.flagNames, devices: hotResetDevices(r, host) } : null,
    hotResetError: q.hotReset.ok ? null : q.hotReset.errno,
    errors: q.errors.map((e) => ({ query: e.query, errno: e.errno })),
  };
}

/** The INFO entries as {bdf, group, devId}; [] when INFO failed. */
export function hotResetDevices(r: ProbeResult, host: Host): { bdf: string; group: number | null; devId: number | 'owned' | 'not-owned' | null }[] {
  const h = r.queried.hotReset;
  if (!h.ok) return [];
  const cdevMode = (h.info.flags & FLAG.VFIO_PCI_HOT_RESET_FLAG_DEV_ID) !== 0;
  return h.info.devices.map((d) => ({
    bdf: d.bdf,
    group: cdevMode ? host.devices.get(d.bdf)?.iommuGroup ?? null : d.id,
    devId: cdevMode ? devIdJson(d.id) : null,
  }));
}

/** cdev mode's per-entry id: a device id, or the two special values (kernel.md §5.5). */
function devIdJson(id: number): number | 'owned' | 'not-owned' {
  return id === FLAG.VFIO_PCI_DEVID_OWNED ? 'owned' : id === FLAG.VFIO_PCI_DEVID_NOT_OWNED ? 'not-owned' : id;
}

export function renderProbe(results: readonly ProbeResult[], host: Host, c: ChalkInstance): string {
  return results
    .map((r) => {
      const q = r.queried;
      const out = [`${c.bold(r.bdf)}  group ${r.group}, opened via ${r.via}${r.devId !== null ? ` (iommufd device id ${r.devId})` : ''}`];
      out.push(`  info:           ${q.info.flagNames.join(' ') || '(no flags)'}; ${q.info.regions} regions, ${q.info.irqs} irqs${q.info.caps.length ? `; capabilities ${q.info.caps.map((x) => x.name ?? `id ${x.id}`).join(', ')}` : ''}`);
      out.push(`  migration:      ${q.migration === null ? c.dim('no') : c.green(q.migration.flagNames.join(' ') || '(no flags)')}`);
      out.push(`  dirty tracking: ${q.dirtyTracking ? c.green('yes') : c.dim('no')}`);
      out.push(`  low power:      ${q.lowPower ? c.green('yes') : c.dim('no')}`);
      if (!q.hotReset.ok) out.push(`  hot reset INFO: ${c.yellow(q.hotReset.errno)}${q.hotReset.errno === 'ENODEV' ? ' (no slot or bus reset for this device)' : ''}`);
      else out.push(`  hot reset INFO: ${hotResetDevices(r, host).map((d) => `${d.bdf} (group ${d.group ?? '-'}${d.devId !== null ? `, devid ${String(d.devId)}` : ''})`).join(', ') || '(no devices)'}`);
      for (const e of q.errors) out.push(`  ${c.yellow('note')}: ${e.query} answered ${e.errno}`);
      return out.join('\n');
    })
    .join('\n\n');
}
