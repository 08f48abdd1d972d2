import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';

/** Counts the file operations a scan makes per path, to hold the scan to its budget. */
class CountingFs extends FsRoot {
  readonly ops: { op: string; path: string }[] = [];
  override read(p: string) {
    this.ops.push({ op: 'read', path: p });
    return super.read(p);
  }
  override readLink(p: string) {
    this.ops.push({ op: 'readlink', path: p });
    return super.readLink(p);
  }
  override lexists(p: string) {
    this.ops.push({ op: 'lstat', path: p });
    return super.lexists(p);
  }
  override list(p: string) {
    this.ops.push({ op: 'list', path: p });
    return super.list(p);
  }
  /** Operations on one function's files, by the name after its directory. */
  of(bdf: string): string[] {
    return this.ops.filter((o) => o.path.includes(`/${bdf}/`) || o.path.endsWith(`/${bdf}`)).map((o) => `${o.op} ${o.path.slice(o.path.lastIndexOf(bdf) + bdf.length + 1) || '.'}`);
  }
}

const PF = '0000:02:00.0';
const SPEC: TreeSpec = {
  devices: [
    { bdf: '0000:00:01.0', id: '8086:347a', class: '060400', driver: 'pcieport', group: 1 },
    { bdf: PF, parent: '0000:00:01.0', id: '8086:1572', class: '020000', driver: 'i40e', group: 2, sriov: { total: 32, num: 3 } },
    { bdf: '0000:02:02.0', parent: '0000:00:01.0', id: '8086:154c', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio0', group: 3, physfn: PF },
    { bdf: '0000:02:02.1', parent: '0000:00:01.0', id: '8086:154c', class: '020000', driver: 'iavf', group: 4, physfn: PF },
    { bdf: '0000:02:02.2', parent: '0000:00:01.0', id: '8086:154c', class: '020000', group: 5, physfn: PF },
    { bdf: '0000:00:1f.0', id: '8086:2918', class: '060100', driver: 'lpc_ich', group: 6 },
  ],
};

test('scan cost: a VF takes 4 attribute reads and its group link (its directory is beside its PF\'s); a host-driver VF one probe more; the PF its VF links', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, SPEC);
  const fsr = new CountingFs(root);
  const host = scanHost(fsr);

  const base = ['readlink .', 'read modalias', 'readlink iommu_group', 'read reset_method', 'read numa_node', 'read driver_override'];
  const vf = base.filter((o) => o !== 'readlink .');
  // Bound to vfio-pci: known by name, no vfio-dev lookup; driver from the driver's listing.
  assert.deepEqual(fsr.of('0000:02:02.0').sort(), [...vf].sort());
  // Bound to a host driver: vfio-dev/ is looked at (an out-of-tree variant would have it).
  assert.deepEqual(fsr.of('0000:02:02.1').sort(), [...vf, 'lstat vfio-dev'].sort());
  assert.deepEqual(fsr.of('0000:02:02.2').sort(), [...vf].sort());
  // The PF: SR-IOV probe, counts, and one link per enabled VF (this tree has no
  // sriov_offset/sriov_stride, as before Linux 4.17: the reads miss and the links are read).
  assert.deepEqual(fsr.of(PF).sort(), [...base, 'lstat vfio-dev', 'lstat sriov_totalvfs', 'read sriov_totalvfs', 'read sriov_numvfs',
    'read sriov_offset', 'read sriov_stride', 'readlink virtfn0', 'readlink virtfn1', 'readlink virtfn2'].sort());
  // No function reads its own `driver` link when the drivers list theirs.
  assert.equal(fsr.ops.filter((o) => o.path.endsWith('/driver')).length, 0);

  // And what it learned is what the links say.
  const pf = host.devices.get(PF)!;
  assert.deepEqual(pf.virtfns, ['0000:02:02.0', '0000:02:02.1', '0000:02:02.2']);
  assert.equal(pf.sriovNumVfs, 3);
  assert.equal(pf.sriovTotalVfs, 32);
  for (const vf of pf.virtfns) {
    const d = host.devices.get(vf)!;
    assert.equal(d.physfn, PF);
    assert.equal(d.sriovTotalVfs, null);
  }
  assert.equal(host.devices.get('0000:02:02.0')!.vfioFamily, true);
  assert.equal(host.devices.get('0000:02:02.1')!.driver, 'iavf');
  assert.equal(host.devices.get('0000:02:02.1')!.vfioFamily, false);
  assert.equal(host.devices.get('0000:02:02.2')!.driver, null);
});

test('scan: a tree whose drivers do not list their devices (ghw captures) reads each function\'s driver link', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, SPEC);
  const drivers = path.join(root, 'sys/bus/pci/drivers');
  for (const drv of fs.readdirSync(drivers)) {
    for (const e of fs.readdirSync(path.join(drivers, drv))) if (e.startsWith('0000:')) fs.rmSync(path.join(drivers, drv, e));
  }
  const host = scanHost(new FsRoot(root));
  assert.deepEqual([...host.devices.values()].map((d) => d.driver), ['pcieport', 'lpc_ich', 'i40e', 'vfio-pci', 'iavf', null]);
});

