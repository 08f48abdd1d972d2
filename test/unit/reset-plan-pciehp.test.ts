import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { tempRoot } from '../helpers/tree.js';

/**
 * Slot mode on a tree the real 6.1 kernel produced (test/fixtures/lab-pciehp: QEMU root ports
 * with native PCIe hotplug). The kernel's INFO answers are compared in reset-plan-lab.test.ts;
 * here the scope itself: device 0 below a pciehp port is a slot reset, a VF at device 1 of the
 * same bus falls back to a bus reset (pre-7.1 slot numbering, kernel.md §5.3, §11 (k)).
 */
const LAB = path.resolve(import.meta.dirname, '../../../test/fixtures/lab-pciehp/vfio');
const DEVICES = ['0000:01:00.0', '0000:02:00.1', '0000:02:00.7', '0000:02:01.0'];

async function scopes(root: string): Promise<Record<string, { scope: string; slot?: string; bridge: string; ready: boolean }>> {
  const r = await cli(['reset-plan', ...DEVICES, '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  return Object.fromEntries((r.json().plans as any[]).map((p) => [p.device, {
    scope: p.hotReset.scope, slot: p.hotReset.slot, bridge: p.hotReset.bridge, ready: p.hotReset.ready,
  }]));
}

const EXPECTED = {
  '0000:01:00.0': { scope: 'slot', slot: '1', bridge: '0000:00:02.0', ready: true },
  '0000:02:00.1': { scope: 'slot', slot: '2', bridge: '0000:00:03.0', ready: false },
  '0000:02:00.7': { scope: 'slot', slot: '2', bridge: '0000:00:03.0', ready: false },
  '0000:02:01.0': { scope: 'bus', slot: undefined, bridge: '0000:00:03.0', ready: false },
};

test('lab-pciehp: slot reset for device 0 below a pciehp port, bus reset for the VF at device 1', async () => {
  const got = await scopes(LAB);
  for (const [bdf, want] of Object.entries(EXPECTED)) {
    const g = got[bdf]!;
    assert.deepEqual({ ...g, slot: g.slot ?? undefined }, want, bdf);
  }
});

test('lab-pciehp without the slots\' module links (as on Debian 6.12): the port service still says pciehp', async () => {
  const { root, cleanup } = tempRoot();
  try {
    fs.cpSync(LAB, root, { recursive: true, verbatimSymlinks: true });
    const slots = path.join(root, 'sys/bus/pci/slots');
    for (const s of fs.readdirSync(slots)) fs.rmSync(path.join(slots, s, 'module'));
    const got = await scopes(root);
    for (const [bdf, want] of Object.entries(EXPECTED)) {
      const g = got[bdf]!;
      assert.deepEqual({ ...g, slot: g.slot ?? undefined }, want, bdf);
    }
    // And with neither source the slots are not known to reset: bus mode everywhere.
    for (const port of ['0000:00:02.0', '0000:00:03.0']) {
      fs.rmSync(path.join(root, `sys/devices/pci0000:00/${port}/${port}:pcie004/driver`));
    }
    const none = await scopes(root);
    for (const bdf of DEVICES) assert.equal(none[bdf]!.scope, 'bus', bdf);
  } finally {
    cleanup();
  }
});
