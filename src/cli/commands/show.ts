import type { Command } from 'commander';
import { isDriverName, quoteShort } from '../../model/names.js';
import { bridgeChain, deviceOf, groupOf, isVfioBound, mismatchAdvice, overrideMismatch } from '../../model/host.js';
import { readRevision, type scanHost } from '../../sysfs/scan.js';
import { scanFor } from '../../sysfs/neighbourhood.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { openSession, type CliContext } from '../context.js';
import { deviceJson, describeClass, describeDevice, describeSubsystem } from '../render/device-json.js';
import { classDevicesOf } from '../../sysfs/class-devices.js';
import { viewGroup } from '../render/groups.js';
import { vfioNodeReader, vfioNodes } from '../../sysfs/vfio-nodes.js';
import { columns } from '../render/table.js';

/** Extra sections other modules contribute to `show` (variant candidates, …). */
export type ShowExtension = (s: ReturnType<typeof openSession>, host: ReturnType<typeof scanHost>, bdf: string) => { json: Record<string, unknown>; text: [string, string][] };
export const showExtensions: ShowExtension[] = [];

export function registerShow(program: Command, ctx: CliContext): void {
  program
    .command('show')
    .description('show everything known about one device: ids, driver, group and peers, bridges, SR-IOV')
    .argument('<selector>', 'PCI address, interface or block device')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action((selector: string, _opts: unknown, cmd: Command) => {
      const s = openSession(ctx, cmd);
      // The device's neighbourhood (group, bridges), not the whole host.
      const host = scanFor(s.fs, [selector], { peers: true });
      const names = s.pciNames();
      const bdf = resolveSelector(s.fs, host, selector)[0]!;
      const d = deviceOf(host, bdf);
      const group = d.iommuGroup === null ? undefined : groupOf(host, d.iommuGroup);
      const view = group ? viewGroup(host, group) : undefined;
      const peers = group ? group.devices.filter((b) => b !== bdf) : [];
      const chain = bridgeChain(host, bdf);
      const extras = showExtensions.map((ext) => ext(s, host, bdf));
      const revision = readRevision(s.fs, bdf);
      const { interfaces, blockDevices } = classDevicesOf(s.fs, bdf);

      if (s.json) {
        const nodes = vfioNodeReader(s.fs);
        s.printJson({
          ...deviceJson(d, names, nodes),
          modalias: d.modalias,
          revision,
          interfaces,
          blockDevices,
          group: view ? { id: view.group.id, viable: view.viable, blockers: view.blockers, reason: view.reason.text, reasonCode: view.reason.code } : null,
          peers: peers.map((b) => deviceJson(deviceOf(host, b), names, nodes)),
          bridges: chain,
          sriov: { totalVfs: d.sriovTotalVfs, numVfs: d.sriovNumVfs, virtfns: [...d.virtfns], physfn: d.physfn },
          ...Object.assign({}, ...extras.map((e) => e.json)),
        });
        return;
      }
      const c = s.chalk;
      const rows: [string, string][] = [
        ['device', `${c.bold(bdf)} ${describeDevice(d, names)}`],
        // Without pci.ids the class is shown once, bare, like the ids.
        ['class', `${names.className(d.classCode) === null ? d.classCode : `${describeClass(d, names)} [${d.classCode}]`}${d.bridge ? ' (bridge)' : ''}`],
        ['subsystem', describeSubsystem(d, names)],
        ['revision', revision ?? '-'],
        ['modalias', d.modalias ?? '-'],
        ['driver', d.driver ?? '(none)'],
        ...(interfaces.length ? [['interfaces', interfaces.join(', ')] as [string, string]] : []),
        ...(blockDevices.length ? [['block devices', blockDevices.join(', ')] as [string, string]] : []),
        ['override', d.driverOverride === null ? '(none)' : overrideMismatch(d) ? `${isDriverName(d.driverOverride) ? d.driverOverride : quoteShort(d.driverOverride, 64)} ${c.yellow(`(not its driver: ${mismatchAdvice(d)})`)}` : d.driverOverride],
        ['iommu group', view ? `${view.group.id} (${view.viable ? c.green('viable') : c.red('not viable: ' + view.blockers.join(', '))}); ${view.reason.text}` : '(none)'],
        ['group peers', peers.length ? peers.map((b) => `${b} ${deviceOf(host, b).driver ?? '(none)'}`).join(', ') : '(none)'],
        ['bridges', chain.length ? chain.join(' <- ') : '(root bus)'],
        ['reset methods', d.resetMethodKnown ? d.resetMethods.join(' ') || '(all disabled)' : '(unknown: no reset_method)'],
        ['numa node', d.numaNode === null ? '-' : String(d.numaNode)],
      ];
      if (isVfioBound(d)) {
        const n = vfioNodes(s.fs, d);
        rows.push(['vfio nodes', `group ${n.vfioGroupNode ?? '(none)'}, cdev ${n.vfioCdev ?? '(none)'}`]);
      }
      if (d.bootVga !== null) rows.push(['boot vga', d.bootVga ? 'yes' : 'no']);
      if (d.physfn) rows.push(['sr-iov pf', d.physfn]);
      if (d.sriovTotalVfs !== null) rows.push(['sr-iov vfs', `${d.sriovNumVfs ?? 0}/${d.sriovTotalVfs}${d.virtfns.length ? ': ' + d.virtfns.join(', ') : ''}`]);
      for (const e of extras) rows.push(...e.text);
      s.print(columns(rows.map(([k, v]) => [k + ':', v])));
    });
}
