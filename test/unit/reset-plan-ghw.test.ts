import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli } from '../helpers/cli.js';
import { extractSnapshot } from '../fixtures/ghw/snapshots.js';

/**
 * reset-plan on real machines' sysfs (ghw snapshots; no kernel oracle there). Expectations
 * were read off the trees by hand: `readlink sys/bus/pci/devices/BDF` gives the nesting.
 */
const plansOf = async (root: string, ...bdfs: string[]) => {
  const r = await cli(['reset-plan', ...bdfs, '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  return new Map<string, any>(r.json().plans.map((p: any) => [p.device, p.hotReset]));
};

test('ghw Ryzen: two-function NIC below a chipset switch port, pre-order sweep from a switch port, root bus none', async (t) => {
  const { root, cleanup } = extractSnapshot('ryzen');
  t.after(cleanup);
  const p = await plansOf(root, '0000:06:00.1', '0000:02:00.0', '0000:00:08.0');
  const nic = p.get('0000:06:00.1');
  assert.equal(nic.scope, 'bus');
  assert.equal(nic.bridge, '0000:02:04.0');
  assert.deepEqual(nic.affected.map((a: any) => a.bdf), ['0000:06:00.0', '0000:06:00.1']);
  // No IOMMU on this machine: nothing has a group, so INFO would fail with EPERM.
  assert.ok(nic.blockers.some((b: any) => b.code === 'no-group'));
  const port = p.get('0000:02:00.0');
  assert.equal(port.bridge, '0000:01:00.2');
  assert.deepEqual(port.affected.slice(0, 7).map((a: any) => a.bdf),
    ['0000:02:00.0', '0000:03:00.0', '0000:02:01.0', '0000:04:00.0', '0000:02:04.0', '0000:06:00.0', '0000:06:00.1']);
  assert.ok(port.blockers.some((b: any) => b.code === 'bridge' && b.bdf === '0000:02:04.0'));
  assert.equal(p.get('0000:00:08.0').scope, 'none');
});

test('ghw ThinkPad: NVMe alone below its root port, blocked only by its host driver', async (t) => {
  const { root, cleanup } = extractSnapshot('thinkpad');
  t.after(cleanup);
  const h = (await plansOf(root, '0000:04:00.0')).get('0000:04:00.0');
  assert.equal(h.scope, 'bus');
  assert.equal(h.bridge, '0000:00:06.0');
  assert.deepEqual(h.affected.map((a: any) => [a.bdf, a.group, a.driver]), [['0000:04:00.0', 14, 'nvme']]);
  assert.deepEqual(h.blockers.map((b: any) => b.code), ['not-vfio']);
  assert.equal(h.change, 'bind 0000:04:00.0 to vfio-pci, then assign group 14 to the VM');
});
