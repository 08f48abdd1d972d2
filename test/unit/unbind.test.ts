import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labSpec } from '../helpers/lab-tree.js';
import { fakeLab } from '../helpers/fake-lab.js';

const lab = fakeLab;

test('bind then unbind: back to the recorded host driver, override cleared, record and /dev/vfio node gone', async (t) => {
  const { root, kernel, run, at } = lab(t);
  assert.equal((await run('bind', '01:00.0', '--variant', 'vfio-pci')).code, 0);
  kernel.log.length = 0;
  const r = await run('unbind', '01:00.0', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json(), {
    schemaVersion: 1, dryRun: false, changed: true,
    actions: [{ bdf: '0000:01:00.0', from: 'vfio-pci', to: 'e1000e', status: 'unbound', code: null, reason: null, warnings: [] }],
  });
  assert.deepEqual(kernel.log, [
    '/sys/bus/pci/devices/0000:01:00.0/driver_override <- "\\n": OK',
    '/sys/bus/pci/drivers/vfio-pci/unbind <- "0000:01:00.0": OK',
    '/sys/bus/pci/drivers/e1000e/bind <- "0000:01:00.0": OK',
  ]);
  assert.deepEqual(at('0000:01:00.0'), { driver: 'e1000e', override: '(null)', vfioDev: false });
  assert.ok(!fs.existsSync(path.join(root, 'run/vfioctl/devices/0000:01:00.0.json')));
  assert.ok(!fs.existsSync(path.join(root, 'dev/vfio/2')));
  const again = await run('unbind', '01:00.0', '--json');
  assert.equal(again.code, 0);
  assert.equal(again.json().changed, false);
  assert.equal(again.json().actions[0].status, 'unchanged');
});

test('without a record the kernel chooses (drivers_probe); --to names the driver', async (t) => {
  const spec = labSpec({ drivers: { 'vfio-pci': 'vfio_pci', e1000e: 'e1000e', e1000: 'e1000', nvme: 'nvme', 'pci-stub': 'pci_stub' } });
  spec.devices = spec.devices.map((d) => (d.bdf === '0000:01:00.0' ? { ...d, driver: 'vfio-pci', vfioDev: 'vfio3', enable: 0, override: 'vfio-pci' } : d));
  const { run, at } = lab(t, spec);
  const r = await run('unbind', '01:00.0', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().actions[0].status, 'unbound');
  assert.deepEqual(r.json().actions[0].warnings, ['no driver recorded for it under /run/vfioctl: the kernel picks one']);
  // No host driver in the fake's tables matches 8086:10d3 here, so the kernel leaves it unbound.
  assert.equal(at('0000:01:00.0').driver, null);
  assert.equal(r.json().actions[0].to, null);

  const { run: run2, at: at2 } = lab(t);
  const to = await run2('unbind', '00:05.0', '--to', 'pci-stub', '--json');
  assert.equal(to.code, 3, 'pci-stub is not registered in this tree');
  const ok = await run2('unbind', '00:05.0', '--to', 'e1000', '--dry-run', '--json');
  assert.deepEqual([ok.json().actions[0].status, ok.json().actions[0].to], ['planned', 'e1000']);
  assert.equal(at2('0000:00:05.0').driver, 'vfio-pci');
});

test('an open VFIO device is refused: the kernel unbind would block', async (t) => {
  const { kernel, run, at } = lab(t);
  kernel.openDevice('0000:00:05.0');
  const r = await run('unbind', '00:05.0', '--json');
  assert.equal(r.code, 4);
  assert.match(r.json().actions[0].reason, /VFIO user has it open.*enable=1.*block/);
  assert.equal(kernel.writes.length, 0);
  // Rebinding it to a variant is refused for the same reason.
  const b = await run('bind', '00:05.0', '--variant', 'vfio_pci_lab', '--force', '--dry-run', '--json');
  assert.equal(b.json().actions[0].warnings.some((w: string) => /VFIO user/.test(w)), true);
  assert.equal((await run('bind', '00:05.0', '--variant', 'mlx5_vfio_pci')).code, 4);
  assert.equal(at('0000:00:05.0').driver, 'vfio-pci');
});

test('a process holding /dev/vfio/N is named (pid and comm)', async (t) => {
  const { root, run, kernel } = lab(t);
  fs.mkdirSync(path.join(root, 'proc/4242/fd'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/4242/comm'), 'qemu-system-x86\n');
  fs.symlinkSync('/dev/vfio/7', path.join(root, 'proc/4242/fd/12'));
  const r = await run('unbind', '00:05.0', '--json');
  assert.equal(r.code, 4);
  assert.match(r.json().actions[0].reason, /pid 4242 \(qemu-system-x86\) holds \/dev\/vfio\/7/);
  assert.equal(kernel.writes.length, 0);
});

test('unbind failure: the host driver refuses the device, it goes back to vfio-pci', async (t) => {
  const { kernel, run, at } = lab(t);
  assert.equal((await run('bind', '03:01.0', '--group', '--variant', 'vfio-pci')).code, 0);
  kernel.failNext({ path: /drivers\/e1000\/bind$/, errno: 'ENODEV', times: 1 });
  kernel.failNext({ path: /drivers_probe$/, errno: 'EINVAL', times: 0 });
  const r = await run('unbind', 'group:4', '--json');
  assert.equal(r.code, 1);
  const s = r.json().actions.map((a: any) => a.status);
  assert.deepEqual(s, ['failed', 'unchanged']);
  // The failing device: restore put it back on vfio-pci with its override.
  assert.deepEqual(at('0000:03:01.0'), { driver: 'vfio-pci', override: 'vfio-pci', vfioDev: true });
  assert.deepEqual(at('0000:03:02.0'), { driver: 'vfio-pci', override: 'vfio-pci', vfioDev: true });
  // The record survives, so a later unbind still knows the host driver.
  const later = await run('unbind', 'group:4', '--json');
  assert.equal(later.code, 0, later.stderr);
  assert.deepEqual(later.json().actions.map((a: any) => a.to), ['e1000', 'e1000']);
});

test('unbind: a second device failing rolls the first back to vfio', async (t) => {
  const { kernel, run, at } = lab(t);
  assert.equal((await run('bind', '03:01.0', '--group', '--variant', 'vfio-pci')).code, 0);
  const before = kernel.writes.length;
  kernel.failWriteNumber(before + 5, 'EBUSY'); // 03:02.0's bind to e1000
  const r = await run('unbind', '03:01.0', '03:02.0', '--json');
  assert.equal(r.code, 1);
  assert.deepEqual(r.json().actions.map((a: any) => a.status), ['rolled-back', 'failed']);
  assert.deepEqual(at('0000:03:01.0'), { driver: 'vfio-pci', override: 'vfio-pci', vfioDev: true });
  assert.deepEqual(at('0000:03:02.0'), { driver: 'vfio-pci', override: 'vfio-pci', vfioDev: true });
});
