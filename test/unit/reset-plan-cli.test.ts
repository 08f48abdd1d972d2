import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, deviceDir, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { readSlots } from '../../src/sysfs/slots.js';

const SPEC: TreeSpec = {
  osrelease: '6.1.0-56-amd64',
  devices: [
    { bdf: '0000:00:00.0', id: '8086:29c0', class: '060000', group: 0, resetMethods: null },
    { bdf: '0000:00:02.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 1, resetMethods: ['pm'] },
    { bdf: '0000:00:04.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 12 },
    { bdf: '0000:05:00.0', parent: '0000:00:04.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio0', enable: 0, group: 13 },
    { bdf: '0000:00:05.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 14 },
    { bdf: '0000:06:00.0', parent: '0000:00:05.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio1', enable: 0, group: 15 },
    { bdf: '0000:06:00.1', parent: '0000:00:05.0', id: '1af4:1000', class: '020000', driver: 'virtio-pci', group: 16 },
  ],
  net: { eth1: '0000:06:00.1' },
};

function setup(t: { after: (fn: () => void) => void }, spec: TreeSpec = SPEC): string {
  const { root, cleanup } = tempRoot('vfioctl-reset-');
  t.after(cleanup);
  return buildTree(root, spec);
}

test('reset-plan --json: the issue 5 document for a device alone below its root port', async (t) => {
  const root = setup(t);
  const r = await cli(['reset-plan', '05:00.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.schemaVersion, 1);
  assert.equal(doc.plans.length, 1);
  const p = doc.plans[0];
  assert.equal(p.device, '0000:05:00.0');
  assert.equal(p.group, 13);
  assert.deepEqual(p.resetMethods, ['pm', 'bus']);
  assert.equal(p.functionReset, true);
  assert.equal(p.hotReset.scope, 'bus');
  assert.equal(typeof p.hotReset.reason, 'string');
  assert.equal(p.hotReset.bridge, '0000:00:04.0');
  assert.deepEqual(p.hotReset.affected.map(({ bdf, group, driver, bridge, inUse }: any) => ({ bdf, group, driver, bridge, inUse })),
    [{ bdf: '0000:05:00.0', group: 13, driver: 'vfio-pci', bridge: false, inUse: false }]);
  assert.deepEqual(p.hotReset.groups, [13]);
  assert.equal(p.hotReset.ready, true);
  assert.deepEqual(p.hotReset.blockers, []);
  assert.equal(doc.set, undefined, 'one device is not a set');
  assert.equal(doc.slotNumbering.reading, 'device-number');
});

test('reset-plan: root-bus device is scope none, exit 0 all the same', async (t) => {
  const root = setup(t);
  const r = await cli(['reset-plan', '0000:00:02.0', '--json'], root);
  assert.equal(r.code, 0);
  const h = r.json().plans[0].hotReset;
  assert.equal(h.scope, 'none');
  assert.equal(h.ready, false);
  assert.equal(h.blockers[0].bdf, '0000:00:02.0');
});

test('reset-plan: the host-use checks of bind mark an up interface in use and name it in the blocker', async (t) => {
  const root = setup(t);
  const r = await cli(['reset-plan', '06:00.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const h = r.json().plans[0].hotReset;
  assert.deepEqual(h.affected.map((a: any) => [a.bdf, a.inUse]), [['0000:06:00.0', false], ['0000:06:00.1', true]]);
  assert.ok(h.affected[1].inUseBy.some((s: string) => /eth1/.test(s)), JSON.stringify(h.affected[1].inUseBy));
  assert.deepEqual(h.blockers.map((b: any) => b.bdf), ['0000:06:00.1']);
  assert.match(h.blockers[0].reason, /virtio-pci.*eth1/);
  assert.match(h.change, /stop the host using 0000:06:00\.1, then bind 0000:06:00\.1 to vfio-pci too, then assign groups 15 and 16 to the same VM/);
});

test('reset-plan: several selectors are one VM set; text output says what the set can do', async (t) => {
  const root = setup(t);
  const r = await cli(['reset-plan', '05:00.0', '06:00.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const set = r.json().set;
  assert.deepEqual(set.devices, ['0000:05:00.0', '0000:06:00.0']);
  assert.deepEqual(set.groups, [13, 15]);
  assert.deepEqual(set.byItself, ['0000:05:00.0']);
  assert.deepEqual(set.needOutside, [{ device: '0000:06:00.0', groups: [16], devices: ['0000:06:00.1'] }]);

  const text = await cli(['reset-plan', '05:00.0', '06:00.0'], root);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /0000:05:00\.0 {2}group 13/);
  assert.match(text.stdout, /hot reset: +bus below 0000:00:04\.0/);
  assert.match(text.stdout, /ready: +yes/);
  assert.match(text.stdout, /0000:06:00\.0: bus reset below 0000:00:05\.0 \(2 devices\): needs group outside the set: 16 \(0000:06:00\.1\)/);
  assert.match(text.stdout, /0000:05:00\.0: .*the set can do it by itself/);
});

test('reset-plan: unknown selector exits 3, malformed exits 2; nothing on stdout, or under --json the error document', async (t) => {
  const root = setup(t);
  const unknown = await cli(['reset-plan', '0000:09:00.0'], root);
  assert.equal(unknown.code, 3);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /^vfioctl: device 0000:09:00\.0: no such PCI device/);
  const mixed = await cli(['reset-plan', '05:00.0', 'nosuchif', '--json'], root);
  assert.equal(mixed.code, 3);
  assert.equal(mixed.json().error.code, 'no-such-device');
  assert.match(mixed.stderr, /^vfioctl: device "nosuchif": /);
  const bad = await cli(['reset-plan', '5:0.0'], root);
  assert.equal(bad.code, 2);
});

const SLOTTED: TreeSpec = {
  osrelease: '6.12.38+deb13-amd64',
  devices: [
    { bdf: '0000:00:02.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio0', enable: 0, group: 2 },
    { bdf: '0000:00:03.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 3 },
    { bdf: '0000:02:00.0', parent: '0000:00:03.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio1', enable: 0, group: 4 },
    { bdf: '0000:00:04.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 5 },
    { bdf: '0000:03:00.0', parent: '0000:00:04.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio2', enable: 0, group: 6 },
  ],
  slots: {
    '1': { address: '0000:01:00', module: 'pciehp' },
    '2': { address: '0000:02:00' },
    '3': { address: '0000:03:00' },
  },
};

/** A PCIe port service child `BDF:pcieNNN` bound to a pci_express driver (kernel.md §11 (j)). */
function portService(root: string, spec: TreeSpec, bridge: string, service: string, driver: string): void {
  const dir = path.join(deviceDir(root, spec, bridge), `${bridge}:${service}`);
  const drv = path.join(root, 'sys/bus/pci_express/drivers', driver);
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(drv, { recursive: true });
  fs.symlinkSync(path.relative(dir, drv), path.join(dir, 'driver'));
}

test('slots: hotplug driver from the module link, else from the bridge\'s pciehp port service', (t) => {
  const root = setup(t, SLOTTED);
  portService(root, SLOTTED, '0000:00:03.0', 'pcie004', 'pciehp');
  portService(root, SLOTTED, '0000:00:03.0', 'pcie001', 'pcie_pme');
  portService(root, SLOTTED, '0000:00:04.0', 'pcie001', 'pcie_pme');
  const fsr = new FsRoot(root);
  const slots = readSlots(fsr, scanHost(fsr));
  assert.deepEqual(slots.map((s) => [s.name, s.bus, s.number, s.hotplugDriver, s.driverSource]), [
    ['1', 1, 0, 'pciehp', 'module'],
    ['2', 2, 0, 'pciehp', 'port-service'],
    ['3', 3, 0, null, null],
  ]);
});

test('reset-plan: pciehp slots (either way of finding the driver) reset the slot; an unknown slot driver falls back to bus', async (t) => {
  const root = setup(t, SLOTTED);
  portService(root, SLOTTED, '0000:00:03.0', 'pcie004', 'pciehp');
  const r = await cli(['reset-plan', '01:00.0', '02:00.0', '03:00.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.deepEqual(doc.plans.map((p: any) => [p.hotReset.scope, p.hotReset.slot, p.hotReset.ready]), [
    ['slot', '1', true],
    ['slot', '2', true],
    ['bus', null, true],
  ]);
  assert.equal(doc.plans[0].hotReset.bridge, '0000:00:02.0');
  assert.equal(doc.slotNumbering.kernelRelease, '6.12.38+deb13-amd64');
  assert.equal(doc.slotNumbering.reading, 'device-number');
  const text = await cli(['reset-plan', '01:00.0'], root);
  assert.match(text.stdout, /slot numbering: kernel 6\.12\.38\+deb13-amd64 \(before 7\.1\)/);
});

test('reset-plan: a vfio device held open by a VFIO user is reported in use (informational, not a blocker)', async (t) => {
  const spec: TreeSpec = { ...SPEC, devices: SPEC.devices.map((d) => (d.bdf === '0000:05:00.0' ? { ...d, enable: 1 } : d)) };
  const root = setup(t, spec);
  const h = (await cli(['reset-plan', '05:00.0', '--json'], root)).json().plans[0].hotReset;
  assert.equal(h.affected[0].inUse, true);
  assert.match(h.affected[0].inUseBy[0], /VFIO user has the device open/);
  assert.equal(h.ready, true);
});
