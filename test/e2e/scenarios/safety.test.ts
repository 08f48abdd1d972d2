/**
 * All-or-nothing on the real kernel: `bind --group` on the pair behind the PCIe-to-PCI
 * bridge, stopped by SIGTERM or SIGINT mid-change (rolled back before exiting) or killed by
 * SIGKILL (put back by the next vfioctl, whatever it is asked); the lock and the state
 * directory; a module that cannot load.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runPaused } from '../../helpers/paused.js';
import { validateJsonRun } from '../../helpers/schema.js';
import { IN_LAB, NOT_IN_LAB, REPO, bindingState as state, labTopology, roleBdf, run, sysfsRestore, truthDevice, vfioctl, vfioctlJson } from '../lab/guest.js';

const topo = IN_LAB ? labTopology().name : '';
const only = (name: string) => (!IN_LAB ? NOT_IN_LAB : topo !== name ? `runs in the ${name} topology` : false);

/** vfioctl paused before step `at` (the test hook), then `act` on it; resolves when it exits. */
const paused = (at: number, args: string[], act: (pid: number) => void) =>
  runPaused([path.join(REPO, 'bin/vfioctl'), ...args], at, { NO_COLOR: '1' }, act, REPO);

function pair(): [string, string] {
  return [roleBdf(labTopology(), 'e1000'), roleBdf(labTopology(), 'rtl8139')];
}

function putBack(bdfs: readonly string[]): void {
  for (const b of bdfs) if (truthDevice(b).driver === 'vfio-pci' || truthDevice(b).override !== null) sysfsRestore(b);
}

// Steps of `bind E1000 --group`: per device its record, driver_override, unbind, probe.
for (const [signal, at] of [['SIGTERM', 2], ['SIGINT', 2], ['SIGTERM', 5], ['SIGINT', 7]] as const) {
  test(`${signal} before step ${at} of bind --group: both devices as they were, exit 1`, { skip: only('pcibridge') }, async () => {
    const [e1000, rtl] = pair();
    const before = state();
    try {
      const r = await paused(at, ['bind', e1000, '--group', '--variant', 'vfio-pci', '--json'], (pid) => process.kill(pid, signal));
      assert.equal(r.signal, null, `killed instead of rolling back: ${r.stderr}`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`interrupted by ${signal}`));
      validateJsonRun(['bind', e1000, '--group', '--variant', 'vfio-pci', '--json'], r.code ?? -1, r.stdout);
      const doc = JSON.parse(r.stdout);
      assert.equal(doc.changed, false);
      assert.equal(doc.rollback.complete, true);
      assert.deepEqual(state(), before);
      assert.ok(!fs.existsSync('/run/vfioctl/journal.json'));
    } finally {
      putBack([e1000, rtl]);
    }
  });
}

for (const at of [2, 6]) {
  test(`SIGKILL before step ${at} of bind --group: the next vfioctl, on another device, puts the pair back`, { skip: only('pcibridge') }, async () => {
    const [e1000, rtl] = pair();
    const other = roleBdf(labTopology(), 'e1000e');
    const before = state();
    try {
      const r = await paused(at, ['bind', e1000, '--group', '--variant', 'vfio-pci'], (pid) => process.kill(pid, 'SIGKILL'));
      assert.equal(r.signal, 'SIGKILL');
      assert.notDeepEqual(state(), before, 'the kill left a change behind');
      const next = await vfioctlJson('unbind', other, '--json');
      assert.equal(next.run.code, 0, next.run.stderr);
      assert.match(next.run.stderr, /was interrupted; put back what it had changed/);
      assert.equal(next.json.recovered.complete, true);
      assert.deepEqual(state(), before);
    } finally {
      putBack([e1000, rtl]);
    }
  });
}

test('a lock file left by a dead or unrelated process blocks nothing; a world-writable state directory is refused', { skip: only('pcibridge') }, async () => {
  const e1000e = roleBdf(labTopology(), 'e1000e');
  const before = state();
  try {
    fs.mkdirSync('/run/vfioctl', { recursive: true, mode: 0o700 });
    for (const holder of ['2147483646', '1']) {
      fs.writeFileSync('/run/vfioctl/lock', `${holder}\n`);
      fs.writeFileSync('/run/vfioctl/lock.holder', `${holder}\n`);
      const r = await vfioctl('bind', e1000e, '--variant', 'vfio-pci');
      assert.equal(r.code, 0, `holder ${holder}: ${r.stderr}`);
      assert.equal(truthDevice(e1000e).driver, 'vfio-pci');
      assert.equal((await vfioctl('unbind', e1000e)).code, 0);
    }
    fs.chmodSync('/run/vfioctl', 0o777);
    const open = await vfioctl('bind', e1000e, '--variant', 'vfio-pci');
    assert.equal(open.code, 1);
    assert.match(open.stderr, /\/run\/vfioctl: is writable by others/);
    assert.deepEqual(state(), before);
    fs.chmodSync('/run/vfioctl', 0o700);
    assert.equal((await vfioctl('bind', e1000e, '--variant', 'vfio-pci')).code, 0, 'the next run succeeds');
  } finally {
    fs.chmodSync('/run/vfioctl', 0o700);
    await vfioctl('unbind', e1000e);
    putBack([e1000e]);
  }
});

test('a module that cannot load changes nothing (exit 1); once it can, the bind succeeds', { skip: only('rootports') }, async () => {
  const e1000e = roleBdf(labTopology(), 'e1000e');
  const before = state();
  const conf = '/etc/modprobe.d/vfioctl-lab-deny.conf';
  await run('modprobe', ['-r', 'vfio_pci_lab']);
  try {
    fs.mkdirSync(path.dirname(conf), { recursive: true });
    fs.writeFileSync(conf, 'install vfio_pci_lab /bin/false\n');
    const r = await vfioctlJson('bind', e1000e, '--variant', 'vfio_pci_lab', '--json');
    assert.equal(r.run.code, 1, r.run.stderr);
    assert.equal(r.json.actions[0].code, 'driver-unavailable');
    assert.match(r.json.actions[0].reason, /modprobe vfio_pci_lab failed/);
    assert.deepEqual(state(), before);
    fs.rmSync(conf);
    const ok = await vfioctlJson('bind', e1000e, '--variant', 'vfio_pci_lab', '--json');
    assert.equal(ok.run.code, 0, ok.run.stderr);
    assert.equal(truthDevice(e1000e).driver, 'vfio_pci_lab');
  } finally {
    fs.rmSync(conf, { force: true });
    await vfioctl('unbind', e1000e);
    putBack([e1000e]);
  }
  assert.deepEqual(state(), before);
});
