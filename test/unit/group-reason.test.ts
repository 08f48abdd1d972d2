import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainGroup, groupBridges, type GroupReasonCode } from '../../src/model/group-reason.js';
import { groupOf } from '../../src/model/host.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { buildTree, tempRoot, type DevSpec } from '../helpers/tree.js';

/** Build one kernel-shaped tree holding every case, each in its own group. */
const { root, cleanup } = tempRoot();
test.after(cleanup);
const devices: DevSpec[] = [
  // isolated: a GPU alone behind its root port (port in its own group)
  { bdf: '0000:00:01.0', id: '8086:1901', class: '060400', driver: 'pcieport', group: 1 },
  { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '10de:1c82', class: '030000', group: 2 },
  // multifunction: GPU + audio below a port that is isolated on its own
  { bdf: '0000:00:02.0', id: '8086:1905', class: '060400', driver: 'pcieport', group: 3 },
  { bdf: '0000:02:00.0', parent: '0000:00:02.0', id: '10de:2204', class: '030000', driver: 'nvidia', group: 4 },
  { bdf: '0000:02:00.1', parent: '0000:00:02.0', id: '10de:1aef', class: '040300', driver: 'snd_hda_intel', group: 4 },
  // root-bus-multifunction: PCH functions
  { bdf: '0000:00:1f.0', id: '8086:a305', class: '060100', driver: 'lpc_ich', group: 5 },
  { bdf: '0000:00:1f.3', id: '8086:a348', class: '040300', driver: 'snd_hda_intel', group: 5 },
  { bdf: '0000:00:1f.4', id: '8086:a323', class: '0c0500', driver: 'i801_smbus', group: 5 },
  // port-with-devices-below: a root port without ACS grouped with the NIC below it
  { bdf: '0000:00:1c.0', id: '8086:a338', class: '060400', driver: 'pcieport', group: 6 },
  { bdf: '0000:03:00.0', parent: '0000:00:1c.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 6 },
  // conventional-pci-bridge: PCIe-to-PCI bridge and the conventional devices behind it
  { bdf: '0000:00:1c.4', id: '8086:a33c', class: '060400', driver: 'pcieport', group: 7 },
  { bdf: '0000:04:00.0', parent: '0000:00:1c.4', id: '1b21:1080', class: '060401', group: 8 },
  { bdf: '0000:05:00.0', parent: '0000:04:00.0', id: '10ec:8139', class: '020000', driver: '8139too', group: 8, pcie: false },
  { bdf: '0000:05:01.0', parent: '0000:04:00.0', id: '1102:0002', class: '040100', driver: 'snd_emu10k1', group: 8, pcie: false },
  // shared-upstream-bridge: two switch downstream ports, their upstream port grouped apart
  { bdf: '0000:00:03.0', id: '8086:1909', class: '060400', driver: 'pcieport', group: 9 },
  { bdf: '0000:06:00.0', parent: '0000:00:03.0', id: '10b5:8747', class: '060400', driver: 'pcieport', group: 10 },
  { bdf: '0000:07:08.0', parent: '0000:06:00.0', id: '10b5:8747', class: '060400', driver: 'pcieport', group: 11 },
  { bdf: '0000:07:10.0', parent: '0000:06:00.0', id: '10b5:8747', class: '060400', driver: 'pcieport', group: 11 },
  // sriov-pf-vf: a PF and its VFs without ACS between them
  { bdf: '0000:00:03.2', id: '8086:1909', class: '060400', driver: 'pcieport', group: 12 },
  { bdf: '0000:0a:00.0', parent: '0000:00:03.2', id: '8086:1521', class: '020000', driver: 'igb', group: 13, sriov: { total: 7, num: 2 } },
  { bdf: '0000:0a:10.0', parent: '0000:00:03.2', id: '8086:1520', class: '020000', driver: 'igbvf', group: 13, physfn: '0000:0a:00.0' },
  { bdf: '0000:0a:10.4', parent: '0000:00:03.2', id: '8086:1520', class: '020000', group: 13, physfn: '0000:0a:00.0' },
  // not-visible: two endpoints below different ports sharing a group (quirk or IOMMU policy)
  { bdf: '0000:00:04.0', id: '8086:190d', class: '060400', driver: 'pcieport', group: 14 },
  { bdf: '0000:00:05.0', id: '8086:190e', class: '060400', driver: 'pcieport', group: 15 },
  { bdf: '0000:0b:00.0', parent: '0000:00:04.0', id: '144d:a808', class: '010802', driver: 'nvme', group: 16 },
  { bdf: '0000:0c:00.0', parent: '0000:00:05.0', id: '144d:a808', class: '010802', driver: 'nvme', group: 16 },
];
buildTree(root, { devices });
const host = scanHost(new FsRoot(root));
const reason = (id: number) => explainGroup(host, groupOf(host, id)!);

const cases: [number, GroupReasonCode, RegExp][] = [
  [2, 'isolated', /^isolated/],
  [4, 'multifunction', /0000:02:00\b/],
  [5, 'root-bus-multifunction', /0000:00:1f.*root bus/],
  [6, 'port-with-devices-below', /bridge 0000:00:1c\.0/],
  [8, 'conventional-pci-bridge', /behind bridge 0000:04:00\.0/],
  [11, 'shared-upstream-bridge', /below bridge 0000:06:00\.0/],
  [13, 'sriov-pf-vf', /physical function 0000:0a:00\.0/],
  [16, 'not-visible', /not visible in sysfs/],
];
for (const [id, code, text] of cases) {
  test(`group reason ${code} (group ${id})`, () => {
    const r = reason(id);
    assert.equal(r.code, code);
    assert.match(r.text, text);
  });
}

test('every reason code is covered by a case above', () => {
  const all: GroupReasonCode[] = ['isolated', 'conventional-pci-bridge', 'multifunction', 'root-bus-multifunction', 'port-with-devices-below', 'shared-upstream-bridge', 'sriov-pf-vf', 'not-visible'];
  assert.deepEqual(new Set(cases.map((c) => c[1])), new Set(all));
});

test('groupBridges names the bridge members only', () => {
  assert.deepEqual(groupBridges(host, groupOf(host, 8)!), ['0000:04:00.0']);
  assert.deepEqual(groupBridges(host, groupOf(host, 11)!), ['0000:07:08.0', '0000:07:10.0']);
  assert.deepEqual(groupBridges(host, groupOf(host, 4)!), []);
});

test('a plain PCI-to-PCI bridge (class 060400) with conventional devices below is told by their missing link attributes', (t) => {
  const make = (linkAttrs: boolean) => {
    const r = tempRoot();
    t.after(r.cleanup);
    buildTree(r.root, {
      devices: [
        { bdf: '0000:00:1c.0', id: '8086:a338', class: '060400', driver: 'pcieport', group: 1, pcie: linkAttrs },
        { bdf: '0000:02:00.0', parent: '0000:00:1c.0', id: '12d8:e111', class: '060400', group: 2, pcie: linkAttrs },
        { bdf: '0000:03:00.0', parent: '0000:02:00.0', id: '10ec:8139', class: '020000', driver: '8139too', group: 2, pcie: false },
        { bdf: '0000:03:01.0', parent: '0000:02:00.0', id: '1102:0002', class: '040100', group: 2, pcie: false },
        // A PF and VF sharing a group: no bridge in it, so nothing there is probed.
        { bdf: '0000:00:03.0', id: '8086:1521', class: '020000', driver: 'igb', group: 3, sriov: { total: 7, num: 1 } },
        { bdf: '0000:00:10.0', id: '8086:1520', class: '020000', group: 3, physfn: '0000:00:03.0' },
      ],
    });
    return scanHost(new FsRoot(r.root));
  };
  const modern = make(true);
  assert.equal(explainGroup(modern, groupOf(modern, 2)!).code, 'conventional-pci-bridge');
  assert.equal(modern.devices.get('0000:03:00.0')!.pcie, false);
  assert.equal(modern.devices.get('0000:02:00.0')!.pcie, true);
  assert.equal(modern.devices.get('0000:00:10.0')!.pcie, null);
  // A tree with no link attributes anywhere (older captures) cannot tell PCI from PCIe.
  const old = make(false);
  assert.equal(old.devices.get('0000:03:00.0')!.pcie, null);
  assert.equal(explainGroup(old, groupOf(old, 2)!).code, 'port-with-devices-below');
});
