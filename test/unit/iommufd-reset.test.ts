import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { readSlots } from '../../src/sysfs/slots.js';
import { planResets } from '../../src/plan/reset-plan.js';
import type { IommufdFacts } from '../../src/plan/iommufd-reset.js';

/**
 * A three-function card below a root port (bus reset): 06:00.0 and 06:00.1 share group 15,
 * 06:00.2 is alone in group 16. All on vfio-pci with cdevs, on a 6.12 kernel.
 */
const SPEC: TreeSpec = {
  osrelease: '6.12.0-test',
  devices: [
    { bdf: '0000:00:00.0', id: '8086:29c0', class: '060000', group: 0, resetMethods: null },
    { bdf: '0000:00:05.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 14 },
    { bdf: '0000:06:00.0', parent: '0000:00:05.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio0', cdev: true, enable: 0, group: 15 },
    { bdf: '0000:06:00.1', parent: '0000:00:05.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio1', cdev: true, enable: 0, group: 15 },
    { bdf: '0000:06:00.2', parent: '0000:00:05.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio2', cdev: true, enable: 0, group: 16 },
    { bdf: '0000:00:02.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio3', cdev: true, enable: 0, group: 1 },
  ],
  devVfio: [1, 15, 16],
};

function setup(t: { after: (fn: () => void) => void }, spec: TreeSpec = SPEC): string {
  const { root, cleanup } = tempRoot('vfioctl-iommufd-');
  t.after(cleanup);
  return buildTree(root, spec);
}

function hold(root: string, pid: number, node: string, fd = 5): void {
  fs.mkdirSync(path.join(root, `proc/${pid}/fd`), { recursive: true });
  fs.writeFileSync(path.join(root, `proc/${pid}/comm`), `vmm${pid}\n`);
  fs.symlinkSync(node, path.join(root, `proc/${pid}/fd/${fd}`));
}

async function iommufdOf(root: string, ...sel: string[]) {
  const r = await cli(['reset-plan', ...sel, '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  return r.json();
}

test('iommufd: one bound device per group; the group-mate is owned (devid 0); INFO sets DEV_ID_OWNED', async (t) => {
  const root = setup(t);
  const doc = await iommufdOf(root, '06:00.1');
  const h = doc.plans[0].hotReset;
  assert.equal(h.ready, true, 'legacy: groups 15 and 16 held');
  assert.deepEqual(h.groups, [15, 16]);
  assert.equal(h.iommufd.available, true, h.iommufd.unavailableReason);
  assert.deepEqual(h.iommufd.open, ['0000:06:00.1', '0000:06:00.2'], 'the caller covers group 15; 06:00.2 stands for group 16');
  assert.deepEqual(h.iommufd.info, [
    { bdf: '0000:06:00.0', devId: 'owned' },
    { bdf: '0000:06:00.1', devId: 'dev-id' },
    { bdf: '0000:06:00.2', devId: 'dev-id' },
  ]);
  assert.equal(h.iommufd.ready, true);
  assert.equal(h.iommufd.ownedFlag, true);
  assert.deepEqual(h.iommufd.blockers, []);
});

test('iommufd: an affected device opened by another process (another iommufd context) or through its group breaks it', async (t) => {
  const root = setup(t);
  hold(root, 50, '/dev/vfio/devices/vfio0'); // the VMM holds the caller's cdev
  hold(root, 51, '/dev/vfio/devices/vfio1', 6); // same VMM would be fine; this is another process
  let h = (await iommufdOf(root, '06:00.0')).plans[0].hotReset;
  assert.equal(h.iommufd.ready, false);
  assert.equal(h.iommufd.ownedFlag, false);
  assert.deepEqual(h.iommufd.blockers.map((b: { bdf: string; code: string }) => [b.bdf, b.code]), [['0000:06:00.1', 'other-iommufd']]);
  assert.deepEqual(h.iommufd.info.map((i: { devId: string }) => i.devId), ['not-owned', 'not-owned', 'dev-id']);
  fs.rmSync(path.join(root, 'proc/51'), { recursive: true });
  h = (await iommufdOf(root, '06:00.0')).plans[0].hotReset;
  assert.equal(h.iommufd.ready, true, 'only the VMM holds a cdev');
  hold(root, 52, '/dev/vfio/16');
  h = (await iommufdOf(root, '06:00.0')).plans[0].hotReset;
  assert.deepEqual(h.iommufd.blockers.map((b: { bdf: string; code: string }) => [b.bdf, b.code]), [['0000:06:00.2', 'group-opened']]);
  assert.equal(h.iommufd.ready, false);
});

test('iommufd: a device on a host driver, a root-bus caller, and the set analysis', async (t) => {
  const spec = { ...SPEC, devices: SPEC.devices.map((d) => (d.bdf === '0000:06:00.2' ? { bdf: d.bdf, parent: d.parent, id: d.id, class: d.class, driver: 'e1000e', group: 16 } : d)) };
  const root = setup(t, spec);
  const doc = await iommufdOf(root, '06:00.0', '06:00.1', '00:02.0');
  const planOf = (b: string) => doc.plans.find((p: { device: string }) => p.device === b).hotReset;
  const h = planOf('0000:06:00.0');
  assert.deepEqual(h.iommufd.blockers.map((b: { bdf: string; code: string }) => [b.bdf, b.code]), [['0000:06:00.2', 'not-vfio']]);
  assert.deepEqual(h.iommufd.open, ['0000:06:00.0', '0000:06:00.2'], 'the e1000e function must go to vfio-pci and be bound too');
  assert.deepEqual(h.iommufd.info.map((i: { devId: string }) => i.devId), ['dev-id', 'owned', 'not-owned']);
  assert.equal(h.iommufd.ownedFlag, false);
  const root2 = planOf('0000:00:02.0');
  assert.equal(root2.scope, 'none');
  assert.deepEqual(root2.iommufd.blockers.map((b: { code: string }) => b.code), ['no-hot-reset']);
  assert.deepEqual(root2.iommufd.info, []);
  const bus = doc.set.resets.find((r: { scope: string }) => r.scope === 'bus');
  assert.deepEqual(bus.callers, ['0000:06:00.0', '0000:06:00.1']);
  assert.equal(bus.iommufd.ready, false);
  assert.deepEqual(bus.iommufd.outsideDevices, ['0000:06:00.2']);
});

test('iommufd: the set binds its own member of a shared group', async (t) => {
  const root = setup(t);
  const doc = await iommufdOf(root, '06:00.0', '06:00.2');
  const bus = doc.set.resets[0];
  assert.deepEqual(bus.iommufd.open, ['0000:06:00.0', '0000:06:00.2']);
  assert.deepEqual(bus.iommufd.outsideDevices, []);
  assert.equal(bus.iommufd.ready, true);
  const only = await iommufdOf(root, '06:00.0', '00:02.0');
  const r = only.set.resets.find((x: { scope: string }) => x.scope === 'bus');
  assert.deepEqual(r.iommufd.outsideDevices, ['0000:06:00.2'], 'group 16 is not the set\'s: the VM would have to bind 06:00.2 too');
});

test('iommufd answer unavailable: a 6.1 kernel, vfio-dev/ without a cdev, no vfio-dev/ at all', async (t) => {
  let root = setup(t, { ...SPEC, osrelease: '6.1.0-56-amd64' });
  let h = (await iommufdOf(root, '06:00.0')).plans[0].hotReset;
  assert.equal(h.iommufd.available, false);
  assert.match(h.iommufd.unavailableReason, /older than 6\.6/);
  assert.deepEqual([h.iommufd.open, h.iommufd.ready, h.iommufd.ownedFlag], [[], false, false]);
  root = setup(t, { ...SPEC, devices: SPEC.devices.map((d) => ({ ...d, cdev: false })) });
  h = (await iommufdOf(root, '06:00.0')).plans[0].hotReset;
  assert.equal(h.iommufd.available, false);
  assert.match(h.iommufd.unavailableReason, /CONFIG_VFIO_DEVICE_CDEV/);
  root = setup(t, { ...SPEC, osrelease: undefined, devices: SPEC.devices.map((d) => ({ ...d, vfioDev: undefined })) });
  h = (await iommufdOf(root, '06:00.0')).plans[0].hotReset;
  assert.equal(h.iommufd.available, false);
  assert.match(h.iommufd.unavailableReason, /no vfio-dev/);
  // The text output says so too.
  const r = await cli(['reset-plan', '06:00.0'], root);
  assert.match(r.stdout, /iommufd: +unavailable/);
});

const FIXTURES = path.resolve(import.meta.dirname, '../../../test/fixtures');
const labs = fs.readdirSync(FIXTURES).filter((n) => n.startsWith('lab-') && fs.existsSync(path.join(FIXTURES, n, 'vfio')));

for (const lab of labs) {
  test(`${lab}: the 6.1 capture gives no iommufd answer; with cdevs it agrees with the kernel-checked group answer`, async () => {
    const root = path.join(FIXTURES, lab, 'vfio');
    const oracle = JSON.parse(fs.readFileSync(path.join(FIXTURES, lab, 'oracle.json'), 'utf8')) as { hotResetInfo?: Record<string, unknown> };
    const bdfs = Object.keys(oracle.hotResetInfo ?? {});
    assert.ok(bdfs.length > 0);
    const doc = await iommufdOf(root, ...bdfs);
    for (const p of doc.plans) {
      assert.equal(p.hotReset.iommufd.available, false, p.device);
      assert.match(p.hotReset.iommufd.unavailableReason, /6\.1\.0-56-amd64 is older than 6\.6/);
    }
    // The same host as if on 6.12 with cdevs and nobody holding anything.
    const fsr = new FsRoot(root);
    const host = scanHost(fsr);
    const facts: IommufdFacts = { kernelRelease: '6.12.0', cdevOf: () => 'cdev', holders: () => [] };
    const { plans } = planResets({ host, slots: readSlots(fsr, host), inUse: () => false, iommufd: facts }, bdfs);
    for (const p of plans) {
      const h = p.hotReset;
      const a = h.iommufd;
      const legacyReady = h.blockers.every((b) => b.code === 'no-group');
      assert.equal(a.ready, legacyReady, `${p.device}: iommufd ready = group-mode ready`);
      assert.equal(a.ownedFlag, a.ready, `${p.device}: DEV_ID_OWNED exactly when ready here`);
      if (a.ready) {
        const openGroups = a.open.map((b) => host.devices.get(b)!.iommuGroup);
        assert.deepEqual([...openGroups].sort((x, y) => x! - y!), h.groups, `${p.device}: one bound device per group the legacy path holds`);
        assert.equal(a.open[0], p.device);
        assert.equal(a.info.filter((i) => i.devId === 'dev-id').length, a.open.length);
      }
    }
  });
}
