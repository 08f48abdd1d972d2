import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { expected, extractSnapshot, GHW_DIR, SNAPSHOTS, tarballPath, type SnapshotName } from '../fixtures/ghw/snapshots.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';

// One extraction per snapshot for this file, removed when the file's tests end.
const roots = new Map<SnapshotName, string>();
for (const name of ['ryzen', 'poweredge', 'graviton'] as const) {
  const x = extractSnapshot(name);
  test.after(x.cleanup);
  roots.set(name, x.root);
}
const rootOf = (name: SnapshotName): string => roots.get(name)!;

test('ghw tarballs are byte-identical to the upstream blobs listed in the README', () => {
  const readme = fs.readFileSync(path.join(GHW_DIR, 'README.md'), 'utf8');
  for (const name of Object.keys(SNAPSHOTS) as SnapshotName[]) {
    const sum = createHash('sha256').update(fs.readFileSync(tarballPath(name))).digest('hex');
    assert.ok(readme.includes(`\`${SNAPSHOTS[name]}.tar.gz\``) && readme.includes(sum), `${name}: sha256 ${sum} not in README`);
  }
  assert.ok(fs.existsSync(path.join(GHW_DIR, 'LICENSE')));
});

/** Compare only the fields an expectation names. */
function assertFields(got: Record<string, unknown>, want: Record<string, unknown>, label: string): void {
  for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k], v, `${label}.${k}`);
}

async function checkDevices(name: SnapshotName): Promise<void> {
  const root = rootOf(name);
  const want = expected(name);
  for (const [bdf, fields] of Object.entries(want.devices as Record<string, Record<string, unknown>>)) {
    const r = await cli(['show', bdf, '--json'], root);
    assert.equal(r.code, 0, `${bdf}: ${r.stderr}`);
    const doc = r.json();
    assert.equal(doc.schemaVersion, 1);
    assertFields(doc, fields, `${name} ${bdf}`);
    assert.equal(doc.group, null, `${bdf}: no IOMMU group in this snapshot`);
  }
  for (const [bdf, chain] of Object.entries((want.bridgeChains ?? {}) as Record<string, string[]>)) {
    assert.deepEqual((await cli(['show', bdf, '--json'], root)).json().bridges, chain, `${bdf} bridges`);
  }
  for (const [sel, bdf] of Object.entries({ ...want.interfaces, ...want.blockDevices } as Record<string, string>)) {
    const r = await cli(['show', sel, '--json'], root);
    assert.equal(r.code, 0, `${sel}: ${r.stderr}`);
    assert.equal(r.json().bdf, bdf, `selector ${sel}`);
  }
  assert.equal(scanHost(new FsRoot(root)).devices.size, want.deviceCount);
}

async function checkNoGroups(name: SnapshotName): Promise<void> {
  const root = rootOf(name);
  const json = await cli(['groups', '--json'], root);
  assert.equal(json.code, 0, json.stderr);
  const { hint, ...doc } = json.json();
  assert.deepEqual(doc, { schemaVersion: 1, iommuPresent: false, groups: [] });
  assert.match(hint, /vfioctl --root \S+ doctor/, 'points to doctor on the same tree');
  const text = await cli(['groups'], root);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^No IOMMU groups: the IOMMU is off in firmware or on the kernel command line/);
  assert.equal(text.stderr, '');
  // Asking for a device's group says why there is none.
  const dev = await cli(['groups', '--device', Object.keys(expected(name).devices)[0]!], root);
  assert.equal(dev.code, 3);
  assert.match(dev.stderr, /has no IOMMU group\nhint: enable the IOMMU/);
}

test('ryzen (older format, no groups): plain message, exit 0, empty JSON list', () => checkNoGroups('ryzen'));
test('ryzen: devices, deep bridge chain, interfaces via /sys/class/net, disks via /sys/block', () => checkDevices('ryzen'));

test('ryzen: a virtual block device (dm-0) is a clear not-found error', async () => {
  const r = await cli(['show', 'dm-0'], rootOf('ryzen'));
  assert.equal(r.code, 3);
  assert.equal(r.stderr, 'vfioctl: block device dm-0: not backed by a PCI device (virtual)\n');
});

test('poweredge (no groups): plain message, exit 0, empty JSON list', () => checkNoGroups('poweredge'));
test('poweredge: PFs, VFs, NUMA split, drivers, 82 functions', () => checkDevices('poweredge'));

