import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { runChecks } from '../../src/doctor/checks.js';
import { parseCmdline } from '../../src/doctor/cmdline.js';
import type { DoctorFacts } from '../../src/doctor/facts.js';

const put = (root: string, p: string, text = '', mode?: number) => {
  const f = path.join(root, p);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, text);
  if (mode !== undefined) fs.chmodSync(f, mode);
};

const IR_INTERRUPTS = '           CPU0\n 24:        130  IR-PCI-MSIX-0000:01:00.0    0-edge      nvme0q0\n';
const PLAIN_INTERRUPTS = '           CPU0\n 24:        130  PCI-MSIX-0000:01:00.0    0-edge      nvme0q0\n';

/** A healthy Intel host: VT-d on, remapping on, vfio loaded, one group node. */
function healthyHost(root: string, cmdline = 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 intel_iommu=on iommu=pt') {
  buildTree(root, {
    cmdline,
    devices: [
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '1b36:0010', class: '010802', driver: 'vfio-pci', group: 12, vfioDev: 'vfio0' },
    ],
    devVfio: [12],
  });
  fs.mkdirSync(path.join(root, 'sys/class/iommu/dmar0'), { recursive: true });
  put(root, 'sys/firmware/acpi/tables/DMAR', 'DMAR', 0o400);
  put(root, 'proc/interrupts', IR_INTERRUPTS);
  for (const m of ['vfio', 'vfio_iommu_type1']) fs.mkdirSync(path.join(root, 'sys/module', m), { recursive: true });
  put(root, 'sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts', 'N\n');
  put(root, 'sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'N\n');
  fs.chmodSync(path.join(root, 'dev/vfio/12'), 0o600);
  put(root, 'dev/vfio/vfio', '', 0o666);
}

const byId = (doc: any) => Object.fromEntries(doc.checks.map((c: any) => [c.id, c]));

test('doctor --json on a healthy host: every check passes, exit 0, contract fields present', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  healthyHost(root);
  const r = await cli(['doctor', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.schemaVersion, 1);
  assert.equal(doc.ok, true);
  for (const c of doc.checks) {
    assert.deepEqual(Object.keys(c).sort(), ['code', 'fix', 'id', 'message', 'status']);
    assert.equal(c.status, 'PASS', `${c.id}: ${c.message}`);
    assert.equal(c.fix, null);
  }
  const ids = doc.checks.map((c: any) => c.id);
  for (const id of ['iommu-active', 'iommu-cmdline', 'iommu-firmware', 'interrupt-remapping', 'module-vfio', 'module-vfio-pci', 'module-vfio-iommu-type1', 'allow-unsafe-interrupts', 'vfio-pci-ids', 'acs-override', 'noiommu', 'dev-vfio-permissions']) {
    assert.ok(ids.includes(id), id);
  }
  assert.match(byId(doc)['iommu-active'].message, /2 IOMMU groups.*dmar0/);
  assert.match(byId(doc)['iommu-cmdline'].message, /iommu=pt/);
});

test('doctor: VT-d in firmware but intel_iommu=on missing fails with the command-line fix, exit 1', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, { cmdline: 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 quiet', devices: [{ bdf: '0000:00:02.0', id: '8086:1234', class: '030000', driver: 'i915' }] });
  put(root, 'sys/firmware/acpi/tables/DMAR', 'DMAR', 0o400);
  put(root, 'proc/interrupts', PLAIN_INTERRUPTS);
  const r = await cli(['doctor', '--json'], root);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /iommu-active/);
  const c = byId(r.json());
  assert.equal(r.json().ok, false);
  assert.equal(c['iommu-active'].status, 'FAIL');
  assert.match(c['iommu-active'].fix, /intel_iommu=on/);
  assert.equal(c['iommu-cmdline'].status, 'FAIL');
  assert.equal(c['iommu-firmware'].status, 'PASS');
  assert.equal(c['interrupt-remapping'].status, 'WARN');
});

test('doctor: intel_iommu=off on the command line is named as the cause', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, { cmdline: 'root=/dev/sda1 intel_iommu=off', devices: [{ bdf: '0000:00:02.0', id: '8086:1234', class: '030000' }] });
  put(root, 'sys/firmware/acpi/tables/DMAR', 'DMAR');
  const r = await cli(['doctor', '--json'], root);
  assert.equal(r.code, 1);
  const c = byId(r.json());
  assert.match(c['iommu-active'].message, /intel_iommu=off/);
  assert.match(c['iommu-cmdline'].fix, /remove intel_iommu=off/);
});

