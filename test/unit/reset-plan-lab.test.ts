import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';

/**
 * Predictions against the real kernel: every lab fixture (test/fixtures/lab-*, captured on
 * 6.1 under QEMU) carries oracle.json with what VFIO_DEVICE_GET_PCI_HOT_RESET_INFO answered
 * for each vfio-bound device. The plan must list the same devices, in the same order, with
 * the same groups, and say `none` exactly where the kernel said ENODEV.
 */
const FIXTURES = path.resolve(import.meta.dirname, '../../../test/fixtures');

interface OracleInfo {
  ok: boolean;
  errno?: string;
  stage?: string;
  devices?: { bdf: string; group: number }[];
}

const labs = fs.existsSync(FIXTURES)
  ? fs.readdirSync(FIXTURES).filter((n) => n.startsWith('lab-') && fs.existsSync(path.join(FIXTURES, n, 'oracle.json')) && fs.existsSync(path.join(FIXTURES, n, 'vfio')))
  : [];

test('lab fixtures are present to compare against', () => {
  assert.ok(labs.length > 0, `no lab-*/oracle.json under ${FIXTURES}`);
});

for (const lab of labs) {
  const oracle = JSON.parse(fs.readFileSync(path.join(FIXTURES, lab, 'oracle.json'), 'utf8')) as { hotResetInfo?: Record<string, OracleInfo> };
  const info = Object.entries(oracle.hotResetInfo ?? {});
  test(`${lab}: reset-plan matches the kernel's HOT_RESET_INFO for every vfio-bound device`, async () => {
    assert.ok(info.length > 0, 'oracle has no hotResetInfo');
    const r = await cli(['reset-plan', ...info.map(([bdf]) => bdf), '--json'], path.join(FIXTURES, lab, 'vfio'));
    assert.equal(r.code, 0, r.stderr);
    const plans = new Map<string, any>(r.json().plans.map((p: any) => [p.device, p]));
    for (const [bdf, answer] of info) {
      const h = plans.get(bdf).hotReset;
      if (answer.ok) {
        assert.notEqual(h.scope, 'none', `${bdf}: kernel answered, plan says none`);
        assert.deepEqual(h.affected.map((a: any) => ({ bdf: a.bdf, group: a.group })), answer.devices, `${bdf}: affected devices and groups`);
        assert.deepEqual(h.groups, [...new Set(answer.devices!.map((d) => d.group))].sort((a, b) => a - b));
      } else if (answer.stage === 'hot_reset_info' && answer.errno === 'ENODEV') {
        assert.equal(h.scope, 'none', `${bdf}: kernel said ENODEV, plan says ${h.scope}`);
        assert.equal(h.ready, false);
      } else if (answer.stage === 'hot_reset_info' && answer.errno === 'EPERM') {
        assert.ok(h.blockers.some((b: any) => b.code === 'no-group'), `${bdf}: kernel said EPERM`);
      }
      // Other failures (opening the group) say nothing about the reset scope.
    }
  });
}
