import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot, type DevSpec, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { VfioctlError, errnoMeaning } from '../../src/errors.js';

const ENV = { NO_COLOR: '1', VFIOCTL_LOCK_TIMEOUT: '0' };
const PF = '0000:01:00.0';

/** The shared fake kernel (SR-IOV per kernel.md §9), with the sriov_numvfs values written, in order. */
class SriovKernel extends FakeKernel {
  constructor(root: string, spec: TreeSpec) {
    super(root, spec, { idTables: { nvme: ['1b36:0010'] } });
  }
  get numvfsWrites(): string[] {
    return this.writes.filter((w) => w.path.endsWith('/sriov_numvfs')).map((w) => w.value);
  }
}

function lab(t: { after: (f: () => void) => void }, num = 0) {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const spec: TreeSpec = {
    osrelease: '6.1.0-test',
    modulesAlias: 'alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n',
    drivers: { 'vfio-pci': 'vfio_pci', nvme: 'nvme' },
    devices: [
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: PF, parent: '0000:00:01.0', id: '1b36:0010', class: '010802', driver: 'nvme', group: 2, sriov: { total: 4, num: 0 } },
    ],
  };
  buildTree(root, spec);
  const kernel = new SriovKernel(root, spec);
  const vfioctl = (...argv: string[]) => cli(argv, root, { makeFs: () => kernel, env: ENV });
  const attr = (bdf: string, f: string) => fs.readFileSync(path.join(root, 'sys/bus/pci/devices', bdf, f), 'utf8').trim();
  const driverOf = (bdf: string) => {
    const l = path.join(root, 'sys/bus/pci/devices', bdf, 'driver');
    return fs.existsSync(l) ? path.basename(fs.readlinkSync(l)) : null;
  };
  return { root, kernel, vfioctl, attr, driverOf, num };
}

test('vfs --count 2 --bind vfio-pci: autoprobe off while creating, VFs bound to vfio, autoprobe restored, read back', async (t) => {
  const { kernel, vfioctl, attr, driverOf } = lab(t);
  const r = await vfioctl('vfs', PF, '--count', '2', '--bind', 'vfio-pci', '--json');
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.changed, true);
  assert.equal(doc.numVfsBefore, 0);
  assert.equal(doc.numVfs, 2);
  assert.deepEqual(doc.writes.map((w: any) => `${path.basename(w.path)}=${w.value}`), ['sriov_drivers_autoprobe=0', 'sriov_numvfs=2', 'sriov_drivers_autoprobe=1']);
  assert.deepEqual(doc.vfs.map((v: any) => [v.bdf, v.driver, v.iommuGroup]), [['0000:01:00.1', 'vfio-pci', 3], ['0000:01:00.2', 'vfio-pci', 4]]);
  assert.deepEqual(doc.actions.map((a: any) => [a.bdf, a.from, a.status]), [['0000:01:00.1', null, 'bound'], ['0000:01:00.2', null, 'bound']]);
  assert.equal(driverOf('0000:01:00.1'), 'vfio-pci');
  assert.equal(attr(PF, 'sriov_drivers_autoprobe'), '1');
  assert.equal(driverOf(PF), 'nvme', 'the PF keeps its driver');
  assert.deepEqual(kernel.numvfsWrites, ['2']);
});

test('vfs: changing a non-zero count writes 0 first; same count is a no-op; above totalvfs is explained before writing', async (t) => {
  const { kernel, vfioctl } = lab(t);
  assert.equal((await vfioctl('vfs', PF, '--count', '2')).code, 0);
  const noBind = await vfioctl('vfs', PF, '--count', '3', '--json');
  assert.equal(noBind.code, 0, noBind.stderr);
  assert.deepEqual(kernel.numvfsWrites, ['2', '0', '3']);
  assert.ok(noBind.json().vfs.every((v: any) => v.driver === 'nvme'), 'without --bind the host driver takes them');
  const same = await vfioctl('vfs', PF, '--count', '3', '--json');
  assert.equal(same.json().changed, false);
  assert.deepEqual(kernel.numvfsWrites, ['2', '0', '3']);
  const big = await vfioctl('vfs', PF, '--count', '9');
  assert.equal(big.code, 2);
  assert.match(big.stderr, /at most 4 \(sriov_totalvfs\).*ERANGE/);
  assert.deepEqual(kernel.numvfsWrites, ['2', '0', '3']);
});

test('vfs --count 0 refuses while a VF is open through vfio, then removes them', async (t) => {
  const { kernel, vfioctl } = lab(t);
  assert.equal((await vfioctl('vfs', PF, '--count', '2', '--bind', 'vfio-pci')).code, 0);
  kernel.openDevice('0000:01:00.2');
  const r = await vfioctl('vfs', PF, '--count', '0');
  assert.equal(r.code, 4);
  assert.match(r.stderr, /0000:01:00.2: a VFIO user has the device open/);
  assert.deepEqual(kernel.numvfsWrites, ['2']);
  kernel.closeDevice('0000:01:00.2');
  const ok = await vfioctl('vfs', PF, '--count', '0', '--json');
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(ok.json().vfs, []);
  assert.equal(ok.json().numVfs, 0);
});

test('vfs refuses bad targets: no driver on the PF, a VF, a non-SR-IOV device, a bad count; --dry-run writes nothing', async (t) => {
  const { kernel, vfioctl } = lab(t);
  const dry = await vfioctl('vfs', PF, '--count', '2', '--bind', 'auto', '--dry-run', '--json');
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.json().changed, true, 'as bind --dry-run: a real run would change the host');
  assert.equal(dry.json().writes.length, 3);
  assert.deepEqual(kernel.numvfsWrites, []);
  assert.equal((await vfioctl('vfs', '0000:00:01.0', '--count', '1')).code, 2);
  assert.equal((await vfioctl('vfs', PF, '--count', '-1')).code, 2);
  assert.equal((await vfioctl('vfs', PF, '--count', 'two')).code, 2);
  // Unbound as the kernel leaves it: both the device's link and the driver's link gone.
  const drv = path.basename(fs.readlinkSync(path.join(kernel.root, 'sys/bus/pci/devices', PF, 'driver')));
  fs.rmSync(path.join(kernel.root, 'sys/bus/pci/devices', PF, 'driver'));
  fs.rmSync(path.join(kernel.root, 'sys/bus/pci/drivers', drv, PF));
  const nodrv = await vfioctl('vfs', PF, '--count', '1');
  assert.equal(nodrv.code, 4);
  assert.match(nodrv.stderr, /has no driver.*ENOENT/);
  assert.deepEqual(kernel.numvfsWrites, []);
});

test('vfs --bind: when a new VF cannot be bound, the VFs are removed again (count back to before)', async (t) => {
  const { kernel, vfioctl, attr, driverOf } = lab(t);
  kernel.failNext({ path: /drivers_probe$/, errno: 'EINVAL' });
  const r = await vfioctl('vfs', PF, '--count', '2', '--bind', 'vfio-pci', '--json');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /drivers_probe: invalid argument.*put back to 0 VF\(s\) with autoprobe/);
  assert.deepEqual(kernel.numvfsWrites, ['2', '0'], 'created, then removed');
  assert.equal(attr(PF, 'sriov_numvfs'), '0');
  assert.equal(attr(PF, 'sriov_drivers_autoprobe'), '1');
  assert.equal(driverOf(PF), 'nvme');
  assert.equal(r.json().numVfs, 0);
});