test('poweredge: three root buses with the hand-counted functions each', () => {
  const host = scanHost(new FsRoot(rootOf('poweredge')));
  const count: Record<string, number> = {};
  for (const d of host.devices.values()) count[d.rootBus] = (count[d.rootBus] ?? 0) + 1;
  assert.deepEqual(count, expected('poweredge').rootBuses);
});

test('poweredge: with physfn/virtfnN links added along the inferred pairing, show reports PF and VFs', async (t) => {
  // Work on a copy so the other tests keep seeing the snapshot as captured.
  const { root, cleanup } = extractSnapshot('poweredge');
  t.after(cleanup);
  const pairs = expected('poweredge').sriovInferred as Record<string, string[] | string>;
  const dir = (bdf: string) => path.join(root, 'sys/devices/pci0000:00/0000:00:09.0', bdf);
  for (const [pf, vfs] of Object.entries(pairs)) {
    if (!Array.isArray(vfs)) continue;
    vfs.forEach((vf, i) => {
      fs.symlinkSync(`../${vf}`, path.join(dir(pf), `virtfn${i}`));
      fs.symlinkSync(`../${pf}`, path.join(dir(vf), 'physfn'));
    });
    fs.writeFileSync(path.join(dir(pf), 'sriov_totalvfs'), '7\n');
    fs.writeFileSync(path.join(dir(pf), 'sriov_numvfs'), `${vfs.length}\n`);
  }
  const pf = (await cli(['show', '05:00.1', '--json'], root)).json();
  assert.deepEqual(pf.virtfns, pairs['0000:05:00.1']);
  assert.deepEqual(pf.sriov, { totalVfs: 7, numVfs: 4, virtfns: pairs['0000:05:00.1'], physfn: null });
  const vf = (await cli(['show', '0000:05:11.4', '--json'], root)).json();
  assert.equal(vf.physfn, '0000:05:00.0');
  const text = (await cli(['show', '05:00.0'], root)).stdout;
  assert.match(text, /sr-iov vfs:\s+4\/7: 0000:05:10\.0, 0000:05:10\.4, 0000:05:11\.0, 0000:05:11\.4/);
});

test('graviton (arm64): no groups, NVMe found through /sys/block/nvme0n1', async () => {
  await checkNoGroups('graviton');
  await checkDevices('graviton');
});

test('partial trees: missing, malformed and unreadable attributes never crash groups or show', async (t) => {
  const { root, cleanup } = extractSnapshot('thinkpad');
  t.after(cleanup);
  const dev = (bdf: string) => path.join(root, 'sys/devices/pci0000:00', bdf);
  // No modalias and no vendor file: ids fall back to the files, then to 0000.
  fs.rmSync(path.join(dev('0000:00:02.0'), 'modalias'));
  fs.rmSync(path.join(dev('0000:00:02.0'), 'vendor'));
  // Garbage in class, a directory where a file should be, an empty numa_node.
  fs.rmSync(path.join(dev('0000:00:08.0'), 'modalias'));
  fs.writeFileSync(path.join(dev('0000:00:08.0'), 'class'), 'garbage\n');
  fs.rmSync(path.join(dev('0000:00:0a.0'), 'numa_node'));
  fs.mkdirSync(path.join(dev('0000:00:0a.0'), 'numa_node'));
  fs.writeFileSync(path.join(dev('0000:00:14.3'), 'numa_node'), '');
  // A device removed between listing and reading: its bus link dangles.
  fs.rmSync(dev('0000:00:04.0'), { recursive: true });
  // A stray non-address entry in bus/pci/devices.
  fs.writeFileSync(path.join(root, 'sys/bus/pci/devices/README'), 'not a device\n');

  const r = await cli(['groups', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const devices = r.json().groups.flatMap((g: any) => g.devices);
  const by = (bdf: string) => devices.find((d: any) => d.bdf === bdf);
  assert.equal(by('0000:00:02.0').vendorId, '0000');
  assert.equal(by('0000:00:02.0').deviceId, '46a6', 'device file still read');
  assert.equal(by('0000:00:02.0').subsystemVendorId, null, 'no modalias and no subsystem_vendor');
  assert.equal(by('0000:00:08.0').classCode, '000000');
  assert.equal(by('0000:00:0a.0').numaNode, null);
  assert.equal(by('0000:00:14.3').numaNode, null);
  assert.equal(devices.some((d: any) => d.bdf === 'README'), false);
  for (const sel of ['0000:00:02.0', '00:08.0', '00:0a.0', '00:04.0']) {
    const s = await cli(['show', sel, '--json'], root);
    assert.equal(s.code, 0, `${sel}: ${s.stderr}`);
  }
  assert.equal((await cli(['groups'], root)).code, 0);
});
