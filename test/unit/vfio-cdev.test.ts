import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';

/** Two vfio-bound functions below a root port: 05:00.0 with a cdev (6.6+), 05:00.1 with vfio-dev/ only (6.1-style). */
const SPEC: TreeSpec = {
  osrelease: '6.12.0-test',
  devices: [
    { bdf: '0000:00:00.0', id: '8086:29c0', class: '060000', group: 0, resetMethods: null },
    { bdf: '0000:00:04.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 12 },
    { bdf: '0000:05:00.0', parent: '0000:00:04.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio3', cdev: true, enable: 0, group: 13 },
    { bdf: '0000:05:00.1', parent: '0000:00:04.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio4', enable: 0, group: 13 },
    { bdf: '0000:00:02.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 1 },
  ],
  devVfio: [13],
};

function setup(t: { after: (fn: () => void) => void }, spec: TreeSpec = SPEC): string {
  const { root, cleanup } = tempRoot('vfioctl-cdev-');
  t.after(cleanup);
  return buildTree(root, spec);
}

test('show --json: group node and cdev of a vfio-bound device; null without a cdev or for a host driver', async (t) => {
  const root = setup(t);
  let r = await cli(['show', '05:00.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  let doc = r.json();
  assert.equal(doc.vfioGroupNode, '/dev/vfio/13');
  assert.equal(doc.vfioCdev, '/dev/vfio/devices/vfio3');
  // The peer has vfio-dev/vfio4 but no device number: no cdev (a 6.1-6.5 kernel, or CDEV off).
  assert.equal(doc.peers[0].bdf, '0000:05:00.1');
  assert.equal(doc.peers[0].vfioGroupNode, '/dev/vfio/13');
  assert.equal(doc.peers[0].vfioCdev, null);
  const text = await cli(['show', '05:00.0'], root);
  assert.match(text.stdout, /vfio nodes: +group \/dev\/vfio\/13, cdev \/dev\/vfio\/devices\/vfio3/);
  r = await cli(['show', '00:02.0', '--json'], root);
  doc = r.json();
  assert.equal(doc.vfioGroupNode, null);
  assert.equal(doc.vfioCdev, null);
  // The node itself counts too (a tree with /dev but without the dev attribute).
  fs.mkdirSync(path.join(root, 'dev/vfio/devices'), { recursive: true });
  fs.writeFileSync(path.join(root, 'dev/vfio/devices/vfio4'), '');
  r = await cli(['show', '05:00.1', '--json'], root);
  assert.equal(r.json().vfioCdev, '/dev/vfio/devices/vfio4');
});

test('groups --json: every member carries vfioGroupNode and vfioCdev; no group node until the kernel made one', async (t) => {
  const root = setup(t, { ...SPEC, devVfio: [] });
  const r = await cli(['groups', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const members = r.json().groups.flatMap((g: { devices: { bdf: string; vfioGroupNode: string | null; vfioCdev: string | null }[] }) => g.devices);
  const by = (b: string) => members.find((m: { bdf: string }) => m.bdf === b);
  assert.equal(by('0000:05:00.0').vfioGroupNode, null, 'no /dev/vfio/13 in this tree');
  assert.equal(by('0000:05:00.0').vfioCdev, '/dev/vfio/devices/vfio3');
  assert.equal(by('0000:00:04.0').vfioCdev, null);
});

function holdCdev(root: string, pid: number, node: string): void {
  fs.mkdirSync(path.join(root, `proc/${pid}/fd`), { recursive: true });
  fs.writeFileSync(path.join(root, `proc/${pid}/comm`), 'qemu-system-x86\n');
  fs.symlinkSync('/dev/null', path.join(root, `proc/${pid}/fd/0`));
  fs.symlinkSync(node, path.join(root, `proc/${pid}/fd/7`));
}

test('a device whose cdev is held open is in use: unbind refuses (exit 4) instead of hanging; reset-plan reports it', async (t) => {
  const root = setup(t);
  holdCdev(root, 4242, '/dev/vfio/devices/vfio3');
  const r = await cli(['unbind', '05:00.0', '--dry-run', '--json'], root);
  assert.equal(r.code, 4, r.stdout);
  const a = r.json().actions.find((x: { bdf: string }) => x.bdf === '0000:05:00.0');
  assert.equal(a.status, 'refused');
  assert.match(a.reason, /pid 4242 \(qemu-system-x86\) holds \/dev\/vfio\/devices\/vfio3/);
  // Without --dry-run nothing is written either.
  const real = await cli(['unbind', '05:00.0', '--json'], root);
  assert.equal(real.code, 4);
  assert.equal(fs.readFileSync(path.join(root, 'sys/bus/pci/devices/0000:05:00.0/driver_override'), 'utf8').trim(), '(null)');
  // The other function of the card is not held.
  const other = await cli(['unbind', '05:00.1', '--dry-run', '--json'], root);
  assert.equal(other.code, 0, other.stdout);
  const plan = await cli(['reset-plan', '05:00.1', '--json'], root);
  const held = plan.json().plans[0].hotReset.affected.find((x: { bdf: string }) => x.bdf === '0000:05:00.0');
  assert.equal(held.inUse, true);
  assert.deepEqual(held.inUseFindings.map((f: { code: string }) => f.code), ['vfio-open']);
});


test('snapshot keeps vfio-dev/X/dev, so a snapshot of a cdev host still shows the cdev', async (t) => {
  const root = setup(t, { ...SPEC, devVfio: [] });
  const { root: out, cleanup } = tempRoot('vfioctl-cdev-snap-');
  t.after(cleanup);
  const snap = await cli(['snapshot', path.join(out, 'snap')], root);
  assert.equal(snap.code, 0, snap.stderr);
  const r = await cli(['show', '05:00.0', '--json'], path.join(out, 'snap'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().vfioCdev, '/dev/vfio/devices/vfio3');
  assert.equal(r.json().peers[0].vfioCdev, null);
});
