import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';

test('snapshot keeps what groups, doctor and the in-use checks read, and works with --root', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, {
    osrelease: '6.1.0-56-amd64',
    modulesAlias: 'alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\nalias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n',
    devices: [
      { bdf: '0000:00:02.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:02.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 2 },
    ],
    net: { enp1s0: '0000:01:00.0' },
  });
  const w = (p: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text);
  };
  w('proc/interrupts', ' 24:  0  IR-PCI-MSIX-0000:01:00.0  0-edge  enp1s0\n');
  w('proc/self/mountinfo', '22 1 259:1 / / rw - ext4 /dev/nvme0n1p1 rw\n');
  w('proc/net/if_inet6', 'fe800000000000000000000000000001 02 40 20 80 enp1s0\n');
  w('sys/firmware/acpi/tables/DMAR', 'DMAR-binary');

  const { root: out, cleanup: clean2 } = tempRoot();
  t.after(clean2);
  const dest = path.join(out, 'snap');
  const r = await cli(['snapshot', dest], root);
  assert.equal(r.code, 0, r.stderr);
  for (const p of ['proc/interrupts', 'proc/self/mountinfo', 'proc/net/if_inet6', 'sys/firmware/acpi/tables/DMAR']) {
    assert.ok(fs.existsSync(path.join(dest, p)), `${p} is in the snapshot`);
  }
  assert.equal(fs.readFileSync(path.join(dest, 'sys/firmware/acpi/tables/DMAR'), 'utf8'), '', 'firmware tables are kept as empty markers');
  assert.match(fs.readFileSync(path.join(dest, 'lib/modules/6.1.0-56-amd64/modules.alias'), 'utf8'), /^alias vfio_pci:/, 'only the vfio_pci aliases are kept');

  const live = (await cli(['groups', '--json'], root)).json();
  const snap = (await cli(['groups', '--json'], dest)).json();
  assert.deepEqual(snap, live, 'groups reads the snapshot as it read the source');
  const doctor = (await cli(['doctor', '--json'], dest)).json();
  const check = (id: string) => doctor.checks.find((c: any) => c.id === id);
  assert.equal(check('iommu-firmware')?.status, 'PASS');
  assert.equal(check('interrupt-remapping')?.status, 'PASS');
});

test('snapshot keeps which variant modules are installed: variants answers the same from it', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const rel = '6.12.0-test';
  buildTree(root, {
    osrelease: rel,
    modulesAlias: 'alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\nalias vfio_pci:v00008086d000010D3sv*sd*bc*sc*i* vfio_pci_lab\nalias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\nalias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n',
    devices: [{ bdf: '0000:01:00.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 2 }],
  });
  const mod = (p: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, 'lib/modules', rel, p)), { recursive: true });
    fs.writeFileSync(path.join(root, 'lib/modules', rel, p), text);
  };
  // vfio_pci_lab is installed, mlx5_vfio_pci is listed but its file is gone, vfio_pci is built in.
  mod('modules.dep', 'kernel/drivers/vfio/pci/vfio_pci_lab.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz\nkernel/drivers/vfio/pci/mlx5/mlx5-vfio-pci.ko.xz:\nkernel/drivers/net/e1000e.ko.xz:\n');
  mod('modules.builtin', 'kernel/drivers/vfio/pci/vfio-pci.ko\n');
  mod('kernel/drivers/vfio/pci/vfio_pci_lab.ko.xz', 'MODULE');
  const { root: out, cleanup: clean2 } = tempRoot();
  t.after(clean2);
  fs.rmSync(out, { recursive: true, force: true });
  assert.equal((await cli(['snapshot', out], root)).code, 0);
  const present = async (r: string) => (await cli(['variants', '01:00.0', '--json'], r)).json().devices[0].candidates.map((c: any) => [c.module, c.present]);
  assert.deepEqual(await present(root), [['vfio_pci_lab', true], ['vfio_pci', true]]);
  assert.deepEqual(await present(out), await present(root));
  // Only the variants' lines, and an empty stand-in instead of the module itself.
  assert.doesNotMatch(fs.readFileSync(path.join(out, 'lib/modules', rel, 'modules.dep'), 'utf8'), /e1000e/);
  assert.equal(fs.statSync(path.join(out, 'lib/modules', rel, 'kernel/drivers/vfio/pci/vfio_pci_lab.ko.xz')).size, 0);
});
