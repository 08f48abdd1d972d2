import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli, recordingRunner } from '../helpers/cli.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { labSpec } from '../helpers/lab-tree.js';
import { fakeLab } from '../helpers/fake-lab.js';
import { Binder } from '../../src/apply/binder.js';
import { planBind } from '../../src/plan/bind-plan.js';
import { scanHost } from '../../src/sysfs/scan.js';

const lab = fakeLab;

test('bind to vfio-pci: JSON contract, kernel sequence (golden write log), state record, /dev/vfio node', async (t) => {
  const { root, kernel, run, at, record } = lab(t);
  const r = await run('bind', '01:00.0', '--variant', 'vfio-pci', '--json');
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.deepEqual(doc, {
    schemaVersion: 1, dryRun: false, changed: true,
    actions: [{ bdf: '0000:01:00.0', from: 'e1000e', to: 'vfio-pci', status: 'bound', code: null, reason: null, warnings: ['interface eth0 is up'] }],
  });
  assert.deepEqual(kernel.log, [
    '/sys/bus/pci/devices/0000:01:00.0/driver_override <- "vfio-pci\\n": OK',
    '/sys/bus/pci/drivers/e1000e/unbind <- "0000:01:00.0": OK',
    '/sys/bus/pci/drivers_probe <- "0000:01:00.0": OK',
  ]);
  assert.deepEqual(at('0000:01:00.0'), { driver: 'vfio-pci', override: 'vfio-pci', vfioDev: true });
  assert.ok(fs.existsSync(path.join(root, 'dev/vfio/2')));
  assert.equal(record('0000:01:00.0').driver, 'e1000e');
  assert.ok(!fs.existsSync(path.join(root, 'run/vfioctl/lock.holder')), 'lock released');

  // Idempotent: a second identical run writes nothing and says so.
  const again = await run('bind', '01:00.0', '--variant', 'vfio-pci', '--json');
  assert.equal(again.code, 0);
  assert.equal(again.json().changed, false);
  assert.equal(again.json().actions[0].status, 'unchanged');
  assert.equal(kernel.log.length, 3);
});

test('human output: one line per device', async (t) => {
  const { run } = lab(t);
  const r = await run('bind', 'eth0', '--variant', 'vfio-pci');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^0000:01:00\.0: e1000e -> vfio-pci \(bound\)$/m);
  assert.match(r.stderr, /warning: 0000:01:00.0: interface eth0 is up/);
});

test('--verbose echoes each sysfs write once, in order, and a plain run echoes none', async (t) => {
  const { run } = lab(t);
  const r = await run('--verbose', 'bind', '01:00.0', '--variant', 'vfio-pci');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stderr.split('\n').filter((l) => l.startsWith('write ')), [
    'write /sys/bus/pci/devices/0000:01:00.0/driver_override <- "vfio-pci\\n"',
    'write /sys/bus/pci/drivers/e1000e/unbind <- "0000:01:00.0"',
    'write /sys/bus/pci/drivers_probe <- "0000:01:00.0"',
  ]);
  const back = await run('unbind', '01:00.0');
  assert.equal(back.code, 0, back.stderr);
  assert.doesNotMatch(back.stderr, /^write /m);
});

test('--variant auto picks the most specific variant and binds it', async (t) => {
  const { run, at } = lab(t);
  const r = await run('bind', '8086:10d3', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().actions[0].to, 'vfio_pci_lab');
  assert.equal(at('0000:01:00.0').driver, 'vfio_pci_lab');
  // vfio_pci_lab → vfio-pci keeps the host driver on record.
  const back = await run('bind', '01:00.0', '--variant', 'vfio_pci', '--json');
  assert.equal(back.code, 0, back.stderr);
  assert.deepEqual([back.json().actions[0].from, back.json().actions[0].to], ['vfio_pci_lab', 'vfio-pci']);
  const un = await run('unbind', '01:00.0', '--json');
  assert.equal(un.code, 0, un.stderr);
  assert.equal(un.json().actions[0].to, 'e1000e');
});

