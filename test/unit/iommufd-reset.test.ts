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
  // 06:00.1 shares the caller's group: the kernel refuses the caller's bind (EPERM), as the lab's cdev kernel answered.
  assert.match(h.iommufd.blockers[0].reason, /binding 0000:06:00\.0 to a second context fails \(EPERM\)/);
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
const allLabs = fs.readdirSync(FIXTURES).filter((n) => n.startsWith('lab-') && fs.existsSync(path.join(FIXTURES, n, 'vfio')));
// lab-<topology>-cdev/ were captured on the lab's 6.12 cdev kernel, the others on Debian's 6.1.
const labs = allLabs.filter((n) => !n.endsWith('-cdev'));
const cdevLabs = allLabs.filter((n) => n.endsWith('-cdev'));

test('every lab topology has a capture from the cdev kernel', () => {
  assert.deepEqual(cdevLabs.map((n) => n.replace(/-cdev$/, '')).sort(), [...labs].sort());
});

type CdevAnswer = { ok: boolean; stage?: string; errno?: string; flags?: { devIdOwned: boolean }; devices?: { bdf: string; devid: number | string }[] };

for (const lab of cdevLabs) {
  test(`${lab}: the iommufd answer on the cdev kernel's tree is what its INFO reported through the cdev path`, async () => {
    const root = path.join(FIXTURES, lab, 'vfio');
    const oracle = JSON.parse(fs.readFileSync(path.join(FIXTURES, lab, 'oracle.json'), 'utf8')) as {
      hotResetInfoCdev: Record<string, { alone: CdevAnswer; onePerGroup: { bound: string[]; answer: CdevAnswer } }>;
      vfioBound: string[];
    };
    const bdfs = Object.keys(oracle.hotResetInfoCdev);
    assert.ok(bdfs.length > 0, 'the capture asked the kernel');
    const doc = await iommufdOf(root, ...bdfs);
    const word = (d: number | string) => (typeof d === 'number' ? 'dev-id' : d);
    const sorted = <T extends { bdf: string }>(xs: T[]) => [...xs].sort((a, b) => a.bdf.localeCompare(b.bdf));
    for (const p of doc.plans) {
      const a = p.hotReset.iommufd;
      const k = oracle.hotResetInfoCdev[p.device]!;
      assert.equal(a.available, true, `${p.device}: ${a.unavailableReason}`);
      if (!k.alone.ok) {
        assert.equal(k.alone.errno, 'ENODEV', JSON.stringify(k.alone));
        assert.equal(p.hotReset.scope, 'none');
        assert.equal(a.ready, false);
        continue;
      }
      // vfioctl binds one device per group, as the capture did: same devices, same INFO (a device
      // still on its host driver is in vfioctl's list too, with a not-vfio blocker; the kernel
      // cannot bind it, so the capture could not).
      // A VF caller has a reset set of its own: vfioctl asks for it alone, and binding the other
      // VFs (as the capture did) changes nothing in INFO.
      const isVfCaller = p.hotReset.blockers.some((b: { bdf: string; code: string }) => b.bdf === p.device && b.code === 'vf-caller');
      const toBind = a.open.filter((b: string) => oracle.vfioBound.includes(b));
      if (isVfCaller) assert.deepEqual(a.open, [p.device], `${p.device}: a VF caller binds itself only`);
      else assert.deepEqual(toBind, k.onePerGroup.bound, `${p.device}: the devices to bind`);
      const answer = k.onePerGroup.answer;
      assert.deepEqual(sorted(a.info), sorted(answer.devices!.map((d) => ({ bdf: d.bdf, devId: word(d.devid) }))), `${p.device}: INFO per device`);
      assert.equal(a.ownedFlag, answer.flags!.devIdOwned, `${p.device}: DEV_ID_OWNED`);
      // Alone, the kernel owns only the caller's group: DEV_ID_OWNED exactly when nothing else must be bound.
      assert.equal(k.alone.flags!.devIdOwned, a.ownedFlag && a.open.length === 1, `${p.device}: DEV_ID_OWNED alone`);
    }
  });
}

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
