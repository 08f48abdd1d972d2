import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { hotplugUnit, systemdQuote, systemdUnit, udevRule, UnsafeValueError } from '../../src/provision/persist-files.js';

const ALIASES = 'alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\nalias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n';

function host(root: string) {
  buildTree(root, {
    osrelease: '6.1.0-test',
    modulesAlias: ALIASES,
    devices: [
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 2 },
      { bdf: '0000:00:02.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 3 },
      { bdf: '0000:02:00.0', parent: '0000:00:02.0', id: '15b3:101e', class: '020000', driver: 'mlx5_core', group: 4 },
      { bdf: '0000:00:03.0', id: '10de:2330', class: '030200', group: 5 },
    ],
    net: { eth2: '0000:01:00.0' },
  });
}

function writeState(root: string, doc: unknown): string {
  const file = path.join(root, 'desired.json');
  fs.writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}

const read = (root: string, p: string) => fs.readFileSync(path.join(root, p), 'utf8');

test('persist writes the state, a udev rule and an enabled unit; names resolve to addresses; idempotent; --remove undoes it', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root);
  const file = writeState(root, { schemaVersion: 1, devices: [
    { match: 'eth2', driver: 'vfio-pci' },
    { match: 'group:4', driver: 'auto' },
    { match: '10de:2330', driver: 'auto' },
    { match: '0000:00:02.0', driver: 'host' },
  ] });
  const r = await cli(['persist', file, '--json'], root, { env: { NO_COLOR: '1' } });
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.changed, true);
  assert.deepEqual(doc.files.map((f: any) => [f.path, f.action]), [
    ['/etc/vfioctl/desired.json', 'create'],
    ['/etc/udev/rules.d/60-vfioctl.rules', 'create'],
    ['/etc/systemd/system/vfioctl.service', 'create'],
    ['/etc/systemd/system/sysinit.target.wants/vfioctl.service', 'create'],
    ['/etc/systemd/system/vfioctl-hotplug@.service', 'create'],
    ['/etc/initramfs-tools/hooks/vfioctl', 'create'],
  ]);
  assert.equal(doc.rebuildInitramfs, true);
  assert.match(r.stderr, /rebuild the initramfs \(update-initramfs -u/);
  const installed = JSON.parse(read(root, 'etc/vfioctl/desired.json'));
  assert.deepEqual(installed.devices, [
    { match: '0000:00:02.0', driver: 'host' },
    { match: '0000:01:00.0', driver: 'vfio-pci' },
    { match: '0000:02:00.0', driver: 'auto' },
    { match: '10de:2330', driver: 'auto' },
  ]);
  const rule = read(root, 'etc/udev/rules.d/60-vfioctl.rules');
  assert.match(rule, /^ACTION=="add", SUBSYSTEM=="pci", KERNEL=="0000:01:00.0", ATTR\{driver_override\}="vfio-pci", RUN\{builtin\}\+="kmod load vfio_pci", TAG\+="systemd", ENV\{SYSTEMD_WANTS\}\+="vfioctl-hotplug@%k.service"$/m);
  assert.match(rule, /KERNEL=="0000:02:00.0", ATTR\{driver_override\}="mlx5_vfio_pci", RUN\{builtin\}\+="kmod load mlx5_vfio_pci"/, 'auto picks the matching variant');
  assert.match(rule, /ATTR\{vendor\}=="0x10de", ATTR\{device\}=="0x2330", ATTR\{driver_override\}="vfio-pci"/);
  assert.doesNotMatch(rule, /0000:00:02.0/, 'host entries get no rule');
  const unit = read(root, 'etc/systemd/system/vfioctl.service');
  assert.match(unit, /^ExecStart="\/usr\/bin\/env" "vfioctl" "apply" "--skip-missing" "\/etc\/vfioctl\/desired.json"$/m, 'a device that is gone does not keep the others from binding');
  assert.equal(rule.split('\n').filter((l) => l.startsWith('ACTION')).length, 3);
  assert.ok(rule.split('\n').filter((l) => l.startsWith('ACTION')).every((l) => l.endsWith(', TAG+="systemd", ENV{SYSTEMD_WANTS}+="vfioctl-hotplug@%k.service"')), 'every device line starts the hotplug unit');
  const hot = read(root, 'etc/systemd/system/vfioctl-hotplug@.service');
  assert.match(hot, /^ExecStart="\/usr\/bin\/env" "vfioctl" "apply" "--skip-missing" "--only" "%I" "\/etc\/vfioctl\/desired.json"$/m);
  assert.match(hot, /^SyslogIdentifier=vfioctl$/m);
  assert.match(hot, /^Environment=VFIOCTL_LOCK_TIMEOUT=60$/m, 'instances started together wait for the lock');
  assert.match(hot, /^After=systemd-udevd.service vfioctl.service$/m);
  assert.doesNotMatch(hot, /RemainAfterExit/, 'a device added again starts it again');
  assert.match(unit, /^DefaultDependencies=no$/m);
  assert.match(unit, /^SyslogIdentifier=vfioctl$/m, 'journal lines tagged vfioctl, not env');
  assert.match(unit, /^Before=systemd-udev-trigger.service systemd-modules-load.service network-pre.target/m);
  assert.equal(fs.readlinkSync(path.join(root, 'etc/systemd/system/sysinit.target.wants/vfioctl.service')), '../vfioctl.service');

  const again = await cli(['persist', file, '--json'], root);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.json().changed, false);
  assert.equal(again.json().rebuildInitramfs, false);
  assert.ok(again.json().files.every((f: any) => f.action === 'unchanged'));

  const dry = await cli(['persist', '--remove', '--dry-run'], root);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would remove \/etc\/udev\/rules.d\/60-vfioctl.rules/);
  assert.ok(fs.existsSync(path.join(root, 'etc/udev/rules.d/60-vfioctl.rules')));

  const rm = await cli(['persist', '--remove', '--json'], root);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(rm.json().changed, true);
  assert.equal(rm.json().rebuildInitramfs, true);
  assert.match(rm.stderr, /initramfs still holds the rule until it is rebuilt: run update-initramfs -u/);
  assert.equal(rm.json().files.find((f: any) => f.path === '/usr/lib/dracut/modules.d/90vfioctl/module-setup.sh').action, 'absent');
  for (const p of ['etc/systemd/system/vfioctl-hotplug@.service', 'etc/initramfs-tools/hooks/vfioctl', 'etc/vfioctl/desired.json', 'etc/udev/rules.d/60-vfioctl.rules', 'etc/systemd/system/vfioctl.service', 'etc/systemd/system/sysinit.target.wants/vfioctl.service']) {
    assert.equal(fs.existsSync(path.join(root, p)), false, p);
  }
  assert.equal((await cli(['persist', '--remove', '--json'], root)).json().changed, false);
});