test('a variant that does not list the device is refused (exit 4, nothing written) unless --force', async (t) => {
  const { kernel, run, at } = lab(t);
  const r = await run('bind', '00:03.0', '--variant', 'vfio_pci_lab', '--json');
  assert.equal(r.code, 4);
  const a = r.json().actions[0];
  assert.equal(a.status, 'refused');
  assert.match(a.reason, /vfio_pci_lab does not support 1b36:0010/);
  assert.equal(kernel.log.length, 0);
  assert.equal(r.json().changed, false);
  // The kernel itself would bind it (kernel.md §11 (d)); --force lets it.
  const forced = await run('bind', '00:03.0', '--variant', 'vfio_pci_lab', '--force', '--json');
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(at('0000:00:03.0').driver, 'vfio_pci_lab');
});

test('bad input changes nothing: unknown driver (3), bad selector (3), malformed address (2)', async (t) => {
  const { kernel, run } = lab(t);
  assert.equal((await run('bind', '01:00.0', '--variant', 'nosuch_vfio')).code, 3);
  assert.equal((await run('bind', '09:00.0')).code, 3);
  assert.equal((await run('bind', 'group:99')).code, 3);
  assert.equal((await run('bind', '1:0.0')).code, 2);
  assert.equal((await run('unbind', '01:00.0', '--to', 'nosuch')).code, 3);
  assert.equal(kernel.writes.length, 0);
});

test('group awareness: refusal names the peer and suggests --group; --group binds the endpoints, the bridge stays', async (t) => {
  const { kernel, run, at } = lab(t);
  const r = await run('bind', '03:01.0', '--json');
  assert.equal(r.code, 4);
  assert.match(r.json().actions[0].reason, /0000:03:02\.0 \(e1000\).*--group/);
  assert.equal(kernel.writes.length, 0);

  const g = await run('bind', '03:01.0', '--group', '--json');
  assert.equal(g.code, 0, g.stderr);
  assert.deepEqual(g.json().actions.map((a: any) => [a.bdf, a.status]), [['0000:03:01.0', 'bound'], ['0000:03:02.0', 'bound']]);
  assert.equal(at('0000:03:02.0').driver, 'vfio-pci');
  assert.equal(at('0000:02:00.0').driver, null, 'bridge untouched');
  const groups = await run('groups', '--group', '4', '--json');
  assert.equal(groups.json().groups[0].viable, true);
});

test('group:N selects the endpoints and skips the bridge; a bridge named directly is refused', async (t) => {
  const { run, kernel } = lab(t);
  const br = await run('bind', '02:00.0', '--json');
  assert.equal(br.code, 4);
  assert.match(br.json().actions[0].reason, /bridge/);
  assert.equal(kernel.writes.length, 0);
  const r = await run('bind', 'group:4', '--dry-run', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json().actions.map((a: any) => [a.bdf, a.status]), [['0000:03:01.0', 'planned'], ['0000:03:02.0', 'planned']]);
});

test('already-viable peers are left alone with --group', async (t) => {
  const spec = labSpec();
  spec.devices = spec.devices.map((d) => (d.bdf === '0000:03:02.0' ? { ...d, driver: undefined } : d));
  const { run, at } = lab(t, spec);
  const r = await run('bind', '03:01.0', '--group', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json().actions.map((a: any) => a.bdf), ['0000:03:01.0']);
  assert.equal(at('0000:03:02.0').driver, null);
  // Without --group too: an unbound peer does not block.
  assert.equal(at('0000:03:01.0').driver, 'vfio-pci');
});

test('dry run writes nothing, reports planned and whether a real run would change anything', async (t) => {
  const { root, kernel, run } = lab(t);
  const r = await run('bind', '01:00.0', '00:05.0', '--dry-run', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json().actions.map((a: any) => [a.bdf, a.status]), [['0000:00:05.0', 'unchanged'], ['0000:01:00.0', 'planned']]);
  assert.equal(r.json().dryRun, true);
  assert.equal(r.json().changed, true);
  assert.equal(kernel.writes.length, 0);
  assert.ok(!fs.existsSync(path.join(root, 'run/vfioctl')));
  const none = await run('bind', '00:05.0', '--dry-run', '--json');
  assert.equal(none.json().changed, false);
});

