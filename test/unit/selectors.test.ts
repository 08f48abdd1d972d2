import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { resolveSelector, resolveSelectors } from '../../src/sysfs/selectors.js';
import { VfioctlError } from '../../src/errors.js';
import { buildTree, deviceDir, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';

const { root, cleanup } = tempRoot();
test.after(cleanup);
const spec: TreeSpec = {
  devices: [
    { bdf: '0000:00:1c.0', id: '8086:a338', class: '060400', driver: 'pcieport', group: 1 },
    { bdf: '0000:01:00.0', parent: '0000:00:1c.0', id: '144d:a808', class: '010802', driver: 'nvme', group: 2 },
    { bdf: '0000:00:1f.6', id: '8086:15bb', class: '020000', driver: 'e1000e', group: 3 },
    { bdf: '0000:02:00.0', id: '8086:1521', class: '020000', driver: 'igb', group: 4 },
    { bdf: '0000:02:00.1', id: '8086:1521', class: '020000', driver: 'igb', group: 4 },
  ],
  net: { eno1: '0000:00:1f.6', enp2s0f1: '0000:02:00.1' },
  block: { nvme0n1: '0000:01:00.0' },
};
buildTree(root, spec);
// A partition nests under its disk, as in sysfs; a bridge and a veth live under devices/virtual.
const disk = path.join(deviceDir(root, spec, '0000:01:00.0'), 'nvme/nvme0/nvme0n1');
fs.mkdirSync(path.join(disk, 'nvme0n1p2'), { recursive: true });
fs.symlinkSync('../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0/nvme/nvme0/nvme0n1/nvme0n1p2', path.join(root, 'sys/class/block/nvme0n1p2'));
fs.mkdirSync(path.join(root, 'sys/devices/virtual/net/br0'), { recursive: true });
fs.symlinkSync('../../devices/virtual/net/br0', path.join(root, 'sys/class/net/br0'));
const sysfs = new FsRoot(root);
const host = scanHost(sysfs);
const sel = (text: string, opts = {}) => resolveSelector(sysfs, host, text, opts);

function throwsCode(fn: () => unknown, code: number, what: RegExp): VfioctlError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof VfioctlError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, what);
    return err;
  }
  assert.fail('expected an error');
}

test('selectors: full and short BDF, any case', () => {
  assert.deepEqual(sel('0000:01:00.0'), ['0000:01:00.0']);
  assert.deepEqual(sel('01:00.0'), ['0000:01:00.0']);
  assert.deepEqual(sel('0000:00:1F.6'), ['0000:00:1f.6']);
});

test('selectors: interfaces via /sys/class/net', () => {
  assert.deepEqual(sel('eno1'), ['0000:00:1f.6']);
  assert.deepEqual(sel('enp2s0f1'), ['0000:02:00.1']);
});

test('selectors: a disk and a partition via /sys/class/block resolve to the NVMe controller', () => {
  assert.deepEqual(sel('nvme0n1'), ['0000:01:00.0']);
  assert.deepEqual(sel('nvme0n1p2'), ['0000:01:00.0']);
});

test('selectors: a virtual interface is a clear not-found error naming it', () => {
  const e = throwsCode(() => sel('br0'), 3, /^interface br0: not backed by a PCI device \(virtual\)$/);
  assert.equal(e.what, 'interface br0');
});

test('selectors: malformed addresses are usage errors with a did-you-mean hint', () => {
  assert.equal(throwsCode(() => sel('0000:1:00.0'), 2, /malformed PCI address "0000:1:00\.0"/).hint, 'did you mean 0000:01:00.0?');
  assert.equal(throwsCode(() => sel('1:0.6'), 2, /malformed/).hint, 'did you mean 0000:01:00.6?');
  assert.equal(throwsCode(() => sel('0:1f.3'), 2, /malformed/).hint, 'did you mean 0000:00:1f.3?');
});

test('selectors: unknown names and absent addresses are not-found errors (exit 3)', () => {
  throwsCode(() => sel('0000:09:00.0'), 3, /^device 0000:09:00\.0: no such PCI device$/);
  const e = throwsCode(() => sel('wlan7'), 3, /^device "wlan7": no PCI device, interface or block device by that name$/);
  assert.match(e.hint ?? '', /interface name/);
  throwsCode(() => sel('../../etc'), 3, /no PCI device/);
  throwsCode(() => sel(''), 2, /empty device selector/);
});

test('selectors: VENDOR:DEVICE and group:N only where allowed', () => {
  assert.deepEqual(sel('8086:1521', { ids: true }), ['0000:02:00.0', '0000:02:00.1']);
  assert.deepEqual(sel('group:4', { groups: true }), ['0000:02:00.0', '0000:02:00.1']);
  throwsCode(() => sel('8086:1521'), 3, /no PCI device/);
  throwsCode(() => sel('group:99', { groups: true }), 3, /^group 99: no such IOMMU group$/);
  throwsCode(() => sel('dead:beef', { ids: true }), 3, /no PCI function has this vendor:device id/);
  assert.deepEqual(resolveSelectors(sysfs, host, ['enp2s0f1', '02:00.0', '0000:02:00.1']), ['0000:02:00.0', '0000:02:00.1']);
});

test('CLI: malformed address exits 2 with the hint line; unknown exits 3; no stack trace', async () => {
  const bad = await cli(['show', '0000:1:00.0'], root);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr, 'vfioctl: malformed PCI address "0000:1:00.0": expected DDDD:BB:DD.F or BB:DD.F in hex\nhint: did you mean 0000:01:00.0?\n');
  const unknown = await cli(['groups', '--device', 'wlan7'], root);
  assert.equal(unknown.code, 3);
  assert.match(unknown.stderr, /^vfioctl: device "wlan7": .*\nhint: .*\n$/);
  assert.doesNotMatch(unknown.stderr, /\n\s+at /);
  const iface = await cli(['groups', '--device', 'eno1', '--json'], root);
  assert.deepEqual(iface.json().groups.map((g: any) => g.id), [3]);
});