test('scan: a virtfn link left to a removed VF is not reported as a VF', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, SPEC);
  // `echo 1 > 0000:02:02.2/remove`: the function is gone from the bus, the PF's link dangles.
  fs.rmSync(path.join(root, 'sys/bus/pci/devices/0000:02:02.2'));
  fs.rmSync(fs.realpathSync(path.join(root, 'sys/bus/pci/devices', PF, 'virtfn2')), { recursive: true });
  const host = scanHost(new FsRoot(root));
  assert.deepEqual(host.devices.get(PF)!.virtfns, ['0000:02:02.0', '0000:02:02.1']);
  assert.equal(host.devices.has('0000:02:02.2'), false);
});

test('scan: functions come out in address order even where domain widths make string order differ (VMD domains)', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, {
    devices: [
      { bdf: '0000:00:1f.0', id: '8086:2918', class: '060100', group: 1 },
      { bdf: '2000:00:00.0', id: '8086:09a2', class: '060000', group: 2 },
      { bdf: '10000:00:02.0', id: '8086:a0bc', class: '010802', group: 3 },
    ],
  });
  // As strings, "10000:…" sorts before "2000:…"; as addresses domain 0x2000 comes first.
  assert.deepEqual([...scanHost(new FsRoot(root)).devices.keys()], ['0000:00:1f.0', '2000:00:00.0', '10000:00:02.0']);
});

/** SPEC with the PF's sriov_offset and sriov_stride: its VFs at devfn 0x10 + i. */
function withOffsets(offset: number, stride: number): TreeSpec {
  return { devices: SPEC.devices.map((d) => (d.bdf === PF ? { ...d, sriov: { ...d.sriov!, offset, stride } } : d)) };
}

test('scan cost: with sriov_offset and sriov_stride the PF computes its VFs (two reads, no links) and finds what the links say', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, withOffsets(16, 1));
  const fsr = new CountingFs(root);
  const host = scanHost(fsr);
  const base = ['readlink .', 'read modalias', 'readlink iommu_group', 'read reset_method', 'read numa_node', 'read driver_override'];
  assert.deepEqual(fsr.of(PF).sort(), [...base, 'lstat vfio-dev', 'lstat sriov_totalvfs', 'read sriov_totalvfs', 'read sriov_numvfs', 'read sriov_offset', 'read sriov_stride'].sort());
  assert.deepEqual(host.devices.get(PF)!.virtfns, ['0000:02:02.0', '0000:02:02.1', '0000:02:02.2']);
  // The same host as the links give.
  const { root: linksOnly, cleanup: c2 } = tempRoot();
  t.after(c2);
  buildTree(linksOnly, SPEC);
  assert.deepEqual(host, scanHost(new FsRoot(linksOnly)));
});

test('scan: offsets that name a function not listed (a VF removed, a wrong stride, past bus ff) fall back to the virtfn links', (t) => {
  for (const [offset, stride, why] of [[16, 2, 'stride'], [17, 1, 'offset'], [0xff00, 1, 'past bus ff'], [16, 0, 'stride 0']] as const) {
    const { root, cleanup } = tempRoot();
    t.after(cleanup);
    buildTree(root, withOffsets(offset, stride));
    const fsr = new CountingFs(root);
    const host = scanHost(fsr);
    assert.deepEqual(host.devices.get(PF)!.virtfns, ['0000:02:02.0', '0000:02:02.1', '0000:02:02.2'], why);
    assert.deepEqual(fsr.of(PF).filter((o) => o.startsWith('readlink virtfn')), ['readlink virtfn0', 'readlink virtfn1', 'readlink virtfn2'], why);
  }
  // A VF removed through its `remove` attribute: its link and its listing entry are gone.
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, withOffsets(16, 1));
  fs.unlinkSync(path.join(root, 'sys/bus/pci/devices/0000:02:02.1'));
  const host = scanHost(new FsRoot(root));
  assert.deepEqual(host.devices.get(PF)!.virtfns, ['0000:02:02.0', '0000:02:02.2']);
});

test('scan: a VF whose directory is not beside its PF\'s (not a layout the kernel makes) is read where its link says', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, SPEC);
  // Move 0000:02:02.1 below the PF and repoint its links there.
  const devices = path.join(root, 'sys/bus/pci/devices');
  const beside = fs.realpathSync(path.join(devices, '0000:02:02.1'));
  const below = path.join(fs.realpathSync(path.join(devices, PF)), '0000:02:02.1');
  fs.renameSync(beside, below);
  for (const link of [path.join(devices, '0000:02:02.1'), path.join(devices, PF, 'virtfn1')]) {
    fs.unlinkSync(link);
    fs.symlinkSync(path.relative(path.dirname(link), below), link);
  }
  const fsr = new CountingFs(root);
  const moved = scanHost(fsr).devices.get('0000:02:02.1')!;
  assert.ok(fsr.of('0000:02:02.1').includes('readlink .'), 'its link was read');
  assert.deepEqual([moved.vendorId, moved.deviceId, moved.classCode], ['8086', '154c', '020000']);
  assert.equal(moved.driver, 'iavf');
  assert.equal(moved.iommuGroup, 4);
  assert.equal(moved.parent, PF, 'its parent is where it is');
  assert.equal(moved.physfn, PF);
});
