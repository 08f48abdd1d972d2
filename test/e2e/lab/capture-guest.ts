/**
 * Guest side of fixture capture (lab.mode=capture): snapshot the topology with
 * its host drivers, then with every eligible endpoint on vfio-pci, and record
 * what VFIO_DEVICE_GET_PCI_HOT_RESET_INFO answers for each vfio-bound device.
 * On a kernel with device cdevs it also records INFO through the cdev path (iommufd), with the
 * device bound alone and with one device of each IOMMU group of its reset set bound to one
 * context. Writes /lab-out/{host,vfio}/ (snapshot trees) and /lab-out/oracle.json.
 */
import * as fs from 'node:fs';
import {
  HAS_CDEV, allBdfs, cdevOracle, labTopology, oracle, run, sysfsBind, truthDevice, truthGroups, vfioctl, type CdevOracleAnswer, type OracleAnswer,
} from './guest.js';
import { eligible } from './capture-guest-lib.js';

function describeDevices() {
  return allBdfs().map((b) => {
    const rm = `/sys/bus/pci/devices/${b}/reset_method`;
    return { ...truthDevice(b), resetMethod: fs.existsSync(rm) ? fs.readFileSync(rm, 'utf8').trim() : null };
  });
}

async function snapshot(dir: string): Promise<void> {
  const r = await vfioctl('snapshot', dir);
  if (r.code !== 0) throw new Error(`snapshot ${dir}: ${r.stderr}`);
}

async function main(): Promise<void> {
  const t = labTopology();
  // The runner's prepare step already created the topology's VFs.
  const vfs = allBdfs().filter((b) => fs.existsSync(`/sys/bus/pci/devices/${b}/physfn`));
  await snapshot('/lab-out/host');
  const groupsHost = truthGroups();
  const devicesHost = describeDevices();

  // VFs go to vfio-pci too; the PF keeps nvme (vfio-pci refuses a PF with VFs).
  const targets = allBdfs().filter(eligible).filter((b) => !(vfs.length > 0 && truthDevice(b).device === '0010' && !vfs.includes(b)));
  const bindErrors: Record<string, string> = {};
  for (const b of targets) {
    try {
      await sysfsBind(b, 'vfio-pci');
    } catch (e) {
      bindErrors[b] = (e as Error).message;
    }
  }
  const answers: Record<string, OracleAnswer> = {};
  for (const b of targets) {
    const d = truthDevice(b);
    if (d.driver !== 'vfio-pci' || d.group === null) continue;
    answers[b] = await oracle('info', b, [d.group]);
  }
  // The cdev path asked after the group path: INFO alone, then with the lowest vfio-bound
  // device of every other group the reset touches bound in the same context.
  const cdevAnswers: Record<string, { alone: CdevOracleAnswer; onePerGroup: { bound: string[]; answer: CdevOracleAnswer } }> = {};
  if (HAS_CDEV) {
    for (const [b, a] of Object.entries(answers)) {
      const alone = await cdevOracle('info', [b]);
      const groups = new Set([truthDevice(b).group]);
      const more: string[] = [];
      for (const d of [...(a.devices ?? [])].sort((x, y) => x.bdf.localeCompare(y.bdf))) {
        if (groups.has(d.group) || truthDevice(d.bdf).driver !== 'vfio-pci') continue;
        groups.add(d.group);
        more.push(d.bdf);
      }
      cdevAnswers[b] = { alone, onePerGroup: { bound: [b, ...more], answer: more.length ? await cdevOracle('info', [b, ...more]) : alone } };
    }
  }
  await snapshot('/lab-out/vfio');
  const doc = {
    topology: t.name,
    description: t.description,
    kernel: (await run('uname', ['-r'])).stdout.trim(),
    groupsWithHostDrivers: groupsHost,
    groupsWithVfio: truthGroups(),
    vfioBound: targets.filter((b) => truthDevice(b).driver === 'vfio-pci'),
    bindErrors,
    hotResetInfo: answers,
    ...(HAS_CDEV ? { hotResetInfoCdev: cdevAnswers } : {}),
    devicesWithHostDrivers: devicesHost,
    devicesWithVfio: describeDevices(),
  };
  fs.writeFileSync('/lab-out/oracle.json', JSON.stringify(doc, null, 2) + '\n');
}

await main();