test('persist --dry-run shows the files and writes nothing', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root);
  const file = writeState(root, { schemaVersion: 1, devices: [{ match: '0000:01:00.0', driver: 'vfio-pci' }] });
  const r = await cli(['persist', file, '--dry-run'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /would create \/etc\/udev\/rules.d\/60-vfioctl.rules\n {4}# Generated by vfioctl persist/);
  assert.match(r.stdout, / {4}ExecStart=/);
  const j = await cli(['persist', file, '--dry-run', '--json'], root);
  assert.equal(j.json().changed, true, 'as bind --dry-run: a real run would change the host');
  assert.equal(fs.existsSync(path.join(root, 'etc')), false);
});

test('persist rejects bad input before writing anything', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root);
  const cases: [unknown, number, RegExp][] = [
    [{ schemaVersion: 1, devices: [{ match: '0000:01:00.0', driver: 'vfio-pci"; RUN+="/bin/sh' }] }, 2, /devices\[0\]\.driver: .* is not a driver name/],
    [{ schemaVersion: 1, devices: [{ match: '$(reboot)', driver: 'vfio-pci' }] }, 2, /devices\[0\]\.match/],
    [{ schemaVersion: 1, devices: [{ match: '0000:09:00.0', driver: 'vfio-pci' }] }, 3, /no such PCI device/],
    [{ schemaVersion: 1, devices: [{ match: '0000:01:00.0', driver: 'no_such_variant' }] }, 3, /driver "no_such_variant"/],
    [{ schemaVersion: 1, devices: [{ match: 'eth2', driver: 'vfio-pci' }, { match: '0000:01:00.0', driver: 'host' }] }, 2, /line 1 \("eth2"\)/],
  ];
  for (const [doc, code, re] of cases) {
    const r = await cli(['persist', writeState(root, doc)], root);
    assert.equal(r.code, code, `${JSON.stringify(doc)}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(fs.existsSync(path.join(root, 'etc')), false, 'nothing written');
  }
  assert.equal((await cli(['persist'], root)).code, 2);
  assert.equal((await cli(['persist', 'x.json', '--remove'], root)).code, 2);
});

test('generators refuse or quote hostile values', () => {
  assert.throws(() => udevRule([{ match: { bdf: '0000:01:00.0' }, driver: 'vfio-pci", RUN+="x', module: 'vfio_pci' }]), UnsafeValueError);
  assert.throws(() => udevRule([{ match: { bdf: '0000:01:00.*' }, driver: 'vfio-pci', module: 'vfio_pci' }]), UnsafeValueError);
  assert.throws(() => udevRule([{ match: { vendor: '10de"', device: '2330' }, driver: 'vfio-pci', module: 'vfio_pci' }]), UnsafeValueError);
  assert.throws(() => udevRule([{ match: { bdf: '0000:01:00.0' }, driver: 'vfio-pci', module: '%k$kernel' }]), UnsafeValueError);
  assert.equal(systemdQuote('/opt/my tools/vfioctl'), '"/opt/my tools/vfioctl"');
  assert.equal(systemdQuote('a"b\\c%d$e'), '"a\\"b\\\\c%%d$$e"');
  assert.throws(() => systemdQuote('a\nExecStartPre=/bin/sh'), UnsafeValueError);
  assert.match(systemdUnit(['/opt/v 1/vfioctl']), /^ExecStart="\/opt\/v 1\/vfioctl" "apply"/m);
});

/** The real tools, where this machine has them. */
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

test('systemd-analyze verify accepts the generated unit', { skip: !has('systemd-analyze') && 'systemd-analyze not installed (apt-get install systemd)' }, (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const unit = path.join(root, 'vfioctl.service');
  fs.writeFileSync(unit, systemdUnit(['/usr/bin/env', 'vfioctl']).replace('ConditionPathExists=/etc/vfioctl/desired.json', `ConditionPathExists=${root}/desired.json`));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
  // Lines about other units on this machine are not ours; anything naming our file is.
  const ours = (r.stderr + r.stdout).split('\n').filter((l) => l.includes('vfioctl'));
  assert.deepEqual(ours, [], r.stderr);
  assert.equal(r.status, 0, r.stderr);
});

test('systemd-analyze verify accepts the hotplug unit (as an instance: systemd 252 does not verify a bare template)', { skip: !has('systemd-analyze') && 'systemd-analyze not installed (apt-get install systemd)' }, (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const text = hotplugUnit(['/usr/bin/env', 'vfioctl'], `${root}/desired.json`);
  assert.match(text, /"apply" "--skip-missing" "--only" "%I"/);
  const unit = path.join(root, 'vfioctl-hotplug-0000-01-00.0.service');
  fs.writeFileSync(unit, text.replace(/%I/g, '0000:01:00.0'));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
  const ours = (r.stderr + r.stdout).split('\n').filter((l) => l.includes('vfioctl'));
  assert.deepEqual(ours, [], r.stderr);
  assert.equal(r.status, 0, r.stderr);
});

test('udevadm verify accepts the generated rule', { skip: !(has('udevadm') && spawnSync('udevadm', ['verify', '--help']).status === 0) && 'udevadm verify needs systemd 254 or later (Debian 12 ships 252)' }, (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const rule = path.join(root, '60-vfioctl.rules');
  fs.writeFileSync(rule, udevRule([
    { match: { bdf: '0000:01:00.0' }, driver: 'vfio-pci', module: 'vfio_pci' },
    { match: { vendor: '10de', device: '2330' }, driver: 'mlx5_vfio_pci', module: 'mlx5_vfio_pci' },
  ]));
  const out = execFileSync('udevadm', ['verify', rule], { encoding: 'utf8' });
  assert.match(out, /Success|no issues|^$/im);
});
