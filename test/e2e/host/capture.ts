/**
 * `bash test/e2e/capture.sh`: boot every topology in capture mode and store the
 * snapshots the real kernel produced as test/fixtures/lab-<topology>/ (Debian's kernel) or
 * lab-<topology>-cdev/ (the lab's cdev kernel; LAB_KERNEL=cdev), with oracle.json (the
 * kernel's hot-reset answers) and a generated EXPECTED.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOPOLOGIES, type Topology } from '../lab/topologies.js';
import { bootVm, consoleTail, labKernels, labPaths, qemuArgs } from '../lab/vm.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const kernels = labKernels(process.env.LAB_KERNEL ?? 'debian');
if (kernels.length !== 1) throw new Error('capture one kernel at a time: LAB_KERNEL=debian or LAB_KERNEL=cdev');
const paths = labPaths(repo, kernels[0]);
const suffix = paths.kernel === 'debian' ? '' : `-${paths.kernel}`;
const kernelWords = paths.kernel === 'debian' ? 'Debian kernel' : 'the lab\'s cdev kernel (test/e2e/kernel/, IOMMUFD + VFIO_DEVICE_CDEV)';
const wanted = process.env.LAB_TOPOLOGIES?.split(',').filter(Boolean);

function expectedMd(t: Topology, o: any): string {
  const lines: string[] = [];
  const q = qemuArgs(paths, t, 'capture', '<out>', 1).map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')
    .replaceAll(repo, '<repo>');
  lines.push(`# lab-${t.name}: ${t.description}`, '',
    `Captured by \`LAB_KERNEL=${paths.kernel} bash test/e2e/capture.sh\` (generated file) on ${kernelWords} ${o.kernel} under QEMU`,
    '(TCG, q35, emulated Intel VT-d with interrupt remapping). `host/` is the tree with the host drivers the',
    'kernel bound at boot; `vfio/` is the same machine after every eligible endpoint was bound to vfio-pci',
    '(bridges, the ICH9 functions, VGA and the lab\'s two virtio-9p devices at 00:10.0/00:11.0 are left alone).',
    '`oracle.json` has the raw data, including `hotResetInfo`: what VFIO_DEVICE_GET_PCI_HOT_RESET_INFO returned',
    'for each vfio-bound device, opened through its group the way QEMU does.', '',
    '## QEMU command line', '', '```', `qemu-system-x86_64 ${q}`, '```', '',
    '## IOMMU groups (host drivers)', '', '| group | members (driver) | viable |', '|---|---|---|');
  const drv = new Map<string, string | null>((o.devicesWithHostDrivers as any[]).map((d) => [d.bdf, d.driver]));
  for (const g of o.groupsWithHostDrivers) {
    lines.push(`| ${g.id} | ${g.members.map((b: string) => `${b} (${drv.get(b) ?? 'none'})`).join(', ')} | ${g.viable ? 'yes' : 'no'} |`);
  }
  const drvV = new Map<string, string | null>((o.devicesWithVfio as any[]).map((d) => [d.bdf, d.driver]));
  lines.push('', '## IOMMU groups (after binding to vfio-pci)', '', '| group | members (driver) | viable |', '|---|---|---|');
  for (const g of o.groupsWithVfio) {
    lines.push(`| ${g.id} | ${g.members.map((b: string) => `${b} (${drvV.get(b) ?? 'none'})`).join(', ')} | ${g.viable ? 'yes' : 'no'} |`);
  }
  lines.push('', '## Hot-reset INFO per vfio-bound device', '', '| device | kernel answer |', '|---|---|');
  for (const [bdf, a] of Object.entries(o.hotResetInfo as Record<string, any>)) {
    const text = a.ok ? a.devices.map((d: any) => `${d.bdf} (group ${d.group})`).join(', ') : `${a.errno} at ${a.stage}`;
    lines.push(`| ${bdf} | ${text} |`);
  }
  if (o.hotResetInfoCdev) {
    const words = (a: any) => (a.ok
      ? `${a.devices.map((d: any) => `${d.bdf} (${typeof d.devid === 'number' ? `dev_id ${d.devid}` : d.devid})`).join(', ')}; DEV_ID_OWNED ${a.flags.devIdOwned ? 'set' : 'not set'}`
      : `${a.errno} at ${a.stage}`);
    lines.push('', '## Hot-reset INFO through the cdev path (iommufd)', '',
      'Each device opened through its cdev, bound to a fresh iommufd context and attached to an IOAS;',
      '"one per group" also binds the lowest vfio-bound device of every other IOMMU group the reset touches.', '',
      '| device | alone | one per group (bound) |', '|---|---|---|');
    for (const [bdf, a] of Object.entries(o.hotResetInfoCdev as Record<string, any>)) {
      lines.push(`| ${bdf} | ${words(a.alone)} | ${words(a.onePerGroup.answer)} (${a.onePerGroup.bound.join(', ')}) |`);
    }
  }
  if (Object.keys(o.bindErrors).length) {
    lines.push('', '## Devices that would not bind to vfio-pci', '');
    for (const [b, e] of Object.entries(o.bindErrors)) lines.push(`- ${b}: ${e}`);
  }
  lines.push('', '## reset_method', '', '| device | reset_method |', '|---|---|');
  for (const d of o.devicesWithHostDrivers as any[]) lines.push(`| ${d.bdf} | ${d.resetMethod ?? '(no file)'} |`);
  return lines.join('\n') + '\n';
}

for (const t of TOPOLOGIES.filter((x) => !wanted || wanted.includes(x.name))) {
  const vm = await bootVm(paths, t, 'capture', { timeoutSec: 240, smp: 1 });
  const oracleFile = path.join(vm.outDir, 'oracle.json');
  if (vm.timedOut || !fs.existsSync(oracleFile)) {
    console.error(`capture ${t.name} failed (exit ${vm.exitCode}, timed out ${vm.timedOut})\n${consoleTail(vm.consoleLog)}`);
    process.exitCode = 1;
    continue;
  }
  const dest = path.join(repo, 'test', 'fixtures', `lab-${t.name}${suffix}`);
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  for (const sub of ['host', 'vfio']) fs.cpSync(path.join(vm.outDir, sub), path.join(dest, sub), { recursive: true, verbatimSymlinks: true });
  const o = JSON.parse(fs.readFileSync(oracleFile, 'utf8'));
  fs.writeFileSync(path.join(dest, 'oracle.json'), JSON.stringify(o, null, 2) + '\n');
  fs.writeFileSync(path.join(dest, 'EXPECTED.md'), expectedMd(t, o));
  console.log(`captured lab-${t.name}${suffix} in ${vm.seconds.toFixed(1)}s`);
}
