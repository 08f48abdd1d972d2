import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { hostUse } from '../../src/sysfs/in-use.js';

function setup(t: { after: (f: () => void) => void }) {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, labSpec());
  const put = (p: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text);
  };
  const uses = (bdf: string) => {
    const f = new FsRoot(root);
    return hostUse(f, scanHost(f), bdf);
  };
  return { root, put, uses };
}
const codes = (u: { code: string }[]) => u.map((x) => x.code);

test('nothing in use: an idle NIC that is down, an unmounted disk', (t) => {
  const { put, uses } = setup(t);
  put('sys/class/net/eth0/operstate', 'down\n'); // through the class link into the device dir
  assert.deepEqual(uses('0000:01:00.0'), []);
  assert.deepEqual(uses('0000:00:03.0'), []);
});

test('net-up without an address is reported but is only information', (t) => {
  const { uses } = setup(t);
  assert.deepEqual(uses('0000:01:00.0'), [{ code: 'net-up', detail: 'interface eth0 is up' }]);
});

test('net-address from IPv6 (link-local ignored) and net-route from the routing table', (t) => {
  const { put, uses } = setup(t);
  put('proc/net/if_inet6', 'fe80000000000000505400fffe123456 02 40 20 80 eth0\n20010db8000000000000000000000001 02 40 00 80 eth0\n');
  assert.deepEqual(codes(uses('0000:01:00.0')), ['net-address']);
  assert.match(uses('0000:01:00.0')[0]!.detail, /2001:0db8:0000:0000:0000:0000:0000:0001/);
  put('proc/net/if_inet6', 'fe80000000000000505400fffe123456 02 40 20 80 eth0\n');
  assert.deepEqual(codes(uses('0000:01:00.0')), ['net-up'], 'link-local alone is not an address in use');
  put('proc/net/route', 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth1\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n');
  assert.deepEqual(codes(uses('0000:03:01.0')), ['net-up', 'net-route']);
  assert.deepEqual(codes(uses('0000:03:02.0')), ['net-up'], 'eth2 has no route');
});

test('block: mounted (mountinfo major:minor), partition mounted via /proc/mounts, swap, holders', (t) => {
  const { root, put, uses } = setup(t);
  put('proc/self/mountinfo', '29 1 259:0 / / rw,relatime shared:1 - ext4 /dev/nvme0n1 rw\n');
  assert.deepEqual(codes(uses('0000:00:03.0')), ['mounted']);
  // A partition below the disk, mounted by name only (no mountinfo).
  fs.rmSync(path.join(root, 'proc/self/mountinfo'));
  const disk = fs.realpathSync(path.join(root, 'sys/class/block/nvme0n1'));
  fs.mkdirSync(path.join(disk, 'nvme0n1p1/holders'), { recursive: true });
  fs.writeFileSync(path.join(disk, 'nvme0n1p1/dev'), '259:1\n');
  fs.symlinkSync(path.relative(path.join(root, 'sys/class/block'), path.join(disk, 'nvme0n1p1')), path.join(root, 'sys/class/block/nvme0n1p1'));
  put('proc/mounts', '/dev/nvme0n1p1 /boot ext4 rw 0 0\n');
  assert.deepEqual(uses('0000:00:03.0'), [{ code: 'mounted', detail: 'nvme0n1p1 is mounted on /boot' }]);
  put('proc/mounts', '');
  put('proc/swaps', 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/nvme0n1p1                          partition\t1048572\t\t0\t\t-2\n');
  assert.deepEqual(codes(uses('0000:00:03.0')), ['swap']);
  put('proc/swaps', 'Filename\tType\tSize\tUsed\tPriority\n');
  fs.mkdirSync(path.join(disk, 'holders/dm-0'), { recursive: true });
  assert.deepEqual(uses('0000:00:03.0'), [{ code: 'holders', detail: 'nvme0n1 is held by dm-0 (device-mapper, md or LVM)' }]);
});

test('boot VGA and the console framebuffer', (t) => {
  const { root, uses } = setup(t);
  assert.deepEqual(codes(uses('0000:00:04.0')), ['boot-vga']);
  const dev = fs.realpathSync(path.join(root, 'sys/bus/pci/devices/0000:00:04.0'));
  fs.mkdirSync(path.join(dev, 'graphics/fb0'), { recursive: true });
  fs.symlinkSync('../../../0000:00:04.0', path.join(dev, 'graphics/fb0/device'));
  fs.mkdirSync(path.join(root, 'sys/class/graphics'), { recursive: true });
  fs.symlinkSync(path.relative(path.join(root, 'sys/class/graphics'), path.join(dev, 'graphics/fb0')), path.join(root, 'sys/class/graphics/fb0'));
  assert.deepEqual(codes(uses('0000:00:04.0')), ['boot-vga', 'console-fb']);
});

test('vfio-open: enable > 0 on a vfio device, holders of the group and device nodes; not for host drivers', (t) => {
  const { root, put, uses } = setup(t);
  assert.deepEqual(uses('0000:00:05.0'), [], 'idle vfio device reads enable=0');
  const dev = fs.realpathSync(path.join(root, 'sys/bus/pci/devices/0000:00:05.0'));
  fs.writeFileSync(path.join(dev, 'enable'), '1\n');
  assert.deepEqual(uses('0000:00:05.0'), [{ code: 'vfio-open', detail: 'a VFIO user has the device open (enable=1)' }]);
  fs.writeFileSync(path.join(dev, 'enable'), '0\n');
  put('proc/77/comm', 'dpdk-testpmd\n');
  fs.mkdirSync(path.join(root, 'proc/77/fd'), { recursive: true });
  fs.symlinkSync('/dev/vfio/devices/vfio0', path.join(root, 'proc/77/fd/5'));
  fs.symlinkSync('/dev/null', path.join(root, 'proc/77/fd/0'));
  assert.deepEqual(uses('0000:00:05.0'), [{ code: 'vfio-open', detail: 'pid 77 (dpdk-testpmd) holds /dev/vfio/devices/vfio0' }]);
  // e1000e reads enable=1 while bound: that is the host driver's, not a VFIO user.
  assert.ok(!codes(uses('0000:01:00.0')).includes('vfio-open'));
});
