import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot, type DevSpec as DeviceSpec, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';

/**
 * Two host-wide answers that spare a lookup per function, checked against the per-function
 * lookups they replace: the vfio-dev class (which functions have a vfio-dev/ entry) and
 * /proc/devices (whether the kernel gives vfio devices cdevs at all).
 */

/** Counts the lookups the replaced paths make. */
class CountingFs extends FsRoot {
  readonly lookups: string[] = [];
  override lexists(p: string) {
    this.lookups.push(`lstat ${p}`);
    return super.lexists(p);
  }
  override exists(p: string) {
    this.lookups.push(`stat ${p}`);
    return super.exists(p);
  }
}

/** The driver core's /sys/class/vfio-dev/<name> link for a device's vfio-dev/<name>. */
function linkClass(root: string, bdf: string, name: string): void {
  const dir = fs.realpathSync(path.join(root, 'sys/bus/pci/devices', bdf));
  const cls = path.join(root, 'sys/class/vfio-dev');
  fs.mkdirSync(cls, { recursive: true });
  fs.symlinkSync(path.relative(cls, path.join(dir, 'vfio-dev', name)), path.join(cls, name));
}

const port: DeviceSpec = { bdf: '0000:00:01.0', id: '8086:347a', class: '060400', driver: 'pcieport', group: 1 };
const nic = (fn: number, group: number): DeviceSpec => ({ bdf: `0000:01:00.${fn}`, parent: port.bdf, id: '8086:10d3', class: '020000', driver: 'e1000e', group });

test('an out-of-tree variant is told apart from the vfio-dev class as from each function, without a lookup per host-driver function', (t) => {
  const spec: TreeSpec = {
    devices: [port, nic(0, 2), nic(1, 3), nic(2, 4),
      { bdf: '0000:01:00.3', parent: port.bdf, id: '8086:10d3', class: '020000', driver: 'acme_vfio_pci', vfioDev: 'vfio0', group: 5 }],
  };
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, spec);
  const perFunction = scanHost(new FsRoot(root));
  assert.equal(perFunction.devices.get('0000:01:00.3')!.vfioFamily, true);
  assert.equal(perFunction.devices.get('0000:01:00.0')!.vfioFamily, false);

  linkClass(root, '0000:01:00.3', 'vfio0');
  const counting = new CountingFs(root);
  const byClass = scanHost(counting);
  assert.deepEqual(byClass, perFunction);
  assert.deepEqual(counting.lookups.filter((l) => l.endsWith('/vfio-dev')), [], 'four functions to check, one class entry: the class answers');

  // An empty class directory answers too: no function has the entry, the variant is not one.
  fs.unlinkSync(path.join(root, 'sys/class/vfio-dev/vfio0'));
  const empty = scanHost(new FsRoot(root));
  assert.equal(empty.devices.get('0000:01:00.3')!.vfioFamily, false);
});

test('with fewer functions to check than class entries, each function is looked at; without the class directory in a tree, too', (t) => {
  const vfs: DeviceSpec[] = [0, 1, 2, 3].map((fn) => ({ bdf: `0000:02:00.${fn}`, parent: port.bdf, id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: `vfio${fn + 1}`, group: 10 + fn }));
  const spec: TreeSpec = { devices: [port, nic(0, 2), ...vfs] };
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, spec);
  for (const v of vfs) linkClass(root, v.bdf, v.vfioDev!);
  const counting = new CountingFs(root);
  scanHost(counting);
  assert.deepEqual(counting.lookups.filter((l) => l.endsWith('/vfio-dev')).length, 1, 'one e1000e function against four class entries');

  fs.rmSync(path.join(root, 'sys/class/vfio-dev'), { recursive: true });
  const noClass = new CountingFs(root);
  scanHost(noClass);
  assert.equal(noClass.lookups.filter((l) => l.endsWith('/vfio-dev')).length, 1);
});

/** Eight vfio-bound functions (past the reader's LIST_AFTER), the even ones with a device cdev. */
function eightBound(cdevs: boolean): TreeSpec {
  return {
    devices: [port, ...[0, 1, 2, 3, 4, 5, 6, 7].map((fn): DeviceSpec => ({ bdf: `0000:01:00.${fn}`, parent: port.bdf, id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: `vfio${fn}`, cdev: cdevs && fn % 2 === 0, group: 20 + fn }))],
  };
}

const PROC_DEVICES_CDEV = 'Character devices:\n  1 mem\n  4 /dev/vc/0\n510 vfio\n511 vfio-dev\n\nBlock devices:\n  8 sd\n';
const PROC_DEVICES_NO_CDEV = 'Character devices:\n  1 mem\n  4 /dev/vc/0\n510 vfio\n\nBlock devices:\n  8 sd\n259 blkext\n';

async function cdevsOf(root: string): Promise<{ cdevs: (string | null)[]; devLookups: number }> {
  let counting: CountingFs | undefined;
  const r = await cli(['groups', '--json'], root, { makeFs: (rt) => (counting = new CountingFs(rt)) });
  assert.equal(r.code, 0, r.stderr);
  const members = r.json().groups.flatMap((g: { devices: { bdf: string; vfioCdev: string | null }[] }) => g.devices).filter((d: { bdf: string }) => d.bdf.startsWith('0000:01:'));
  return { cdevs: members.map((d: { vfioCdev: string | null }) => d.vfioCdev), devLookups: counting!.lookups.filter((l) => /\/vfio-dev\/vfio\d+\/dev$/.test(l)).length };
}

test('groups --json: /proc/devices without a vfio-dev major spares every dev lookup; with one, each device is asked as before', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, eightBound(true));
  const asked = await cdevsOf(root);
  assert.deepEqual(asked.cdevs, ['/dev/vfio/devices/vfio0', null, '/dev/vfio/devices/vfio2', null, '/dev/vfio/devices/vfio4', null, '/dev/vfio/devices/vfio6', null]);
  fs.writeFileSync(path.join(root, 'proc/devices'), PROC_DEVICES_CDEV);
  assert.deepEqual(await cdevsOf(root), asked, 'a kernel with device cdevs: the same answers, the same lookups');

  const { root: old, cleanup: c2 } = tempRoot();
  t.after(c2);
  buildTree(old, eightBound(false));
  const before = await cdevsOf(old);
  assert.deepEqual(before.cdevs, [null, null, null, null, null, null, null, null]);
  assert.ok(before.devLookups > 4, `without /proc/devices each device is asked (${before.devLookups})`);
  fs.writeFileSync(path.join(old, 'proc/devices'), PROC_DEVICES_NO_CDEV);
  const after = await cdevsOf(old);
  assert.deepEqual(after.cdevs, before.cdevs);
  // The first LIST_AFTER devices are asked one by one, before the reader lists anything.
  assert.ok(after.devLookups <= 4, `${after.devLookups} dev lookups on a kernel without device cdevs`);
});
