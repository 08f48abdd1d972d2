import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { dracutModule, initramfsHook, udevRule, UnsafeValueError, type RuleEntry } from '../../src/provision/persist-files.js';

/**
 * The files persist installs so that the initramfs honours the bindings too: an initramfs-tools
 * hook and (where dracut is installed) a dracut module, each carrying the udev rule and the
 * VFIO modules. They are run here in a shell with the initramfs tools' functions stubbed.
 */

const ALIASES = 'alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\nalias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n';

function host(root: string, dracut: boolean) {
  buildTree(root, {
    osrelease: '6.1.0-test',
    modulesAlias: ALIASES,
    devices: [
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 2 },
      { bdf: '0000:00:02.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 3 },
      { bdf: '0000:02:00.0', parent: '0000:00:02.0', id: '15b3:101e', class: '020000', driver: 'mlx5_core', group: 4 },
    ],
  });
  if (dracut) fs.mkdirSync(path.join(root, 'usr/lib/dracut/modules.d'), { recursive: true });
}

function state(root: string): string {
  const file = path.join(root, 'desired.json');
  fs.writeFileSync(file, JSON.stringify({ schemaVersion: 1, devices: [
    { match: '0000:01:00.0', driver: 'vfio-pci' },
    { match: '0000:02:00.0', driver: 'auto' },
  ] }));
  return file;
}

const ENTRIES: RuleEntry[] = [
  { match: { bdf: '0000:01:00.0' }, driver: 'vfio-pci', module: 'vfio_pci' },
  { match: { vendor: '15b3', device: '101e' }, driver: 'mlx5_vfio_pci', module: 'mlx5_vfio_pci' },
];

const HOOK = 'etc/initramfs-tools/hooks/vfioctl';
const DRACUT = 'usr/lib/dracut/modules.d/90vfioctl/module-setup.sh';
const mode = (root: string, p: string) => fs.statSync(path.join(root, p)).mode & 0o7777;

