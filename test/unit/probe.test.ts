/**
 * `vfioctl probe` and `reset-plan --verify` without a kernel: fixture trees for what sysfs
 * shows, and a fake VFIO kernel (helpers/fake-vfio.ts) for what the ioctls answer. Every
 * --json run is checked against schema/ by the cli() helper.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTree, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { BIN, cli, REPO } from '../helpers/cli.js';
import { FakeVfio, type FakeVfioOptions } from '../helpers/fake-vfio.js';
import { loadVfioSys } from '../../src/vfio/sys.js';

/** Below root port 00:04.0: 05:00.0 and 05:00.1 (group 13, vfio-pci); 00:02.0 on e1000e (group 1); 00:05.0 vfio-pci in group 14 with an e1000e peer. */
const SPEC: TreeSpec = {
  osrelease: '6.12.0-test',
  devices: [
    { bdf: '0000:00:00.0', id: '8086:29c0', class: '060000', group: 0, resetMethods: null },
    { bdf: '0000:00:04.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 12 },
    { bdf: '0000:05:00.0', parent: '0000:00:04.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio3', cdev: true, enable: 0, group: 13 },
    { bdf: '0000:05:00.1', parent: '0000:00:04.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio4', enable: 0, group: 13 },
    { bdf: '0000:00:02.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 1 },
    { bdf: '0000:00:05.0', id: '8086:10d3', class: '020000', driver: 'vfio-pci', vfioDev: 'vfio5', enable: 0, group: 14 },
    { bdf: '0000:00:05.1', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 14 },
  ],
  devVfio: [13, 14],
};

const DEVICES: FakeVfioOptions['devices'] = [
  { bdf: '0000:05:00.0', group: 13, cdev: 'vfio3', migration: 0b101, dirtyTracking: true, lowPower: true, hotReset: [{ bdf: '0000:05:00.0', id: 13 }, { bdf: '0000:05:00.1', id: 13 }], caps: [{ id: 5, version: 1 }] },
  { bdf: '0000:05:00.1', group: 13, cdev: 'vfio4', migration: null, lowPower: true, hotReset: [{ bdf: '0000:05:00.0', id: 13 }, { bdf: '0000:05:00.1', id: 13 }] },
];

function setup(t: { after: (fn: () => void) => void }, opts: { cdevNodes?: boolean; spec?: TreeSpec } = {}): string {
  const { root, cleanup } = tempRoot('vfioctl-probe-');
  t.after(cleanup);
  buildTree(root, opts.spec ?? SPEC);
  if (opts.cdevNodes) {
    fs.mkdirSync(path.join(root, 'dev/vfio/devices'), { recursive: true });
    fs.writeFileSync(path.join(root, 'dev/vfio/devices/vfio3'), '');
    fs.writeFileSync(path.join(root, 'dev/iommu'), '');
  }
  return root;
}

function fake(opts: Partial<FakeVfioOptions> = {}) {
  const k = new FakeVfio({ devices: DEVICES, ...opts });
  return { k, vfioSys: async () => k };
}

test('probe --json via the group: info, migration, dirty tracking, low power and hot-reset INFO as the kernel answered', async (t) => {
  const root = setup(t);
  const { k, vfioSys } = fake();
  const r = await cli(['probe', '05:00.0', '05:00.1', '--json'], root, { vfioSys });
  assert.equal(r.code, 0, r.stderr);
  const [a, b] = r.json().devices;
  assert.deepEqual(a, {
    bdf: '0000:05:00.0', via: 'group', group: 13, devId: null,
    info: { flags: ['RESET', 'PCI', 'CAPS'], regions: 9, irqs: 5, capabilities: [{ id: 5, version: 1, name: 'PCI_ATOMIC_COMP' }] },
    migration: { flags: ['STOP_COPY', 'PRE_COPY'] }, dirtyTracking: true, lowPower: true,
    hotResetInfo: { flags: [], devices: [{ bdf: '0000:05:00.0', group: 13, devId: null }, { bdf: '0000:05:00.1', group: 13, devId: null }] },
    hotResetError: null, errors: [],
  });
  assert.equal(b.migration, null);
  assert.equal(b.dirtyTracking, false);
  assert.deepEqual(k.openFds, [], 'every fd closed');
  // The way QEMU opens a device, then the queries; the info grew once for the capability chain; closed last-opened first.
  const first = k.calls.slice(0, k.calls.indexOf('close device') + 3);
  assert.deepEqual(first, [
    'open /dev/vfio/vfio', 'VFIO_GET_API_VERSION', 'VFIO_CHECK_EXTENSION', 'open /dev/vfio/13', 'VFIO_GROUP_GET_STATUS',
    'VFIO_GROUP_SET_CONTAINER', 'VFIO_SET_IOMMU', 'VFIO_GROUP_GET_DEVICE_FD',
    'VFIO_DEVICE_GET_INFO', 'VFIO_DEVICE_GET_INFO', 'VFIO_DEVICE_FEATURE', 'VFIO_DEVICE_FEATURE', 'VFIO_DEVICE_FEATURE', 'VFIO_DEVICE_FEATURE',
    'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO',
    'close device', 'close group', 'close container',
  ]);
  const text = await cli(['probe', '05:00.0'], root, { vfioSys: fake().vfioSys });
  assert.match(text.stdout, /migration: +STOP_COPY PRE_COPY/);
  assert.match(text.stdout, /hot reset INFO: 0000:05:00\.0 \(group 13\), 0000:05:00\.1 \(group 13\)/);
});

test('probe via the cdev (the default where the kernel offers one): iommufd device ids, groups from sysfs, closed in reverse', async (t) => {
  const root = setup(t, { cdevNodes: true });
  const k = new FakeVfio({ devices: [{ ...DEVICES[0]!, hotReset: [{ bdf: '0000:05:00.0', id: 7 }, { bdf: '0000:05:00.1', id: 0 }, { bdf: '0000:00:04.0', id: 0xffffffff }] }] });
  const r = await cli(['probe', '05:00.0', '--json'], root, { vfioSys: async () => k });
  assert.equal(r.code, 0, r.stderr);
  const d = r.json().devices[0];
  assert.equal(d.via, 'cdev');
  assert.equal(d.devId, 7);
  assert.deepEqual(d.hotResetInfo, { flags: ['DEV_ID'], devices: [
    { bdf: '0000:05:00.0', group: 13, devId: 7 }, { bdf: '0000:05:00.1', group: 13, devId: 'owned' }, { bdf: '0000:00:04.0', group: 12, devId: 'not-owned' },
  ] });
  assert.deepEqual(k.calls.filter((c) => !c.startsWith('VFIO_DEVICE_GET') && c !== 'VFIO_DEVICE_FEATURE'), [
    'open /dev/iommu', 'open /dev/vfio/devices/vfio3', 'VFIO_DEVICE_BIND_IOMMUFD', 'IOMMU_IOAS_ALLOC', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
    'close device', 'IOMMU_DESTROY', 'close iommufd',
  ]);
  assert.deepEqual(k.openFds, []);
  // --via group still opens through the group.
  const g = await cli(['probe', '05:00.0', '--via', 'group', '--json'], root, { vfioSys: fake().vfioSys });
  assert.equal(g.json().devices[0].via, 'group');
});

test('refusals change nothing and open nothing: host driver, group not viable, no cdev, held open (exit 4)', async (t) => {
  const root = setup(t);
  const cases: [string[], RegExp][] = [
    [['probe', '00:02.0'], /0000:00:02\.0 is not on a vfio driver: its driver is e1000e/],
    [['probe', '00:05.0'], /group 14 of 0000:00:05\.0 is not viable: 0000:00:05\.1 \(e1000e\) is on a host driver/],
    [['probe', '05:00.1', '--via', 'cdev'], /0000:05:00\.1 has no VFIO device cdev/],
    // One refused device stops all: 05:00.0 is not opened either.
    [['probe', '05:00.0', '00:02.0'], /0000:00:02\.0 is not on a vfio driver/],
  ];
  for (const [argv, message] of cases) {
    const { k, vfioSys } = fake();
    const r = await cli(argv, root, { vfioSys });
    assert.equal(r.code, 4, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.deepEqual(k.calls, [], `${argv.join(' ')} opened nothing`);
    const j = await cli([...argv, '--json'], root, { vfioSys });
    assert.equal(j.json().error.exit, 4);
  }
  // A process holding the group node (as /proc shows it) is refused before any open.
  fs.mkdirSync(path.join(root, 'proc/4242/fd'), { recursive: true });
  fs.symlinkSync('/dev/vfio/13', path.join(root, 'proc/4242/fd/7'));
  fs.writeFileSync(path.join(root, 'proc/4242/comm'), 'qemu-system-x86\n');
  const { k, vfioSys } = fake();
  const r = await cli(['probe', '05:00.0'], root, { vfioSys });
  assert.equal(r.code, 4);
  assert.match(r.stderr, /0000:05:00\.0 is in use: process 4242 \(\/dev\/vfio\/13\) holds it open/);
  assert.deepEqual(k.calls, []);
  const unknown = await cli(['probe', '07:00.0'], root, { vfioSys });
  assert.equal(unknown.code, 3);
});

test('the kernel decides what sysfs cannot see: EBUSY at the group or the cdev is "in use" (exit 4), promptly, every fd closed', async (t) => {
  const root = setup(t, { cdevNodes: true });
  for (const via of ['group', 'cdev']) {
    const { k, vfioSys } = fake({ busyGroups: [13] });
    const started = Date.now();
    const r = await cli(['probe', '05:00.0', '--via', via], root, { vfioSys });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /0000:05:00\.0 is in use: the kernel answered EBUSY at (open-group|bind-iommufd)/);
    assert.deepEqual(k.openFds, [], `${via}: nothing left open`);
    assert.ok(Date.now() - started < 5000);
  }
  // A cdev bound by another process answers EINVAL; with `enable` > 0 (vfio-pci enables only open devices) that is "in use".
  fs.writeFileSync(path.join(root, 'sys/bus/pci/devices/0000:05:00.0/enable'), '1\n');
  const { k, vfioSys } = fake({ boundCdevs: ['vfio3'] });
  const r = await cli(['probe', '05:00.0', '--via', 'cdev'], root, { vfioSys });
  assert.equal(r.code, 4, r.stderr);
  assert.deepEqual(k.openFds, []);
  // Not viable per the kernel (sysfs said viable), and a kernel failure that is no refusal.
  let f = fake({ notViable: [13] });
  let x = await cli(['probe', '05:00.0', '--via', 'group'], root, { vfioSys: f.vfioSys });
  assert.equal(x.code, 4);
  assert.match(x.stderr, /group 13 of 0000:05:00\.0 is not viable/);
  assert.deepEqual(f.k.openFds, []);
  f = fake({ fail: { VFIO_DEVICE_GET_INFO: 'EIO' } });
  x = await cli(['probe', '05:00.0', '--via', 'group'], root, { vfioSys: f.vfioSys });
  assert.equal(x.code, 1);
  assert.match(x.stderr, /VFIO_DEVICE_GET_INFO failed: the kernel answered EIO/);
  assert.deepEqual(f.k.openFds, [], 'closed after a failed query too');
});

test('hot-reset INFO: sized on ENOSPC, retried on EAGAIN; ENODEV is an answer, not a failure', async (t) => {
  const root = setup(t);
  const many = Array.from({ length: 5 }, (_, i) => ({ bdf: `0000:05:00.${i}`, id: 13 }));
  let f = fake({ devices: [{ ...DEVICES[0]!, hotReset: many }], infoEagain: 2 });
  let r = await cli(['probe', '05:00.0', '--json'], root, { vfioSys: f.vfioSys });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json().devices[0].hotResetInfo.devices.map((d: { bdf: string }) => d.bdf), many.map((d) => d.bdf));
  assert.equal(f.k.calls.filter((c) => c === 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO').length, 4, 'EAGAIN twice, then ENOSPC, then the answer');
  f = fake({ devices: [{ ...DEVICES[0]!, hotReset: 'ENODEV' }] });
  r = await cli(['probe', '05:00.0', '--json'], root, { vfioSys: f.vfioSys });
  assert.equal(r.code, 0);
  assert.equal(r.json().devices[0].hotResetInfo, null);
  assert.equal(r.json().devices[0].hotResetError, 'ENODEV');
});

test('the reset-on-open warning goes to stderr on a terminal only, before the first open; --help says it too', async (t) => {
  const root = setup(t);
  let f = fake();
  let r = await cli(['probe', '05:00.0'], root, { vfioSys: f.vfioSys, stderrIsTTY: true });
  assert.match(r.stderr, /warning: opening a VFIO device resets it .* wakes it to D0: 0000:05:00\.0/);
  f = fake();
  r = await cli(['probe', '05:00.0'], root, { vfioSys: f.vfioSys, stderrIsTTY: false });
  assert.equal(r.stderr, '');
  const help = await cli(['probe', '--help'], root);
  assert.match(help.stdout.replace(/\s+/g, ' '), /opening a VFIO device resets it .* wakes it to D0/);
});

test('where the FFI cannot load, probe exits 1 with the loader\'s message; other commands do not need it', async (t) => {
  const root = setup(t);
  const { VfioctlError } = await import('../../src/errors.js');
  const vfioSys = async () => {
    throw new VfioctlError(1, 'cannot load koffi, the FFI that issues VFIO\'s ioctls (sunos-sparc, node v20)', 'no prebuilt binary');
  };
  const r = await cli(['probe', '05:00.0'], root, { vfioSys });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot load koffi/);
  // A refusal is still found before the FFI is needed.
  assert.equal((await cli(['probe', '00:02.0'], root, { vfioSys })).code, 4);
  assert.equal((await cli(['show', '05:00.0'], root, { vfioSys })).code, 0);
});

test('koffi loads here and issues a real ioctl (ENOTTY on /dev/null)', async () => {
  const sys = await loadVfioSys();
  const fd = sys.open('/dev/null');
  assert.ok(fd.ok);
  const r = sys.ioctl(fd.value, 0x3b64);
  assert.deepEqual(r, { ok: false, errno: 'ENOTTY' });
  const buf = Buffer.alloc(8);
  assert.deepEqual(sys.ioctl(fd.value, 0x3b67, buf), { ok: false, errno: 'ENOTTY' });
  sys.close(fd.value);
  assert.deepEqual(sys.open('/nonexistent/vfio'), { ok: false, errno: 'ENOENT' });
});

test('groups, show and bind never load koffi (the bundle keeps it external, required on first use)', (t) => {
  const root = setup(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfioctl-nokoffi-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const hook = path.join(dir, 'hook.cjs');
  fs.writeFileSync(hook, `const M = require('module'); const load = M._load; M._load = function (req, ...rest) { if (/koffi/.test(req)) require('fs').writeSync(2, 'LOADED koffi\\n'); return load.call(this, req, ...rest); };\n`);
  const runIt = (...args: string[]) => spawnSync(process.execPath, ['-r', hook, BIN, '--root', root, ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  for (const args of [['groups'], ['show', '05:00.0'], ['bind', '00:02.0', '--dry-run'], ['reset-plan', '05:00.0']]) {
    const r = runIt(...args);
    assert.doesNotMatch(r.stderr, /LOADED koffi/, `${args.join(' ')} loaded koffi`);
  }
  // probe does load it (and then fails on the fixture's plain files: not a VFIO node).
  const p = runIt('probe', '05:00.0', '--via', 'group');
  assert.match(p.stderr, /LOADED koffi/);
  assert.notEqual(p.status, 0);
  assert.ok(fs.readFileSync(path.join(REPO, 'dist/vfioctl.cjs'), 'utf8').includes('require("koffi")'), 'koffi is required at run time, not bundled');
});

test('reset-plan --verify: verified by the kernel, a difference field by field (exit 1), not verifiable off vfio (exit 0)', async (t) => {
  const root = setup(t);
  // The plan for 05:00.0: a bus reset below 00:04.0 hitting 05:00.0 and 05:00.1, group 13.
  let f = fake();
  let r = await cli(['reset-plan', '05:00.0', '--verify', '--json'], root, { vfioSys: f.vfioSys });
  assert.equal(r.code, 0, r.stderr);
  let plan = r.json().plans[0];
  assert.equal(plan.verified, true);
  assert.equal(plan.verification, 'verified');
  assert.deepEqual(plan.kernel, { via: 'group', devices: [{ bdf: '0000:05:00.0', group: 13 }, { bdf: '0000:05:00.1', group: 13 }], error: null });
  assert.deepEqual(plan.differences, []);
  assert.deepEqual(f.k.openFds, []);
  assert.ok(!f.k.calls.includes('VFIO_DEVICE_FEATURE'), 'verify asks INFO only');
  const text = await cli(['reset-plan', '05:00.0', '--verify'], root, { vfioSys: fake().vfioSys });
  assert.match(text.stdout, /0000:05:00\.0: verified by the kernel/);

  // A kernel that lists a device the plan does not, and another group for a planned one.
  f = fake({ devices: [{ ...DEVICES[0]!, hotReset: [{ bdf: '0000:05:00.0', id: 13 }, { bdf: '0000:05:00.1', id: 15 }, { bdf: '0000:05:01.0', id: 16 }] }] });
  r = await cli(['reset-plan', '05:00.0', '--verify', '--json'], root, { vfioSys: f.vfioSys });
  assert.equal(r.code, 1);
  plan = r.json().plans[0];
  assert.equal(plan.verified, false);
  assert.deepEqual(plan.differences, [
    { field: 'group[0000:05:00.1]', plan: '13', kernel: '15' },
    { field: 'devices[0000:05:01.0]', plan: 'not listed', kernel: 'affected' },
    { field: 'groups', plan: '13', kernel: '13,15,16' },
  ]);
  assert.match(r.stderr, /the kernel's hot-reset INFO differs from the plan for 0000:05:00\.0/);
  assert.match(r.stderr, /group\[0000:05:00\.1\]: plan 13, kernel 15/);

  // The kernel says ENODEV where the plan expected a bus reset.
  f = fake({ devices: [{ ...DEVICES[0]!, hotReset: 'ENODEV' }] });
  r = await cli(['reset-plan', '05:00.0', '--verify', '--json'], root, { vfioSys: f.vfioSys });
  assert.equal(r.code, 1);
  assert.deepEqual(r.json().plans[0].differences, [{ field: 'answer', plan: '2 devices', kernel: 'ENODEV' }]);

  // Off vfio: not verifiable, nothing opened, exit 0.
  f = fake();
  r = await cli(['reset-plan', '00:02.0', '--verify', '--json'], root, { vfioSys: f.vfioSys });
  assert.equal(r.code, 0, r.stderr);
  plan = r.json().plans[0];
  assert.equal(plan.verification, 'not-verifiable');
  assert.equal(plan.kernel, null);
  assert.deepEqual(f.k.calls, []);
  // --via without --verify is a usage error; reset-plan without --verify adds no fields.
  assert.equal((await cli(['reset-plan', '05:00.0', '--via', 'group'], root)).code, 2);
  assert.equal('verified' in (await cli(['reset-plan', '05:00.0', '--json'], root)).json().plans[0], false);
});

test('reset-plan --verify on every lab capture, the fake kernel replaying the real kernel\'s captured INFO answers: all verified', async (t) => {
  const fixtures = path.join(REPO, 'test/fixtures');
  let checked = 0;
  for (const lab of fs.readdirSync(fixtures).filter((d) => d.startsWith('lab-')).sort()) {
    const oracle = JSON.parse(fs.readFileSync(path.join(fixtures, lab, 'oracle.json'), 'utf8'));
    const group = (bdf: string) => (oracle.devicesWithVfio as { bdf: string; group: number }[]).find((d) => d.bdf === bdf)!.group;
    const devices = (oracle.vfioBound as string[]).map((bdf) => {
      const a = oracle.hotResetInfo[bdf] as { ok: boolean; devices?: { bdf: string; group: number }[]; errno?: string };
      return { bdf, group: group(bdf), hotReset: a.ok ? a.devices!.map((d) => ({ bdf: d.bdf, id: d.group })) : a.errno! };
    });
    const k = new FakeVfio({ devices });
    const r = await cli(['reset-plan', ...oracle.vfioBound, '--verify', '--json'], path.join(fixtures, lab, 'vfio'), { vfioSys: async () => k });
    assert.equal(r.code, 0, `${lab}: ${r.stderr}`);
    for (const p of r.json().plans) {
      assert.equal(p.verification, 'verified', `${lab} ${p.device}: ${JSON.stringify(p.differences)}`);
      checked++;
    }
    assert.deepEqual(k.openFds, []);
    // Captures from the cdev kernel also hold INFO through the cdev path (each device bound alone): replayed with --via cdev.
    if (oracle.hotResetInfoCdev) {
      const vfioDir = (bdf: string) => path.join(fixtures, lab, 'vfio/sys/bus/pci/devices', bdf, 'vfio-dev');
      const cdevDevices = devices.map((d) => {
        const a = oracle.hotResetInfoCdev[d.bdf].alone as { ok: boolean; devices?: { bdf: string; devid: number }[]; errno?: string };
        return { ...d, cdev: fs.readdirSync(vfioDir(d.bdf))[0]!, hotReset: a.ok ? a.devices!.map((e) => ({ bdf: e.bdf, id: e.devid })) : a.errno! };
      });
      const kc = new FakeVfio({ devices: cdevDevices });
      const rc = await cli(['reset-plan', ...oracle.vfioBound, '--verify', '--via', 'cdev', '--json'], path.join(fixtures, lab, 'vfio'), { vfioSys: async () => kc });
      assert.equal(rc.code, 0, `${lab} via cdev: ${rc.stderr}`);
      for (const p of rc.json().plans) {
        assert.equal(p.verification, 'verified', `${lab} ${p.device} via cdev: ${JSON.stringify(p.differences)}`);
        assert.equal(p.kernel.via, 'cdev');
        checked++;
      }
    }
    // The same answers with one device's group changed are caught.
    const first = devices.find((d) => Array.isArray(d.hotReset));
    if (!first) continue; // rootbus: every answer is ENODEV
    const wrong = new FakeVfio({ devices: devices.map((d) => (d === first ? { ...d, hotReset: (d.hotReset as { bdf: string; id: number }[]).map((e, i) => (i === 0 ? { ...e, id: e.id + 100 } : e)) } : d)) });
    const w = await cli(['reset-plan', first.bdf, '--verify', '--json'], path.join(fixtures, lab, 'vfio'), { vfioSys: async () => wrong });
    assert.equal(w.code, 1, `${lab}: a changed group must differ`);
  }
  t.diagnostic(`${checked} plans verified against captured kernel answers`);
  assert.ok(checked >= 40, `${checked} plans checked`);
});