test('already on vfio-pci: unchanged, exit 0 (auto does not switch a vfio device to a variant)', async (t) => {
  const { run, kernel } = lab(t);
  const auto = await run('bind', '00:05.0', '--json');
  assert.equal(auto.code, 0);
  assert.equal(auto.json().actions[0].status, 'unchanged');
  assert.equal(auto.json().changed, false);
  const r = await run('bind', '00:05.0', '--variant', 'vfio-pci', '--json');
  assert.equal(r.code, 0);
  assert.deepEqual(r.json().actions[0], { bdf: '0000:00:05.0', from: 'vfio-pci', to: 'vfio-pci', status: 'unchanged', code: null, reason: 'already bound to vfio-pci', warnings: [] });
  assert.equal(kernel.writes.length, 0);
});

test('in use: a mounted disk and the boot VGA are refused, naming the reason', async (t) => {
  const spec = labSpec();
  const { root, run, kernel } = lab(t, spec);
  fs.mkdirSync(path.join(root, 'proc/self'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/self/mountinfo'), '29 1 259:0 / /data rw,relatime shared:1 - ext4 /dev/nvme0n1 rw\n');
  const r = await run('bind', '00:03.0', '--json');
  assert.equal(r.code, 4);
  assert.match(r.json().actions[0].reason, /nvme0n1 is mounted on \/data/);
  const vga = await run('bind', '00:04.0', '--json');
  assert.equal(vga.code, 4);
  assert.match(vga.json().actions[0].reason, /boot VGA/);
  assert.equal(kernel.writes.length, 0);
});

test('an interface with an address is refused', async (t) => {
  const { root, run, kernel } = lab(t);
  fs.mkdirSync(path.join(root, 'proc/net'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/net/route'), 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n');
  fs.writeFileSync(path.join(root, 'proc/net/fib_trie'), 'Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.0\n        /24 link UNICAST\nLocal:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.15\n        /32 host LOCAL\n');
  const r = await run('bind', 'eth0', '--json');
  assert.equal(r.code, 4);
  assert.match(r.json().actions[0].reason, /eth0 is up with address 10\.0\.2\.15/);
  assert.equal(kernel.writes.length, 0);
});

// Every write of a two-device bind fails once, in turn: each run must end exactly where it began.
test('failure injection at every step rolls every device back', async (t) => {
  const first = lab(t);
  const ok = await first.run('bind', '03:01.0', '--group', '--variant', 'vfio-pci', '--json');
  assert.equal(ok.code, 0, ok.stderr);
  const steps = first.kernel.writes.length;
  assert.equal(steps, 6);
  for (let k = 0; k < steps; k++) {
    for (const errno of ['EBUSY', 'ENODEV', 'EINVAL']) {
      const { kernel, run, at, record } = lab(t);
      kernel.failWriteNumber(k, errno);
      const r = await run('bind', '03:01.0', '--group', '--variant', 'vfio-pci', '--json');
      assert.equal(r.code, 1, `step ${k} ${errno}: ${r.stderr}`);
      const doc = r.json();
      const statuses = doc.actions.map((a: any) => a.status);
      assert.equal(statuses[k < 3 ? 0 : 1], 'failed', `step ${k}`);
      if (k >= 3) assert.equal(statuses[0], 'rolled-back');
      else assert.equal(statuses[1], 'unchanged');
      assert.match(doc.actions[k < 3 ? 0 : 1].reason, new RegExp(errno));
      assert.equal(doc.changed, false, 'everything was put back');
      for (const bdf of ['0000:03:01.0', '0000:03:02.0']) {
        assert.deepEqual(at(bdf), { driver: 'e1000', override: '(null)', vfioDev: false }, `step ${k} ${errno}: ${bdf} restored`);
        assert.equal(record(bdf), undefined, `step ${k}: no stale record`);
      }
    }
  }
});

test('rollback golden log: the second device probes to nothing, the first is put back', async (t) => {
  const { kernel, run, at } = lab(t);
  // drivers_probe "succeeds" for the second device but binds nothing; only the read-back tells.
  kernel.failWriteNumber(5, 'EINVAL');
  const r = await run('bind', '03:01.0', '--group', '--variant', 'vfio-pci', '--json');
  assert.equal(r.code, 1);
  assert.deepEqual(kernel.log, [
    '/sys/bus/pci/devices/0000:03:01.0/driver_override <- "vfio-pci\\n": OK',
    '/sys/bus/pci/drivers/e1000/unbind <- "0000:03:01.0": OK',
    '/sys/bus/pci/drivers_probe <- "0000:03:01.0": OK',
    '/sys/bus/pci/devices/0000:03:02.0/driver_override <- "vfio-pci\\n": OK',
    '/sys/bus/pci/drivers/e1000/unbind <- "0000:03:02.0": OK',
    '/sys/bus/pci/drivers_probe <- "0000:03:02.0": EINVAL (injected)',
    // restore the failing device: clear the override, reprobe (e1000 takes it back)
    '/sys/bus/pci/devices/0000:03:02.0/driver_override <- "\\n": OK',
    '/sys/bus/pci/drivers_probe <- "0000:03:02.0": OK',
    // roll back the first
    '/sys/bus/pci/devices/0000:03:01.0/driver_override <- "\\n": OK',
    '/sys/bus/pci/drivers/vfio-pci/unbind <- "0000:03:01.0": OK',
    '/sys/bus/pci/drivers_probe <- "0000:03:01.0": OK',
  ]);
  assert.equal(at('0000:03:01.0').driver, 'e1000');
  assert.equal(at('0000:03:02.0').driver, 'e1000');
});

test('drivers_probe that binds nothing is a failure, found by the read-back', async (t) => {
  const { kernel, run, at } = lab(t);
  kernel.probeFails('vfio-pci', 'EINVAL');
  const r = await run('bind', '01:00.0', '--variant', 'vfio-pci', '--json');
  assert.equal(r.code, 1);
  const a = r.json().actions[0];
  assert.equal(a.status, 'failed');
  assert.match(a.reason, /vfio-pci did not take 0000:01:00.0 \(left without a driver after drivers_probe\).*restored to e1000e/);
  assert.deepEqual(at('0000:01:00.0'), { driver: 'e1000e', override: '(null)', vfioDev: false });
  assert.equal(r.json().changed, false);
});

test('lock: a held flock makes a change fail (exit 1) without writing; a dead holder or junk in the file blocks nothing', async (t) => {
  const { root, run, kernel } = lab(t);
  // Another vfioctl holds the lock: flock(1) stands in for it, as vfioctl holds it the same way.
  fs.mkdirSync(path.join(root, 'run/vfioctl'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(root, 'run/vfioctl/lock.holder'), '4242\n');
  const holder = spawn('flock', ['--close', '--', path.join(root, 'run/vfioctl/lock'), 'sleep', '30'], { stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  for (let i = 0; i < 100 && !fs.existsSync(path.join(root, 'run/vfioctl/lock')); i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100));
  const r = await run('bind', '01:00.0', '--variant', 'vfio-pci', '--json');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /another vfioctl \(pid 4242\) is changing device bindings/);
  assert.equal(r.json().error.code, 'locked');
  // On a terminal a run that waits says for whom.
  const waiting = await cli(['bind', '01:00.0', '--variant', 'vfio-pci'], root, { makeFs: () => kernel, env: { NO_COLOR: '1', VFIOCTL_LOCK_TIMEOUT: '0.3' }, isTTY: true });
  assert.equal(waiting.code, 1);
  assert.match(waiting.stderr, /^waiting for vfioctl \(pid 4242\) to finish…$/m);
  assert.equal(kernel.writes.length, 0);
  // Dry runs change nothing and need no lock.
  assert.equal((await run('bind', '01:00.0', '--dry-run')).code, 0);
  // The holder dies (SIGKILL): the kernel drops its lock; a stale pid and junk in the file do not matter.
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  fs.writeFileSync(path.join(root, 'run/vfioctl/lock'), '1\njunk\n');
  const after = await run('bind', '01:00.0', '--variant', 'vfio-pci');
  assert.equal(after.code, 0, after.stderr);
});

test('lock: a directory at the lock path, a symlinked or foreign state directory are errors naming the path (exit 1)', async (t) => {
  const { root, run, kernel } = lab(t);
  fs.mkdirSync(path.join(root, 'run/vfioctl/lock'), { recursive: true });
  fs.chmodSync(path.join(root, 'run/vfioctl'), 0o700);
  const dir = await run('bind', '01:00.0', '--variant', 'vfio-pci');
  assert.equal(dir.code, 1);
  assert.match(dir.stderr, /\/run\/vfioctl\/lock: is a directory, not a lock file/);
  fs.rmSync(path.join(root, 'run/vfioctl'), { recursive: true });
  const elsewhere = fs.mkdtempSync(path.join(root, 'x'));
  fs.symlinkSync(elsewhere, path.join(root, 'run/vfioctl'));
  const link = await run('bind', '01:00.0', '--variant', 'vfio-pci');
  assert.equal(link.code, 1);
  assert.match(link.stderr, /\/run\/vfioctl: is a symbolic link/);
  fs.rmSync(path.join(root, 'run/vfioctl'));
  fs.mkdirSync(path.join(root, 'run/vfioctl'), { mode: 0o777 });
  fs.chmodSync(path.join(root, 'run/vfioctl'), 0o777);
  const open = await run('bind', '01:00.0', '--variant', 'vfio-pci', '--json');
  assert.equal(open.code, 1);
  assert.match(open.stderr, /\/run\/vfioctl: is writable by others/);
  assert.equal(open.json().error.code, 'unsafe-state-dir');
  assert.equal(kernel.writes.length, 0);
});

test('a driver that is not registered under --root is not modprobed: clear failure, nothing written', async (t) => {
  const spec = labSpec({ drivers: { e1000e: 'e1000e', e1000: 'e1000', nvme: 'nvme' } });
  spec.devices = spec.devices.filter((d) => d.driver !== 'vfio-pci');
  const { run, kernel } = lab(t, spec);
  const r = await run('bind', '01:00.0', '--variant', 'vfio-pci', '--json');
  assert.equal(r.code, 1);
  assert.match(r.json().actions[0].reason, /not registered in the tree.*loads modules only into the live kernel/);
  assert.equal(kernel.writes.length, 0);
});

test('binder: modprobe through the runner with an argument array, then the driver name from /sys/module', async (t) => {
  const spec = labSpec({ drivers: { e1000e: 'e1000e', e1000: 'e1000', nvme: 'nvme' } });
  spec.devices = spec.devices.filter((d) => d.driver !== 'vfio-pci');
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, spec);
  const kernel = new FakeKernel(root, spec);
  const { runner, calls } = recordingRunner((file, args) => {
    if (file === 'modprobe' && args.at(-1) === 'vfio_pci') kernel.loadModule('vfio_pci', 'vfio-pci');
    return { exitCode: 0 };
  });
  const host = scanHost(kernel);
  const plan = planBind({
    host, selected: ['0000:01:00.0'], explicit: new Set(['0000:01:00.0']), group: false, force: false,
    choices: new Map([['0000:01:00.0', { driver: 'vfio-pci', module: 'vfio_pci', registered: false, matches: true }]]),
    uses: new Map(), noiommu: false, vfioDrivers: new Set(),
  });
  assert.equal(plan.actions[0]!.needsLoad, true);
  const res = await new Binder({ fs: kernel, runner, allowModprobe: true, exec: { command: 'test' } }).apply(plan);
  assert.deepEqual(calls, [{ file: 'modprobe', args: ['--', 'vfio_pci'] }]);
  assert.equal(res.exitCode, 0);
  assert.equal(res.actions[0]!.status, 'bound');
  // A failing modprobe changes nothing.
  const { runner: failing } = recordingRunner(() => ({ exitCode: 1, stderr: "modprobe: FATAL: Module nosuch not found" }));
  const plan2 = { ...plan, actions: [{ ...plan.actions[0]!, to: 'nosuch', module: 'nosuch' }] };
  const before = kernel.writes.length;
  const res2 = await new Binder({ fs: kernel, runner: failing, allowModprobe: true, exec: { command: 'test' } }).apply(plan2);
  assert.equal(res2.actions[0]!.status, 'failed');
  assert.match(res2.actions[0]!.reason!, /modprobe nosuch failed \(exit 1\): modprobe: FATAL/);
  assert.equal(kernel.writes.length, before);
});

test('permission denied on a sysfs write: exit 5, JSON still printed', async (t) => {
  const { kernel, run, at } = lab(t);
  kernel.failNext({ path: /driver_override$/, errno: 'EACCES' });
  const r = await run('bind', '01:00.0', '--variant', 'vfio-pci', '--json');
  assert.equal(r.code, 5);
  assert.equal(r.json().actions[0].status, 'failed');
  assert.match(r.json().actions[0].reason, /permission denied \(EACCES\)/);
  assert.equal(at('0000:01:00.0').driver, 'e1000e');
});