test('initramfs hook: prereqs, the VFIO modules, the rule as generated; run with stubbed hook-functions it writes the rule into DESTDIR', (t) => {
  const hook = initramfsHook(ENTRIES);
  assert.match(hook, /^#!\/bin\/sh\n/);
  assert.match(hook, /^PREREQ="udev"$/m);
  assert.match(hook, /^for m in vfio_pci mlx5_vfio_pci; do$/m, 'vfio_pci and the variant module, once each');
  assert.equal(spawnSync('sh', ['-n', '-c', hook]).status, 0, 'valid sh');

  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const destdir = path.join(root, 'dest');
  const stubbed = hook.replace('. /usr/share/initramfs-tools/hook-functions', 'manual_add_modules() { echo "$1" >> "$DESTDIR.modules"; }');
  assert.notEqual(stubbed, hook, 'the hook sources hook-functions');
  const script = path.join(root, 'hook');
  fs.writeFileSync(script, stubbed, { mode: 0o755 });
  assert.equal(spawnSync(script, ['prereqs'], { encoding: 'utf8' }).stdout, 'udev\n');
  const r = spawnSync(script, [], { env: { PATH: process.env.PATH, DESTDIR: destdir }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(destdir, 'etc/udev/rules.d/60-vfioctl.rules'), 'utf8'), udevRule(ENTRIES, { hotplug: false }), 'the rule (without the hotplug unit), byte for byte');
  assert.equal(fs.readFileSync(`${destdir}.modules`, 'utf8'), 'vfio_pci\nmlx5_vfio_pci\n');
});

test('dracut module: included by default, depends on udev-rules, installs the modules and the rule into initdir', { skip: spawnSync('bash', ['-c', 'true']).status !== 0 && 'no bash' }, (t) => {
  const mod = dracutModule(ENTRIES);
  assert.match(mod, /^check\(\) \{\n {4}return 0\n\}$/m);
  assert.match(mod, /^ {4}echo udev-rules$/m);
  assert.match(mod, /^ {4}hostonly='' instmods vfio_pci mlx5_vfio_pci$/m);
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const initdir = path.join(root, 'initramfs');
  const file = path.join(root, 'module-setup.sh');
  fs.writeFileSync(file, mod);
  // dracut sources module-setup.sh and calls its functions; so does this, with instmods stubbed.
  const r = spawnSync('bash', ['-c', 'instmods() { echo "$hostonly|$*" > "$initdir.mods"; }; . "$1"; check && depends && installkernel && install', 'x', file], { env: { PATH: process.env.PATH, initdir }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'udev-rules\n');
  assert.equal(fs.readFileSync(path.join(initdir, 'etc/udev/rules.d/60-vfioctl.rules'), 'utf8'), udevRule(ENTRIES, { hotplug: false }));
  assert.equal(fs.readFileSync(`${initdir}.mods`, 'utf8'), '|vfio_pci mlx5_vfio_pci\n');
});

test('initramfs generators validate every value they write', () => {
  const bad: RuleEntry[][] = [
    [{ match: { bdf: '0000:01:00.0' }, driver: 'vfio-pci', module: 'vfio_pci; reboot' }],
    [{ match: { bdf: '0000:01:00.0' }, driver: 'vfio-pci', module: '$(reboot)' }],
    [{ match: { bdf: '0000:01:00.0' }, driver: "vfio'pci", module: 'vfio_pci' }],
    [{ match: { bdf: '0000:01:00.0\nVFIOCTL_RULES_END' }, driver: 'vfio-pci', module: 'vfio_pci' }],
    [{ match: { vendor: '15b3', device: '101e`' }, driver: 'vfio-pci', module: 'vfio_pci' }],
  ];
  for (const entries of bad) {
    assert.throws(() => initramfsHook(entries), UnsafeValueError, JSON.stringify(entries));
    assert.throws(() => dracutModule(entries), UnsafeValueError, JSON.stringify(entries));
  }
});

test('persist installs the hook (0755) and, where dracut is installed, the dracut module; --remove deletes both and says to rebuild', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root, true);
  const r = await cli(['persist', state(root), '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.rebuildInitramfs, true);
  assert.deepEqual(doc.files.slice(5).map((f: any) => [f.path, f.action]), [
    ['/etc/initramfs-tools/hooks/vfioctl', 'create'],
    ['/usr/lib/dracut/modules.d/90vfioctl/module-setup.sh', 'create'],
  ]);
  // The initramfs gets the installed rule's device lines without the hotplug unit (not in the initramfs).
  const installed = fs.readFileSync(path.join(root, 'etc/udev/rules.d/60-vfioctl.rules'), 'utf8');
  const rule = installed.split('\n').filter((l) => l.startsWith('ACTION')).map((l) => l.replace(', TAG+="systemd", ENV{SYSTEMD_WANTS}+="vfioctl-hotplug@%k.service"', '')).join('\n');
  assert.equal(rule.split('\n').length, 2);
  for (const p of [HOOK, DRACUT]) {
    const text = fs.readFileSync(path.join(root, p), 'utf8');
    assert.ok(text.includes(rule), `${p} carries the installed rule`);
    assert.doesNotMatch(text, /SYSTEMD_WANTS/, `${p}: no hotplug unit in the initramfs`);
    assert.match(text, /vfio_pci mlx5_vfio_pci/, `${p} adds the modules`);
    assert.equal(mode(root, p), 0o755, p);
  }

  // A hook someone made non-executable is put right (content alone would say unchanged).
  fs.chmodSync(path.join(root, HOOK), 0o644);
  const again = await cli(['persist', state(root), '--json'], root);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(again.json().files.filter((f: any) => f.action !== 'unchanged').map((f: any) => f.path), ['/etc/initramfs-tools/hooks/vfioctl']);
  assert.equal(mode(root, HOOK), 0o755);

  const rm = await cli(['persist', '--remove', '--json'], root);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(rm.json().rebuildInitramfs, true);
  assert.match(rm.stderr, /update-initramfs -u \(or dracut -f\)/);
  for (const p of [HOOK, DRACUT, 'etc/udev/rules.d/60-vfioctl.rules']) assert.equal(fs.existsSync(path.join(root, p)), false, p);
  const rm2 = await cli(['persist', '--remove', '--json'], root);
  assert.equal(rm2.json().rebuildInitramfs, false, 'nothing removed, nothing to rebuild');
  assert.doesNotMatch(rm2.stderr, /initramfs/);
});

test('persist without dracut installs no dracut module', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root, false);
  const r = await cli(['persist', state(root), '--dry-run', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.json().files.some((f: any) => f.path.includes('dracut')));
  assert.ok(r.json().files.some((f: any) => f.path === '/etc/initramfs-tools/hooks/vfioctl' && f.action === 'create'));
  assert.equal(fs.existsSync(path.join(root, 'etc')), false, 'dry run writes nothing');
});

test('persist is all-or-nothing across the initramfs files: a hook that cannot be written puts every other file back', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root, true);
  // An older rule is there; the hooks "directory" is a file, so the hook write fails late.
  fs.mkdirSync(path.join(root, 'etc/udev/rules.d'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/udev/rules.d/60-vfioctl.rules'), '# old\n');
  fs.mkdirSync(path.join(root, 'etc/initramfs-tools'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/initramfs-tools/hooks'), 'not a directory\n');
  const r = await cli(['persist', state(root), '--json'], root);
  assert.equal(r.code, 1, r.stderr);
  const doc = r.json();
  assert.equal(doc.changed, false);
  assert.equal(doc.rebuildInitramfs, false);
  assert.ok(doc.rollback, 'reports the rollback');
  assert.equal(fs.readFileSync(path.join(root, 'etc/udev/rules.d/60-vfioctl.rules'), 'utf8'), '# old\n', 'the old rule is back');
  for (const p of ['etc/vfioctl/desired.json', 'etc/systemd/system/vfioctl.service', 'etc/systemd/system/sysinit.target.wants/vfioctl.service', 'etc/systemd/system/vfioctl-hotplug@.service', DRACUT]) {
    assert.equal(fs.existsSync(path.join(root, p)), false, `${p} removed again`);
  }
  assert.equal(fs.existsSync(path.join(root, 'run/vfioctl/journal.json')), false, 'no journal left');
});
