import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isVfioDriver, keepsGroupViable, KNOWN_VARIANTS } from '../../src/model/drivers.js';
import { groupBlockers } from '../../src/model/host.js';
import type { Host, PciDevice } from '../../src/model/types.js';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';

// kernel.md §2.2: only drivers with driver_managed_dma keep a group viable.
test('viability rule: vfio-pci, every known variant, pci-stub, pcieport and unbound keep a group viable', () => {
  for (const d of [null, 'vfio-pci', 'pci-stub', 'pcieport', ...KNOWN_VARIANTS]) assert.equal(keepsGroupViable(d), true, String(d));
  for (const v of ['mlx5_vfio_pci', 'hisi_acc_vfio_pci', 'pds_vfio_pci', 'virtio_vfio_pci', 'nvgrace_gpu_vfio_pci', 'qat_vfio_pci', 'xe-vfio-pci']) {
    assert.equal(KNOWN_VARIANTS.has(v), true, v);
  }
});

test('viability rule: pci-pf-stub, ordinary and unknown drivers block', () => {
  for (const d of ['pci-pf-stub', 'nvme', 'snd_hda_intel', 'xhci_hcd', 'i801_smbus', 'igen6_edac', 'e1000e', 'some_out_of_tree_driver', 'vfio_pci', 'vfio']) {
    assert.equal(keepsGroupViable(d), false, d);
  }
});

test('an out-of-tree vfio variant is recognised by vfio-dev/ alone', () => {
  assert.equal(isVfioDriver('acme_vfio_pci'), false);
  assert.equal(isVfioDriver('acme_vfio_pci', true), true);
  assert.equal(keepsGroupViable('acme_vfio_pci', true), true);
  assert.equal(isVfioDriver(null, true), false, 'unbound is never vfio-bound');
  assert.equal(isVfioDriver('pci-stub'), false, 'pci-stub keeps viability but is not vfio');
});

test('groupBlockers lists exactly the members on blocking drivers, in group order', () => {
  const dev = (bdf: string, driver: string | null, vfioDev: string | null = null) => ({ bdf, driver, vfioDev }) as unknown as PciDevice;
  const devices = [dev('0000:00:1c.0', 'pcieport'), dev('0000:01:00.0', 'vfio-pci', 'vfio0'), dev('0000:01:00.1', 'snd_hda_intel'), dev('0000:01:00.2', null), dev('0000:01:00.3', 'pci-pf-stub')];
  const host = { devices: new Map(devices.map((d) => [d.bdf, d])), groups: [], iommuPresent: true, kernelRelease: null } as Host;
  assert.deepEqual(groupBlockers(host, { id: 5, devices: devices.map((d) => d.bdf) }), ['0000:01:00.1', '0000:01:00.3']);
});

test('groups --json: blockers and viability end to end, including --not-viable and --vfio', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, {
    devices: [
      { bdf: '0000:00:01.0', id: '8086:1901', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '10de:2204', class: '030000', driver: 'vfio-pci', vfioDev: 'vfio0', group: 1 },
      { bdf: '0000:01:00.1', parent: '0000:00:01.0', id: '10de:1aef', class: '040300', driver: 'pci-stub', group: 1 },
      { bdf: '0000:02:00.0', id: '15b3:101e', class: '020000', driver: 'mlx5_vfio_pci', vfioDev: 'vfio1', group: 2 },
      { bdf: '0000:03:00.0', id: '8086:1521', class: '020000', driver: 'pci-pf-stub', group: 3 },
      { bdf: '0000:03:00.1', id: '8086:1521', class: '020000', group: 3 },
    ],
  });
  const doc = (await cli(['groups', '--json'], root)).json();
  assert.deepEqual(doc.groups.map((g: any) => [g.id, g.viable, g.blockers]), [
    [1, true, []],
    [2, true, []],
    [3, false, ['0000:03:00.0']],
  ]);
  assert.deepEqual(doc.groups[0].devices.map((d: any) => d.vfioBound), [false, true, false]);
  assert.deepEqual((await cli(['groups', '--json', '--not-viable'], root)).json().groups.map((g: any) => g.id), [3]);
  assert.deepEqual((await cli(['groups', '--json', '--vfio'], root)).json().groups.map((g: any) => g.id), [1, 2]);
});
