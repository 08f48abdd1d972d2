import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bindEvents, driversBound, logBetween, message, parseDrivers, parseJournal, parseShow, unitOutput } from '../e2e/boot/evidence.js';
import { KERNEL_APPEND, bootArgs } from '../e2e/boot/qemu.js';
import { hotplug, readmeFleet, stepLib, stepScript } from '../e2e/boot/steps.js';
import { REPO } from '../helpers/cli.js';
import { BRIDGED, DEVICES, NIC, desiredState, namespaceImage, topologyArgs } from '../e2e/boot/topology.js';
import { parseDesiredState } from '../../src/provision/desired-state.js';

/** The boot lab's pure parts: what it reads from a guest, and what it hands QEMU and the guest. */

test('bindEvents reads 6.1\'s pr_debug form and the newer dev_dbg form, and nothing else', () => {
  const dmesg = [
    "[    3.205453] driver: 'pcie_pme': driver_bound: bound to device '0000:00:02.0:pcie001'",
    "[    7.100000] driver: 'e1000e': driver_bound: bound to device '0000:01:00.0'",
    "[    7.000000] bus: 'pci': really_probe: probing driver e1000e with device 0000:01:00.0",
    "[   12.500000] vfio-pci 0000:02:00.0: driver: 'vfio-pci': driver_bound: bound to device",
    "[    0.932586] driver: 'reg-dummy': driver_bound: bound to device 'reg-dummy'",
    "[    3.300000] pcie_pme 0000:00:03.0:pcie001: driver: 'pcie_pme': driver_bound: bound to device",
    "[   40.000000] bootlab kernel: driver: 'vfio-pci': driver_bound: bound to device '0000:01:00.0'",
  ].join('\n');
  assert.deepEqual(bindEvents(dmesg), [
    { driver: 'e1000e', bdf: '0000:01:00.0', at: 7.1 },
    { driver: 'vfio-pci', bdf: '0000:02:00.0', at: 12.5 },
    { driver: 'vfio-pci', bdf: '0000:01:00.0', at: 40 },
  ]);
  assert.deepEqual(driversBound(dmesg, '0000:01:00.0'), ['e1000e', 'vfio-pci']);
  assert.deepEqual(driversBound(dmesg, '0000:04:01.0'), []);
});

test('logBetween cuts the log between markers, and says which marker is missing', () => {
  const log = 'a\nbootlab: hot-add 1 begin\nb\nc\nbootlab: hot-add 1 end\nd\nbootlab: hot-add 2 begin\ne';
  assert.equal(logBetween(log, 'bootlab: hot-add 1 begin', 'bootlab: hot-add 1 end'), 'b\nc');
  assert.throws(() => logBetween(log, 'bootlab: hot-add 2 begin', 'bootlab: hot-add 2 end'), /hot-add 2 end/);
  assert.throws(() => logBetween(log, 'bootlab: hot-add 3 begin', 'x'), /hot-add 3 begin/);
});

test('parseDrivers reads the guest\'s driver lines and refuses anything else', () => {
  const m = parseDrivers('0000:01:00.0 present vfio-pci vfio-pci\n0000:02:00.0 present nvme -\n0000:04:01.0 absent\n');
  assert.deepEqual(m.get('0000:01:00.0'), { present: true, driver: 'vfio-pci', override: 'vfio-pci' });
  assert.deepEqual(m.get('0000:02:00.0'), { present: true, driver: 'nvme', override: null });
  assert.deepEqual(m.get('0000:04:01.0'), { present: false, driver: null, override: null });
  assert.throws(() => parseDrivers('0000:01:00.0 present\n'), /cannot read line/);
});

test('parseShow keeps values with "=" in them', () => {
  assert.deepEqual(parseShow('Result=success\nExecStart={ path=/x ; argv[]=a=b }\n\n'), { Result: 'success', ExecStart: '{ path=/x ; argv[]=a=b }' });
});

test('journal entries: a unit\'s own lines only, byte-array messages decoded', () => {
  const entries = parseJournal([
    '-- No entries --',
    JSON.stringify({ _SYSTEMD_UNIT: 'vfioctl-hotplug@0000:01:00.0.service', SYSLOG_IDENTIFIER: 'vfioctl', MESSAGE: 'bound' }),
    JSON.stringify({ _SYSTEMD_UNIT: 'init.scope', UNIT: 'vfioctl-hotplug@0000:01:00.0.service', SYSLOG_IDENTIFIER: 'systemd', MESSAGE: 'Starting' }),
    JSON.stringify({ _SYSTEMD_UNIT: 'vfioctl.service', SYSLOG_IDENTIFIER: 'env', MESSAGE: [104, 105] }),
  ].join('\n'));
  assert.equal(entries.length, 3);
  assert.deepEqual(unitOutput(entries, 'vfioctl-hotplug@').map(message), ['bound']);
  assert.deepEqual(unitOutput(entries, 'vfioctl.service').map((e) => [e.SYSLOG_IDENTIFIER, message(e)]), [['env', 'hi']]);
});

