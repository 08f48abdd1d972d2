import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runChecks } from '../../src/doctor/checks.js';
import type { DoctorFacts, IommufdFacts } from '../../src/doctor/facts.js';
import { buildTree, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';

const BASE: DoctorFacts = {
  iommuGroupCount: 3, iommuUnits: ['dmar0'], cmdline: 'intel_iommu=on', firmwareDmar: true, firmwareIvrs: false,
  interrupts: ' 40: 0 IR-PCI-MSI 524288 Edge nvme0q0\n', modules: { vfio: true, vfio_pci: true, vfio_iommu_type1: false, iommufd: false },
  vfioPciDriver: true, type1AllowUnsafeInterrupts: undefined, iommufdAllowUnsafeInterrupts: undefined, noiommuMode: undefined,
  devVfio: true, container: { path: '/dev/vfio/vfio', mode: 0o666, uid: 0, gid: 0 }, groupNodes: [], deviceNodes: [], iommufdNode: undefined,
};
const NONE: IommufdFacts = {
  kernelRelease: '6.12.0', sysModule: false, loadable: false, builtinListed: null, depListed: null, type1DepListed: null, type1BuiltinListed: null,
  config: null, vfioDevEntries: 0, vfioDevCdevs: 0, devVfioDevices: false,
};
const codes = (f: DoctorFacts) => Object.fromEntries(runChecks(f).filter((c) => ['iommufd', 'vfio-cdev', 'vfio-container'].includes(c.id)).map((c) => [c.id, `${c.status} ${c.code}`]));

test('doctor iommufd: built in, loaded, a module on disk, absent, unknown; /dev/iommu and its mode', () => {
  assert.deepEqual(runChecks(BASE).map((c) => c.id).slice(-1), ['dev-vfio-permissions'], 'facts without iommufd keep the old list');
  const node = { path: '/dev/iommu', mode: 0o660, uid: 0, gid: 0 };
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, sysModule: true }, iommufdNode: node }).iommufd, 'PASS iommufd-builtin');
  const loaded = runChecks({ ...BASE, iommufd: { ...NONE, sysModule: true, loadable: true }, modules: { ...BASE.modules, iommufd: true }, iommufdNode: node }).find((c) => c.id === 'iommufd')!;
  assert.equal(loaded.code, 'iommufd-loaded');
  assert.match(loaded.message, /\/dev\/iommu is 0:0 0660/);
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, sysModule: true } }).iommufd, 'WARN iommufd-no-node');
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, depListed: true, builtinListed: false } }).iommufd, 'PASS iommufd-available');
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, depListed: false, builtinListed: false } }).iommufd, 'PASS iommufd-absent');
  assert.equal(codes({ ...BASE, iommufd: NONE }).iommufd, 'PASS iommufd-unknown');
});

test('doctor vfio-cdev: offered, not offered (old kernel, CDEV off), unknown', () => {
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, vfioDevEntries: 2, vfioDevCdevs: 2 } })['vfio-cdev'], 'PASS cdev-offered');
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, vfioDevEntries: 2 } })['vfio-cdev'], 'PASS cdev-not-offered');
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, kernelRelease: '6.1.0-56-amd64' } })['vfio-cdev'], 'PASS cdev-not-offered');
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, config: { CONFIG_VFIO_DEVICE_CDEV: 'y' } } })['vfio-cdev'], 'PASS cdev-supported');
  assert.equal(codes({ ...BASE, iommufd: NONE })['vfio-cdev'], 'PASS cdev-unknown');
});

test('doctor vfio-container: type1 or iommufd compatibility mode', () => {
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, config: { CONFIG_IOMMUFD: 'y', CONFIG_IOMMUFD_VFIO_CONTAINER: 'y' } } })['vfio-container'], 'PASS container-iommufd');
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, config: { CONFIG_VFIO_CONTAINER: 'y', CONFIG_VFIO_IOMMU_TYPE1: 'm' } } })['vfio-container'], 'PASS container-type1');
  assert.equal(codes({ ...BASE, modules: { ...BASE.modules, vfio_iommu_type1: true }, iommufd: NONE })['vfio-container'], 'PASS container-type1');
  // No config: type1 not on disk while iommufd is → the container is iommufd's.
  assert.equal(codes({ ...BASE, iommufd: { ...NONE, sysModule: true, type1DepListed: false, type1BuiltinListed: false } })['vfio-container'], 'PASS container-iommufd');
  assert.equal(codes({ ...BASE, iommufd: NONE })['vfio-container'], 'PASS container-unknown');
});

test('doctor --json on a built tree: /boot/config, modules.dep, /sys/class/vfio-dev with a cdev, /dev/iommu', async (t) => {
  const { root, cleanup } = tempRoot('vfioctl-doctor-iommufd-');
  t.after(cleanup);
  const spec: TreeSpec = {
    osrelease: '6.12.0-test',
    devices: [{ bdf: '0000:00:03.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio0', cdev: true, group: 3 }],
    devVfio: [3],
  };
  buildTree(root, spec);
  const put = (p: string, text: string) => { fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true }); fs.writeFileSync(path.join(root, p), text); };
  put('boot/config-6.12.0-test', 'CONFIG_IOMMUFD=y\nCONFIG_IOMMUFD_VFIO_CONTAINER=y\nCONFIG_VFIO_DEVICE_CDEV=y\n# CONFIG_VFIO_CONTAINER is not set\n');
  fs.mkdirSync(path.join(root, 'sys/module/iommufd/parameters'), { recursive: true });
  put('sys/class/vfio-dev/vfio0/dev', '511:0\n');
  put('dev/iommu', '');
  fs.chmodSync(path.join(root, 'dev/iommu'), 0o660);
  const r = await cli(['doctor', '--json'], root);
  const by = Object.fromEntries(r.json().checks.map((c: { id: string; code: string }) => [c.id, c.code]));
  assert.equal(by.iommufd, 'iommufd-builtin');
  assert.equal(by['vfio-cdev'], 'cdev-offered');
  assert.equal(by['vfio-container'], 'container-iommufd');
});
