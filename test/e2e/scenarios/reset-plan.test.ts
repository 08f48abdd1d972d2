/**
 * `vfioctl reset-plan --json` against the kernel's own VFIO_DEVICE_GET_PCI_HOT_RESET_INFO
 * for every vfio-bound device of the topology; where the plan says `ready`, the
 * hot reset itself must succeed, and where it does not, the kernel must refuse.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import {
  IN_LAB, NOT_IN_LAB, allBdfs, hasCommand, missing, oracle, run, sysfsBind, sysfsRestore, truthDevice, vfioctlJson,
} from '../lab/guest.js';
import { eligible } from '../lab/capture-guest-lib.js';

const bound: string[] = [];

before(async () => {
  if (!IN_LAB) return;
  // Set-up with the kernel's own interface, so this runs before `bind` exists.
  // A PF with VFs stays on its driver (vfio-pci refuses it); its VFs are bound instead.
  for (const b of allBdfs().filter(eligible)) {
    const hasVfs = fs.readdirSync(`/sys/bus/pci/devices/${b}`).some((n) => n.startsWith('virtfn'));
    if (hasVfs) continue;
    await sysfsBind(b, 'vfio-pci');
    bound.push(b);
  }
});

after(() => {
  for (const b of bound) sysfsRestore(b);
});

/** The kernel's own log line for a secondary bus reset whose link did not come back. */
async function linkNeverCameBack(bridge: string | null): Promise<boolean> {
  if (!bridge) return false;
  const log = (await run('dmesg', [])).stdout;
  return log.includes(`${bridge}: Data Link Layer Link Active not set`);
}

const sortBy = <T>(xs: T[], key: (x: T) => string) => [...xs].sort((a, b) => key(a).localeCompare(key(b)));

test('reset-plan agrees with VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', { skip: IN_LAB ? false : NOT_IN_LAB }, async (t) => {
  if (!(await hasCommand('reset-plan'))) return t.skip(missing('reset-plan'));
  assert.ok(bound.length > 0, 'the topology must have vfio-bound devices');
  for (const bdf of bound) {
    await t.test(bdf, async (t) => {
      const dev = truthDevice(bdf);
      assert.equal(dev.driver, 'vfio-pci');
      const { run, json } = await vfioctlJson('reset-plan', bdf, '--json');
      assert.equal(run.code, 0, run.stderr);
      const plan = (json.plans as any[]).find((p) => p.device === bdf);
      assert.ok(plan, `no plan for ${bdf} in ${run.stdout}`);
      const hr = plan.hotReset;
      const info = await oracle('info', bdf, [dev.group!]);

      if (!info.ok) {
        assert.equal(info.stage, 'hot_reset_info', `the oracle could not open ${bdf}: ${JSON.stringify(info)}`);
        assert.equal(info.errno, 'ENODEV', `unexpected kernel answer ${JSON.stringify(info)}`);
        assert.equal(hr.scope, 'none', `kernel says ENODEV, plan says ${hr.scope}: ${hr.reason}`);
        assert.equal(hr.ready, false);
        return;
      }
      assert.notEqual(hr.scope, 'none', `kernel lists ${JSON.stringify(info.devices)}, plan says none: ${hr.reason}`);
      const kernel = sortBy(info.devices!.map((d) => ({ bdf: d.bdf, group: d.group })), (d) => d.bdf);
      const predicted = sortBy((hr.affected as any[]).map((a) => ({ bdf: a.bdf, group: a.group })), (d) => d.bdf);
      assert.deepEqual(predicted, kernel, 'affected devices and their groups');
      const kernelGroups = [...new Set(kernel.map((d) => d.group))].sort((a, b) => a - b);
      assert.deepEqual([...(hr.groups as number[])].sort((a, b) => a - b), kernelGroups, 'groups to own');

      // The device's own group first: the oracle gets the device fd from it.
      const groups = [dev.group!, ...kernelGroups.filter((g) => g !== dev.group)];
      const openable = groups.filter((g) => fs.existsSync(`/dev/vfio/${g}`));
      const res = await oracle('reset', bdf, hr.ready ? groups : openable);
      if (hr.ready) {
        assert.equal(res.ok, true, `plan is ready but the oracle failed: ${JSON.stringify(res)}`);
        if (res.reset?.errno === 'ENOTTY' && (await linkNeverCameBack(hr.bridge))) {
          // The kernel accepted the set and did the bus reset; QEMU's pcie-root-port then
          // never sets Data Link Layer Link Active, so the kernel reports ENOTTY afterwards.
          t.diagnostic(`${bdf}: reset performed, link of ${hr.bridge} not back (QEMU root port): ENOTTY`);
          return;
        }
        assert.deepEqual(res.reset, { ok: true }, `plan is ready but the kernel refused: ${JSON.stringify(res)}`);
      } else {
        assert.ok(!res.ok || res.reset?.ok === false, `plan says not ready (${JSON.stringify(hr.blockers)}) but the kernel reset it`);
      }
    });
  }
});
