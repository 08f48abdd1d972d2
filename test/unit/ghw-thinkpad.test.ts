import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { expected, extractSnapshot, PCI_IDS_FIXTURE } from '../fixtures/ghw/snapshots.js';

// ThinkPad X1 Carbon Gen10: 23 functions, 15 IOMMU groups, every iommu_group link dangling
// (sys/kernel was not captured), so the group number can only come from the link's name.
const { root, cleanup } = extractSnapshot('thinkpad');
test.after(cleanup);
const want = expected('thinkpad');

test('thinkpad: the iommu_group links really dangle in the fixture', () => {
  const link = path.join(root, 'sys/bus/pci/devices/0000:00:1f.0/iommu_group');
  assert.equal(fs.readlinkSync(link), '../../../kernel/iommu_groups/13');
  assert.equal(fs.existsSync(link), false, 'target must be missing, or this test proves nothing');
});

test('thinkpad: groups --json matches the hand-checked expectation', async () => {
  const r = await cli(['groups', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const doc = r.json();
  assert.equal(doc.schemaVersion, 1);
  assert.equal(doc.iommuPresent, true);
  assert.equal(doc.groups.length, 15);
  const got = doc.groups.map((g: any) => ({
    id: g.id,
    viable: g.viable,
    blockers: g.blockers,
    reasonCode: g.reasonCode,
    devices: g.devices.map((d: any) => [d.bdf, d.vendorId, d.deviceId, d.subsystemVendorId, d.subsystemDeviceId, d.classCode, d.driver, d.parent]),
  }));
  // Column 6 of the expectation is the revision, which only `show` reads (checked below).
  const withoutRevision = want.groups.map((g: any) => ({ ...g, devices: g.devices.map((d: any[]) => d.filter((_, i) => i !== 6)) }));
  assert.deepEqual(got, withoutRevision);
});

test('thinkpad: show --json reports each device\'s hand-checked revision', async () => {
  for (const g of want.groups) {
    for (const d of g.devices as any[][]) {
      const r = await cli(['show', '--json', d[0]], root);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json().revision, d[6], `revision of ${d[0]}`);
    }
  }
});

test('thinkpad: multi-device groups are 8, 9, 11, 12, 13', async () => {
  const doc = (await cli(['groups', '--json'], root)).json();
  assert.deepEqual(doc.groups.filter((g: any) => g.devices.length > 1).map((g: any) => g.id), [8, 9, 11, 12, 13]);
  for (const g of doc.groups) {
    assert.equal(typeof g.reason, 'string');
    assert.ok(g.reason.length > 0);
    for (const d of g.devices) {
      assert.match(d.vendorId, /^[0-9a-f]{4}$/);
      assert.match(d.deviceId, /^[0-9a-f]{4}$/);
      assert.match(d.classCode, /^[0-9a-f]{6}$/);
      assert.equal(d.driverOverride, null, 'no driver_override files in the snapshot');
      assert.deepEqual(d.resetMethods, [], 'no reset_method files in the snapshot');
      assert.equal(d.numaNode, null, 'numa_node is -1 everywhere');
      assert.equal(d.vendorName, null, 'no pci.ids under the root');
    }
  }
});

test('thinkpad: filters --group, --device (BDF, short BDF, nvme0n1), --not-viable, --vfio', async () => {
  const ids = async (...args: string[]) => {
    const r = await cli(['groups', '--json', ...args], root);
    assert.equal(r.code, 0, r.stderr);
    return r.json().groups.map((g: any) => g.id);
  };
  assert.deepEqual(await ids('--group', '13'), [13]);
  assert.deepEqual(await ids('--device', '0000:00:14.2'), [9]);
  assert.deepEqual(await ids('--device', '00:16.3'), [12]);
  assert.deepEqual(await ids('--device', 'nvme0n1'), [14], 'block device via /sys/block (no /sys/class in this snapshot)');
  assert.deepEqual(await ids('--not-viable'), [0, 1, 2, 7, 8, 9, 10, 11, 12, 13, 14]);
  assert.deepEqual(await ids('--vfio'), []);
  const missing = await cli(['groups', '--group', '15'], root);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /^vfioctl: group 15: no such IOMMU group\n/);
});

