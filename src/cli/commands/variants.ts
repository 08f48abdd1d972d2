import type { Command } from 'commander';
import type { Bdf } from '../../model/address.js';
import { deviceOf } from '../../model/host.js';
import type { Host } from '../../model/types.js';
import { matchModalias, rankWithFallback, type VfioAlias } from '../../plan/variant.js';
import type { FsRoot } from '../../sysfs/fsroot.js';
import { driverOfModule, readVfioAliases } from '../../sysfs/modules.js';
import { autoDriver, presenceOf } from '../../sysfs/bind-facts.js';
import { scanHost } from '../../sysfs/scan.js';
import { resolveSelectors } from '../../sysfs/selectors.js';
import { openSession, type CliContext } from '../context.js';
import { renderVariants, variantsSummary, type VariantsJson } from '../render/variants.js';
import { showExtensions } from './show.js';

/** Ranked variant candidates of one device, with driver names resolved where the module is loaded. */
export function variantInfo(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null, bdf: Bdf): VariantsJson {
  const d = deviceOf(host, bdf);
  const modalias = matchModalias(d);
  const present = presenceOf(fs, host);
  const candidates = rankWithFallback(aliases ?? [], modalias).map((a) => {
    const { driver, loaded } = driverOfModule(fs, a.module);
    return { module: a.module, driver, alias: a.pattern, wildcards: a.wildcards, loaded, present: present(a.module) };
  });
  // The one definition of what `auto` picks (bind, apply and persist use it too).
  const first = autoDriver(fs, host, aliases, bdf);
  const note = d.bridge ? 'bridge: cannot be bound to a vfio driver'
    : aliases === null ? 'no modules.alias for this kernel under the root: only vfio-pci is known'
    : d.modalias === null && modalias !== null ? 'no modalias file: matched on the modalias the kernel would print, built from the vendor, device, subsystem and class files'
    : null;
  return {
    bdf,
    modalias: d.modalias,
    matchedModalias: modalias,
    candidates,
    chosen: d.bridge || !first ? null : first.module,
    chosenDriver: d.bridge || !first ? null : first.driver,
    note,
  };
}

// `vfioctl show` lists the candidates too.
showExtensions.push((s, host, bdf) => {
  const info = variantInfo(s.fs, host, readVfioAliases(s.fs, host.kernelRelease).aliases, bdf);
  return { json: { variants: { candidates: info.candidates, chosen: info.chosen, chosenDriver: info.chosenDriver } }, text: [['vfio variants', variantsSummary(info)]] };
});

export function registerVariants(program: Command, ctx: CliContext): void {
  program
    .command('variants')
    .description('list the vfio-pci variant drivers that match each device, ranked, and the one --variant auto picks')
    .argument('<selector...>', 'PCI address, interface, block device, VENDOR:DEVICE or group:N')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action((selectors: string[], _opts: unknown, cmd: Command) => {
      const s = openSession(ctx, cmd);
      const host = scanHost(s.fs);
      const bdfs = resolveSelectors(s.fs, host, selectors, { ids: true, groups: true });
      const file = readVfioAliases(s.fs, host.kernelRelease);
      if (file.aliases === null) s.warn(`cannot read ${file.path}: only vfio-pci's catch-all is known`);
      const devices = bdfs.map((b) => variantInfo(s.fs, host, file.aliases, b));
      if (s.json) s.printJson({ devices });
      else s.print(renderVariants(devices, s.chalk));
    });
}