test('bootArgs: the lab\'s VT-d, the overlay disk, three 9p shares (in and project read-only), the topology', () => {
  const args = bootArgs({ kernel: '/k', initrd: '/i', disk: '/d.qcow2', inDir: '/in', outDir: '/out', projDir: '/proj', devices: topologyArgs('/ns.raw'), smp: 1 });
  assert.deepEqual(args.slice(args.indexOf('-kernel'), args.indexOf('-kernel') + 6), ['-kernel', '/k', '-initrd', '/i', '-append', KERNEL_APPEND]);
  assert.ok(args.includes('intel-iommu,intremap=on,caching-mode=on'));
  assert.ok(args.includes('file=/d.qcow2,format=qcow2,if=none,id=disk0,cache=unsafe'));
  const fsdevs = args.filter((_, i) => args[i - 1] === '-fsdev');
  assert.deepEqual(fsdevs, [
    'local,id=labin,path=/in,security_model=none,readonly=on',
    'local,id=labout,path=/out,security_model=none',
    'local,id=labproj,path=/proj,security_model=none,readonly=on',
  ]);
  assert.match(KERNEL_APPEND, /dyndbg="file drivers\/base\/dd\.c \+p"/);
  assert.match(KERNEL_APPEND, /\blab\.step=1\b/);
});

test('topology: a device left out is gone from QEMU\'s list, the others stay', () => {
  const all = topologyArgs('/ns.raw').join(' ');
  const without = topologyArgs('/ns.raw', [BRIDGED]).join(' ');
  assert.match(all, /-device e1000,bus=pb1/);
  assert.doesNotMatch(without, /-device e1000,bus=pb1/);
  assert.match(without, /-device e1000e,bus=rp1/);
  assert.match(without, /-device pcie-pci-bridge,id=pb1/);
});

test('the desired state the lab persists is one vfioctl accepts, naming every device', () => {
  const s = parseDesiredState(desiredState(), 'desired.json');
  assert.deepEqual(s.devices.map((d) => [d.match, d.driver]), DEVICES.map((d) => [d.match, 'vfio-pci']));
});

test('step scripts: valid bash, fixed addresses only, hotplug count bounded', () => {
  assert.throws(() => hotplug(0), /times/);
  assert.throws(() => hotplug(1.5), /times/);
  assert.throws(() => stepLib([{ ...NIC, bdf: '0000:01:00.0; reboot' }]), /not a PCI address/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootlab-'));
  try {
    for (const [name, text] of [['hotplug', stepScript(hotplug(5))], ['lib', stepScript('')]] as const) {
      const file = path.join(dir, `${name}.sh`);
      fs.writeFileSync(file, text);
      const r = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('drivers(): the guest\'s recorder reads a device tree as the lab expects', () => {
  // Run the real `drivers` function against a fake /sys by rewriting its root only.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootlab-sys-'));
  try {
    const devs = path.join(dir, 'sys/bus/pci/devices');
    fs.mkdirSync(path.join(dir, 'sys/bus/pci/drivers/vfio-pci'), { recursive: true });
    fs.mkdirSync(path.join(devs, NIC.bdf), { recursive: true });
    fs.symlinkSync('../../drivers/vfio-pci', path.join(devs, NIC.bdf, 'driver'));
    fs.writeFileSync(path.join(devs, NIC.bdf, 'driver_override'), 'vfio-pci\n');
    fs.mkdirSync(path.join(devs, '0000:02:00.0'));
    fs.writeFileSync(path.join(devs, '0000:02:00.0', 'driver_override'), '(null)\n');
    const lib = stepLib().replace(/\/sys\/bus\/pci\/devices/g, `${devs}`);
    const out = path.join(dir, 'drivers.txt');
    const r = spawnSync('bash', ['-c', `${lib}\ndrivers "$1"`, 'lab', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const m = parseDrivers(fs.readFileSync(out, 'utf8'));
    assert.deepEqual(m.get(NIC.bdf), { present: true, driver: 'vfio-pci', override: 'vfio-pci' });
    assert.deepEqual(m.get('0000:02:00.0'), { present: true, driver: null, override: null });
    assert.deepEqual(m.get(BRIDGED.bdf), { present: false, driver: null, override: null });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('readmeFleet finds the README\'s inventory and fleet playbook (the boot lab syntax-checks them)', () => {
  const f = readmeFleet(fs.readFileSync(path.join(REPO, 'README.md'), 'utf8'));
  assert.match(f.inventory, /^# inventory\.ini\n\[vfio_hosts\]/);
  assert.match(f.playbook, /^# site\.yml/);
  assert.match(f.playbook, /serial:/);
  assert.match(f.playbook, /vfioctl\.vfio\.vfio_bindings:/);
  assert.match(f.playbook, /handlers:/);
  assert.throws(() => readmeFleet('no blocks'), /inventory\.ini/);
});

test('the NVMe namespace holds an MBR with one Linux partition (the kernel logs it when nvme binds)', (t) => {
  const img = namespaceImage();
  assert.equal(img.length, 1 << 20);
  assert.equal(img.readUInt16LE(510), 0xaa55);
  assert.equal(img[0x1be], 0, 'boot indicator');
  assert.equal(img[0x1be + 4], 0x83);
  assert.deepEqual([img.readUInt32LE(0x1be + 8), img.readUInt32LE(0x1be + 12)], [1, 2047]);
  // Where sfdisk is installed, it reads the same table.
  const r = spawnSync('sfdisk', ['--json', '-'], { input: img, encoding: 'utf8' });
  if (r.error) return t.skip('no sfdisk');
  assert.equal(r.status, 0, r.stderr);
  const parts = JSON.parse(r.stdout).partitiontable.partitions as { start: number; size: number; type: string }[];
  assert.deepEqual(parts.map((p) => [p.start, p.size, p.type]), [[1, 2047, '83']]);
});