test('doctor: unsafe settings warn (ids=, ACS override, unsafe interrupts, noiommu) without failing', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  healthyHost(root, 'root=/dev/vda1 intel_iommu=on vfio-pci.ids=10de:2204,10de:1aef pcie_acs_override=downstream,multifunction');
  put(root, 'proc/interrupts', PLAIN_INTERRUPTS);
  put(root, 'sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts', 'Y\n');
  put(root, 'sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'Y\n');
  const r = await cli(['doctor', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const c = byId(r.json());
  assert.equal(c['vfio-pci-ids'].status, 'WARN');
  assert.match(c['vfio-pci-ids'].message, /vfio-pci\.ids=10de:2204,10de:1aef/);
  assert.match(c['vfio-pci-ids'].fix, /vfioctl persist/);
  assert.equal(c['acs-override'].status, 'WARN');
  assert.equal(c['allow-unsafe-interrupts'].status, 'WARN');
  assert.equal(c['interrupt-remapping'].status, 'WARN', 'no remapping, tolerated by the override');
  assert.equal(c['noiommu'].status, 'WARN');
});

test('doctor: MSIs without remapping and no override fail (type1 would refuse with EPERM)', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  healthyHost(root, 'root=/dev/vda1 intel_iommu=on intremap=off');
  put(root, 'proc/interrupts', PLAIN_INTERRUPTS);
  const r = await cli(['doctor'], root);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /FAIL\s+interrupt-remapping\s+MSIs are not remapped \(intremap=off/);
  assert.match(r.stdout, /fix: .*remove intremap=off/);
});

test('doctor: a world-accessible group node fails; a granted one is reported', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  healthyHost(root);
  fs.chmodSync(path.join(root, 'dev/vfio/12'), 0o666);
  let r = await cli(['doctor', '--json'], root);
  assert.equal(r.code, 1);
  assert.equal(byId(r.json())['dev-vfio-permissions'].status, 'FAIL');
  assert.match(byId(r.json())['dev-vfio-permissions'].message, /\/dev\/vfio\/12 \d+:\d+ 0666/);
  fs.chmodSync(path.join(root, 'dev/vfio/12'), 0o660);
  r = await cli(['doctor', '--json'], root);
  assert.equal(byId(r.json())['dev-vfio-permissions'].status, 'PASS');
});

test('runChecks is pure: ARM ITS isolation passes without DMAR/IVRS', () => {
  const facts: DoctorFacts = {
    iommuGroupCount: 3, iommuUnits: ['smmu3.0x0000000009050000'], cmdline: 'root=/dev/vda1', firmwareDmar: false, firmwareIvrs: false,
    interrupts: ' 40: 0 ITS-MSI 524288 Edge nvme0q0\n', modules: { vfio: true, vfio_pci: true, vfio_iommu_type1: true, iommufd: false },
    vfioPciDriver: true, type1AllowUnsafeInterrupts: 'N', iommufdAllowUnsafeInterrupts: undefined, noiommuMode: undefined,
    devVfio: true, container: { path: '/dev/vfio/vfio', mode: 0o666, uid: 0, gid: 0 }, groupNodes: [], deviceNodes: [], iommufdNode: undefined,
  };
  const checks = runChecks(facts);
  assert.deepEqual(checks.filter((c) => c.status !== 'PASS').map((c) => c.id), []);
  const noModules = runChecks({ ...facts, modules: { vfio: false, vfio_pci: false, vfio_iommu_type1: false, iommufd: false }, vfioPciDriver: false });
  assert.deepEqual(noModules.filter((c) => c.status === 'WARN').map((c) => c.id), ['module-vfio', 'module-vfio-pci', 'module-vfio-iommu-type1']);
});

test('parseCmdline: quotes, dashes folded to underscores, bare flags', () => {
  const p = parseCmdline('BOOT_IMAGE=/vmlinuz quiet dyndbg="file vfio.c +p" vfio-pci.ids=1:2');
  assert.deepEqual(p.map((x) => x.name), ['BOOT_IMAGE', 'quiet', 'dyndbg', 'vfio_pci.ids']);
  assert.equal(p[1]!.value, null);
  assert.equal(p[2]!.value, 'file vfio.c +p');
  assert.equal(p[3]!.raw, 'vfio-pci.ids=1:2');
});
