/**
 * `vfioctl bind` / `unbind` against the real kernel: vfio-pci and back, the lab's
 * variant picked by `auto`, group refusal and `--group`, the in-use refusal for an
 * interface with an address, idempotence, and bad input that must change nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import {
  IN_LAB, NOT_IN_LAB, ORACLE, allBdfs, bindingState as state, hasCommand, labTopology, missing, oracle, roleBdf, run, sysfsBind, sysfsRestore,
  truthDevice, vfioctl, vfioctlJson,
} from '../lab/guest.js';

const topo = IN_LAB ? labTopology().name : '';
const only = (name: string) => (!IN_LAB ? NOT_IN_LAB : topo !== name ? `runs in the ${name} topology` : false);

async function needBind(t: any): Promise<boolean> {
  if (await hasCommand('bind') && await hasCommand('unbind')) return true;
  t.skip(missing('bind/unbind'));
  return false;
}

function action(json: any, bdf: string): any {
  const a = (json.actions as any[]).find((x) => x.bdf === bdf);
  assert.ok(a, `no action for ${bdf}: ${JSON.stringify(json)}`);
  return a;
}

test('e1000e to vfio-pci, unchanged on repeat, and back to e1000e', { skip: only('rootports') }, async (t) => {
  if (!(await needBind(t))) return;
  const bdf = roleBdf(labTopology(), 'e1000e');
  try {
    const first = await vfioctlJson('bind', bdf, '--variant', 'vfio-pci', '--json');
    assert.equal(first.run.code, 0, first.run.stderr);
    assert.equal(first.json.changed, true);
    assert.equal(action(first.json, bdf).status, 'bound');
    const d = truthDevice(bdf);
    assert.equal(d.driver, 'vfio-pci');
    assert.ok(d.vfioDev, 'vfio-dev/ appears');
    assert.ok(fs.existsSync(`/dev/vfio/${d.group}`), `/dev/vfio/${d.group} appears`);

    const again = await vfioctlJson('bind', bdf, '--variant', 'vfio-pci', '--json');
    assert.equal(again.run.code, 0, again.run.stderr);
    assert.equal(again.json.changed, false);
    assert.equal(action(again.json, bdf).status, 'unchanged');

    const back = await vfioctlJson('unbind', bdf, '--json');
    assert.equal(back.run.code, 0, back.run.stderr);
    assert.equal(truthDevice(bdf).driver, 'e1000e');
    assert.equal(truthDevice(bdf).override, null, 'override cleared');
  } finally {
    if (truthDevice(bdf).driver !== 'e1000e') sysfsRestore(bdf);
  }
});

test('--variant auto picks vfio_pci_lab for 8086:10d3 and loads it', { skip: only('rootports') }, async (t) => {
  if (!(await needBind(t))) return;
  const bdf = roleBdf(labTopology(), 'e1000e');
  assert.ok(!fs.existsSync('/sys/module/vfio_pci_lab'), 'the variant must not be loaded before');
  try {
    const r = await vfioctlJson('bind', bdf, '--variant', 'auto', '--json');
    assert.equal(r.run.code, 0, r.run.stderr);
    assert.equal(action(r.json, bdf).to, 'vfio_pci_lab');
    assert.ok(fs.existsSync('/sys/module/vfio_pci_lab'), 'module loaded');
    const d = truthDevice(bdf);
    assert.equal(d.driver, 'vfio_pci_lab');
    assert.ok(d.vfioDev, 'a vfio device node exists for the variant');
    // The kernel treats the variant as VFIO: the group opens the way QEMU opens it.
    const o = await oracle('info', bdf, [d.group!]);
    assert.ok(o.ok || o.stage === 'hot_reset_info', `group did not open: ${JSON.stringify(o)}`);
    const groups = await vfioctlJson('groups', '--json');
    const g = (groups.json.groups as any[]).find((x) => x.id === d.group);
    assert.equal(g.viable, true, 'a group on the variant is viable');
  } finally {
    await vfioctl('unbind', bdf);
    if (truthDevice(bdf).driver !== 'e1000e') sysfsRestore(bdf);
  }
  assert.equal(truthDevice(bdf).driver, 'e1000e');
});

test('an interface with an address is refused (exit 4) and left alone', { skip: only('rootports') }, async (t) => {
  if (!(await needBind(t))) return;
  const bdf = roleBdf(labTopology(), 'e1000e');
  const ifname = fs.readdirSync(`/sys/bus/pci/devices/${bdf}/net`)[0]!;
  // A loopback-range address: the NIC has no QEMU backend, and nothing leaves the VM anyway.
  assert.equal((await run('ip', ['link', 'set', 'dev', ifname, 'up'])).code, 0);
  assert.equal((await run('ip', ['addr', 'add', '127.77.0.1/24', 'dev', ifname])).code, 0);
  try {
    const before = state();
    const r = await vfioctl('bind', bdf, '--variant', 'vfio-pci');
    assert.equal(r.code, 4, `exit ${r.code}: ${r.stderr}`);
    assert.deepEqual(state(), before, 'nothing changed');
  } finally {
    await run('ip', ['addr', 'flush', 'dev', ifname]);
    await run('ip', ['link', 'set', 'dev', ifname, 'down']);
    if (truthDevice(bdf).driver !== 'e1000e') sysfsRestore(bdf);
  }
});

test('bad input changes nothing: unknown device (3), unknown driver (3), non-matching variant (4)', { skip: only('rootports') }, async (t) => {
  if (!(await needBind(t))) return;
  const nvme = roleBdf(labTopology(), 'nvme');
  const before = state();
  const cases: [string[], number][] = [
    [['bind', '0000:3f:1f.7', '--variant', 'vfio-pci'], 3],
    [['bind', nvme, '--variant', 'no_such_vfio_driver'], 3],
    // vfio_pci_lab lists only 8086:10d3; the kernel would bind it anyway (kernel.md §11 d).
    [['bind', nvme, '--variant', 'vfio_pci_lab'], 4],
  ];
  for (const [args, code] of cases) {
    const r = await vfioctl(...args);
    assert.equal(r.code, code, `vfioctl ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.deepEqual(state(), before, `vfioctl ${args.join(' ')} changed nothing`);
  }
});

test('the pair behind the PCIe-to-PCI bridge needs --group, then the group opens', { skip: only('pcibridge') }, async (t) => {
  if (!(await needBind(t))) return;
  const e1000 = roleBdf(labTopology(), 'e1000');
  const rtl = roleBdf(labTopology(), 'rtl8139');
  try {
    const before = state();
    const refused = await vfioctl('bind', e1000, '--variant', 'vfio-pci');
    assert.equal(refused.code, 4, `exit ${refused.code}: ${refused.stderr}`);
    assert.match(refused.stderr + refused.stdout, new RegExp(rtl.replace(/\./g, '\\.')), 'the refusal names the peer');
    assert.deepEqual(state(), before, 'nothing changed');

    const r = await vfioctlJson('bind', e1000, '--variant', 'vfio-pci', '--group', '--json');
    assert.equal(r.run.code, 0, r.run.stderr);
    assert.equal(truthDevice(e1000).driver, 'vfio-pci');
    assert.equal(truthDevice(rtl).driver, 'vfio-pci');
    const g = truthDevice(e1000).group!;
    const o = await oracle('info', e1000, [g]);
    assert.equal(o.ok, true, `VFIO group ${g} did not open: ${JSON.stringify(o)}`);
  } finally {
    await vfioctl('unbind', e1000, rtl);
    for (const b of [e1000, rtl]) if (truthDevice(b).driver === 'vfio-pci') sysfsRestore(b);
  }
  assert.equal(truthDevice(e1000).driver, 'e1000');
  assert.equal(truthDevice(rtl).driver, '8139cp');
});

test('the boot VGA device is refused (exit 4) and left alone', { skip: only('rootbus') }, async (t) => {
  if (!(await needBind(t))) return;
  const vga = allBdfs().find((b) => fs.existsSync(`/sys/bus/pci/devices/${b}/boot_vga`)
    && fs.readFileSync(`/sys/bus/pci/devices/${b}/boot_vga`, 'utf8').trim() === '1');
  assert.ok(vga, 'the rootbus topology has a boot VGA device');
  const before = state();
  const r = await vfioctl('bind', vga, '--variant', 'vfio-pci');
  assert.equal(r.code, 4, `exit ${r.code}: ${r.stderr}`);
  assert.deepEqual(state(), before, 'nothing changed');
});

test('unbind of a vfio device a user holds open is refused (exit 4) instead of hanging', { skip: only('rootports') }, async (t) => {
  if (!(await needBind(t))) return;
  const bdf = roleBdf(labTopology(), 'nvme');
  await sysfsBind(bdf, 'vfio-pci');
  const group = truthDevice(bdf).group!;
  const holder = spawn(ORACLE, ['hold', bdf, String(group)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      holder.stdout.once('data', (b: Buffer) => resolve(b.toString()));
      holder.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
    });
    assert.match(line, /"holding"/, line);
    const r = await vfioctl('unbind', bdf);
    assert.equal(r.code, 4, `exit ${r.code}: ${r.stderr}`);
    assert.equal(truthDevice(bdf).driver, 'vfio-pci', 'still bound');
  } finally {
    holder.kill('SIGTERM');
    await new Promise((r) => holder.once('exit', r));
    sysfsRestore(bdf);
  }
  assert.equal(truthDevice(bdf).driver, 'nvme');
});