test('thinkpad: table form lists every group and names the blockers', async () => {
  const r = await cli(['groups'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /\u001b\[/);
  for (const want of ['0000:00:1f.5', '0000:04:00.0', 'sof-audio-pci-intel-tgl', 'igen6_edac', '[144d:a80a]']) assert.ok(r.stdout.includes(want), want);
  assert.match(r.stdout, /0000:00:14\.0 .* xhci_hcd \(blocks the group\)/);
  assert.doesNotMatch(r.stdout, /0000:00:14\.2 .*blocks/, 'the unbound function does not block');
  const groupRows = r.stdout.split('\n').filter((l) => /^\d+\s+(yes|no)\s/.test(l));
  assert.equal(groupRows.length, 15);
});

test('thinkpad: show on the NVMe behind root port 00:06.0', async () => {
  const r = await cli(['show', '04:00.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const d = r.json();
  assert.equal(d.bdf, '0000:04:00.0');
  assert.equal(d.driver, 'nvme');
  assert.equal(d.iommuGroup, 14);
  assert.deepEqual(d.bridges, ['0000:00:06.0']);
  assert.equal(d.parent, '0000:00:06.0');
  assert.deepEqual(d.group, { id: 14, viable: false, blockers: ['0000:04:00.0'], reason: d.group.reason, reasonCode: 'isolated' });
  assert.deepEqual(d.blockDevices, ['nvme0n1'], 'show names the disk');
  assert.deepEqual(d.peers, []);
  assert.equal(d.modalias, 'pci:v0000144Dd0000A80Asv0000144Dsd0000A801bc01sc08i02');
  // The same device by its block device name.
  const byDisk = await cli(['show', 'nvme0n1', '--json'], root);
  assert.equal(byDisk.json().bdf, '0000:04:00.0');
});

test('thinkpad: show lists group peers for the PCH functions in group 13', async () => {
  const d = (await cli(['show', '0000:00:1f.0', '--json'], root)).json();
  assert.equal(d.driver, null);
  assert.deepEqual(d.peers.map((p: any) => [p.bdf, p.driver]), [
    ['0000:00:1f.3', 'sof-audio-pci-intel-tgl'],
    ['0000:00:1f.4', 'i801_smbus'],
    ['0000:00:1f.5', 'intel-spi'],
  ]);
  assert.equal(d.group.viable, false);
  const text = await cli(['show', '0000:00:1f.0'], root);
  assert.match(text.stdout, /iommu group:\s+13 \(not viable: 0000:00:1f\.3, 0000:00:1f\.4, 0000:00:1f\.5\)/);
});

test('thinkpad: with the pci.ids fixture under the root, names appear', async (t) => {
  const dir = path.join(root, 'usr/share/hwdata');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(PCI_IDS_FIXTURE, path.join(dir, 'pci.ids'));
  t.after(() => fs.rmSync(path.join(root, 'usr'), { recursive: true, force: true }));
  const doc = (await cli(['groups', '--json', '--group', '14'], root)).json();
  const nvme = doc.groups[0].devices[0];
  assert.equal(nvme.vendorName, 'Samsung Electronics Co Ltd');
  assert.equal(nvme.deviceName, 'NVMe SSD Controller PM9A1/PM9A3/980PRO');
  assert.equal(nvme.className, 'Non-Volatile memory controller');
  const g0 = (await cli(['groups', '--json', '--group', '0'], root)).json().groups[0].devices[0];
  assert.equal(g0.deviceName, 'Alder Lake-P Integrated Graphics Controller');
  assert.equal(g0.className, 'VGA compatible controller');
  // 8086:4621 is not in pci.ids (nor in the fixture): vendor known, device name null.
  const g1 = (await cli(['groups', '--json', '--group', '1'], root)).json().groups[0].devices[0];
  assert.equal(g1.vendorName, 'Intel Corporation');
  assert.equal(g1.deviceName, null);
});

test('thinkpad: without pci.ids ids and class are shown bare, names are null', async () => {
  assert.equal(fs.existsSync(path.join(root, 'usr')), false);
  const text = (await cli(['show', '00:06.0'], root)).stdout;
  assert.match(text, /^device:\s+0000:00:06\.0 \[8086:464d\]$/m);
  assert.match(text, /^class:\s+060400 \(bridge\)$/m);
  const d = (await cli(['show', '00:06.0', '--json'], root)).json();
  assert.deepEqual([d.vendorName, d.deviceName, d.className], [null, null, null]);
});
