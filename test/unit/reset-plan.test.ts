import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planResets, slotReadingFor, type InUsePredicate, type ResetPlan } from '../../src/plan/reset-plan.js';
import { noBusResetQuirk } from '../../src/model/quirks.js';
import type { PciSlot } from '../../src/model/types.js';
import { resetHost, resetSlot, type ResetDev } from '../helpers/reset-host.js';

const notInUse: InUsePredicate = () => [];

function plan(devs: ResetDev[], bdf: string, opts: { slots?: PciSlot[]; release?: string | null; inUse?: InUsePredicate } = {}): ResetPlan {
  const host = resetHost(devs, opts.release === undefined ? '6.1.0-56-amd64' : opts.release);
  return planResets({ host, slots: opts.slots ?? [], inUse: opts.inUse ?? notInUse }, [bdf]).plans[0]!;
}
const affected = (p: ResetPlan) => p.hotReset.affected.map((a) => a.bdf);
const codes = (p: ResetPlan) => p.hotReset.blockers.map((b) => `${b.bdf} ${b.code}`);

const RP = (bdf = '0000:00:02.0', group = 1): ResetDev => ({ bdf, bridge: true, group });

test('root bus: scope none, ENODEV, no hot reset but a function reset (kernel.md §11 (g))', () => {
  const p = plan([{ bdf: '0000:00:02.0', resetMethods: ['flr', 'pm'], group: 3 }], '0000:00:02.0');
  assert.equal(p.hotReset.scope, 'none');
  assert.match(p.hotReset.reason, /root bus.*ENODEV/);
  assert.deepEqual(p.hotReset.affected, []);
  assert.deepEqual(p.hotReset.groups, []);
  assert.equal(p.hotReset.ready, false);
  assert.deepEqual(codes(p), ['0000:00:02.0 no-hot-reset']);
  assert.equal(p.hotReset.bridge, null);
  assert.equal(p.functionReset, true);
  assert.deepEqual(p.functionResetMethods, ['flr', 'pm']);
  assert.match(p.hotReset.change!, /flr\/pm on open and close/);
});

test('function reset: bus and cxl_bus do not count', () => {
  const p = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', resetMethods: ['bus', 'cxl_bus'] }], '0000:01:00.0');
  assert.equal(p.functionReset, false);
  assert.deepEqual(p.resetMethods, ['bus', 'cxl_bus']);
});

test('own root port: bus reset of that one device, ready when bound to vfio-pci', () => {
  const p = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 2 }], '0000:01:00.0');
  assert.equal(p.hotReset.scope, 'bus');
  assert.equal(p.hotReset.bridge, '0000:00:02.0');
  assert.deepEqual(p.hotReset.affected, [{ bdf: '0000:01:00.0', group: 2, driver: 'vfio-pci', bridge: false, inUse: false, inUseBy: [], vf: false, vfio: true }]);
  assert.deepEqual(p.hotReset.groups, [2]);
  assert.equal(p.hotReset.ready, true);
  assert.deepEqual(p.hotReset.blockers, []);
  assert.equal(p.hotReset.change, null);
});

test('own root port, device still on its host driver: not ready, bind it then assign its group', () => {
  const p = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 2, driver: 'e1000e' }], '0000:01:00.0');
  assert.equal(p.hotReset.scope, 'bus');
  assert.equal(p.hotReset.ready, false);
  assert.deepEqual(codes(p), ['0000:01:00.0 not-vfio']);
  assert.match(p.hotReset.blockers[0]!.reason, /host driver e1000e/);
  assert.equal(p.hotReset.change, 'bind 0000:01:00.0 to vfio-pci, then assign group 2 to the VM');
  assert.equal(p.hotReset.impossible, false);
});

const SWITCH: ResetDev[] = [
  RP(),
  { bdf: '0000:01:00.0', parent: '0000:00:02.0', bridge: true, group: 2 },
  { bdf: '0000:02:00.0', parent: '0000:01:00.0', bridge: true, group: 3 },
  { bdf: '0000:02:01.0', parent: '0000:01:00.0', bridge: true, group: 4 },
  { bdf: '0000:03:00.0', parent: '0000:02:00.0', group: 3 },
  { bdf: '0000:04:00.0', parent: '0000:02:01.0', group: 4, driver: 'nvme' },
];

test('switch downstream port: only the device below it (kernel.md §11 (g))', () => {
  const p = plan(SWITCH, '0000:03:00.0');
  assert.equal(p.hotReset.scope, 'bus');
  assert.equal(p.hotReset.bridge, '0000:02:00.0');
  assert.deepEqual(affected(p), ['0000:03:00.0']);
  assert.deepEqual(p.hotReset.groups, [3]);
  assert.equal(p.hotReset.ready, true);
});

test('a bridge below the reset bus: pre-order walk, bridge blocks, nothing can fix it', () => {
  const p = plan(SWITCH, '0000:01:00.0');
  assert.equal(p.hotReset.scope, 'bus');
  assert.equal(p.hotReset.bridge, '0000:00:02.0');
  assert.deepEqual(affected(p), ['0000:01:00.0', '0000:02:00.0', '0000:03:00.0', '0000:02:01.0', '0000:04:00.0']);
  assert.equal(p.hotReset.ready, false);
  assert.equal(p.hotReset.impossible, true);
  assert.deepEqual(codes(p).filter((c) => c.endsWith('bridge')), ['0000:01:00.0 bridge', '0000:02:00.0 bridge', '0000:02:01.0 bridge']);
  assert.ok(codes(p).includes('0000:04:00.0 not-vfio'));
  assert.match(p.hotReset.change!, /no binding can fix this/);
});

test('PCIe-to-PCI bridge with two conventional devices: both reset together (kernel.md §11 (g))', () => {
  const devs: ResetDev[] = [
    RP(),
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', bridge: true, driver: null, group: 5 },
    { bdf: '0000:02:01.0', parent: '0000:01:00.0', id: '8086:100e', group: 5 },
    { bdf: '0000:02:02.0', parent: '0000:01:00.0', id: '10ec:8139', group: 5 },
  ];
  for (const t of ['0000:02:01.0', '0000:02:02.0']) {
    const p = plan(devs, t);
    assert.equal(p.hotReset.scope, 'bus');
    assert.equal(p.hotReset.bridge, '0000:01:00.0');
    assert.deepEqual(affected(p), ['0000:02:01.0', '0000:02:02.0']);
    assert.deepEqual(p.hotReset.groups, [5]);
    assert.equal(p.hotReset.ready, true, 'the upstream bridge is not part of the reset');
  }
});

test('conventional bus holding a bridge: the bridge and everything below it are in scope', () => {
  const devs: ResetDev[] = [
    RP(),
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', bridge: true, driver: null, group: 5 },
    { bdf: '0000:02:01.0', parent: '0000:01:00.0', group: 5 },
    { bdf: '0000:02:02.0', parent: '0000:01:00.0', bridge: true, driver: null, group: 5 },
    { bdf: '0000:03:00.0', parent: '0000:02:02.0', group: 5 },
    { bdf: '0000:02:03.0', parent: '0000:01:00.0', group: 5 },
  ];
  const p = plan(devs, '0000:02:01.0');
  assert.deepEqual(affected(p), ['0000:02:01.0', '0000:02:02.0', '0000:03:00.0', '0000:02:03.0']);
  assert.deepEqual(codes(p), ['0000:02:02.0 bridge']);
  assert.equal(p.hotReset.ready, false);
});

test('two-function device: both functions; the host-bound one blocks, with the words to fix it (kernel.md §11 (g))', () => {
  const devs: ResetDev[] = [
    RP(),
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 15 },
    { bdf: '0000:01:00.1', parent: '0000:00:02.0', group: 16, driver: 'virtio-pci' },
  ];
  const inUse: InUsePredicate = (b) => (b === '0000:01:00.1' ? ['interface eth1 is up'] : []);
  const p = plan(devs, '0000:01:00.0', { inUse });
  assert.deepEqual(affected(p), ['0000:01:00.0', '0000:01:00.1']);
  assert.deepEqual(p.hotReset.groups, [15, 16]);
  assert.equal(p.hotReset.ready, false);
  assert.deepEqual(codes(p), ['0000:01:00.1 not-vfio']);
  assert.match(p.hotReset.blockers[0]!.reason, /virtio-pci.*interface eth1 is up/);
  assert.equal(p.hotReset.affected[1]!.inUse, true);
  assert.equal(p.hotReset.change, 'stop the host using 0000:01:00.1, then bind 0000:01:00.1 to vfio-pci too, then assign groups 15 and 16 to the same VM');

  const bound = plan(devs.map((d) => (d.bdf === '0000:01:00.1' ? { ...d, driver: 'vfio-pci' } : d)), '0000:01:00.1');
  assert.equal(bound.hotReset.ready, true);
  assert.deepEqual(bound.hotReset.groups, [15, 16]);
});

test('boolean in-use predicates are honoured', () => {
  const p = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0' }], '0000:01:00.0', { inUse: () => true });
  assert.equal(p.hotReset.affected[0]!.inUse, true);
  assert.deepEqual(p.hotReset.affected[0]!.inUseBy, []);
});

test('missing IOMMU group: not ready (INFO would fail with EPERM)', () => {
  const p = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: null }], '0000:01:00.0');
  assert.equal(p.hotReset.scope, 'bus');
  assert.deepEqual(p.hotReset.groups, []);
  assert.deepEqual(codes(p), ['0000:01:00.0 no-group']);
  assert.match(p.hotReset.change!, /enable the IOMMU/);
});

test('pciehp slot: slot reset of the slot\'s devices', () => {
  const devs: ResetDev[] = [RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 2 }, { bdf: '0000:01:00.1', parent: '0000:00:02.0', group: 2 }];
  const p = plan(devs, '0000:01:00.1', { slots: [resetSlot('5', '0000:01:00', 'pciehp')] });
  assert.equal(p.hotReset.scope, 'slot');
  assert.equal(p.hotReset.slot, '5');
  assert.equal(p.hotReset.bridge, '0000:00:02.0');
  assert.deepEqual(affected(p), ['0000:01:00.0', '0000:01:00.1']);
  assert.equal(p.hotReset.ready, true);
  assert.match(p.hotReset.reason, /pciehp/);
});

for (const driver of ['acpiphp', 'shpchp', null]) {
  test(`slot driven by ${driver ?? 'an unknown driver'}: falls back to a bus reset`, () => {
    const devs: ResetDev[] = [RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 2 }];
    const p = plan(devs, '0000:01:00.0', { slots: [resetSlot('1', '0000:01:00', driver)] });
    assert.equal(p.hotReset.scope, 'bus');
    assert.equal(p.hotReset.slot, null);
    assert.match(p.hotReset.reason, new RegExp(`${driver ?? 'unknown hotplug driver'}.*cannot reset slots`));
    assert.equal(p.hotReset.ready, true);
  });
}

test('NO_BUS_RESET quirk table (kernel.md §5.4)', () => {
  assert.ok(noBusResetQuirk('168c', '003c'));
  assert.ok(noBusResetQuirk('10de', '2342'));
  assert.ok(noBusResetQuirk('10de', '237f'));
  assert.equal(noBusResetQuirk('10de', '2380'), undefined);
  assert.equal(noBusResetQuirk('10de', '2330'), undefined);
  assert.ok(noBusResetQuirk('1B21', '1164'));
  assert.ok(noBusResetQuirk('177d', 'a100'));
  assert.equal(noBusResetQuirk('8086', '10d3'), undefined);
});

test('NO_BUS_RESET device: scope none; the flag on the bridge, or on a sibling, blocks too', () => {
  const dev = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', id: '168c:003c', resetMethods: ['pm'] }], '0000:01:00.0');
  assert.equal(dev.hotReset.scope, 'none');
  assert.match(dev.hotReset.reason, /NO_BUS_RESET.*ENODEV/);
  assert.deepEqual(dev.hotReset.affected, []);
  assert.deepEqual(codes(dev), ['0000:01:00.0 no-hot-reset']);

  const bridge = plan([{ ...RP(), id: '177d:a100' }, { bdf: '0000:01:00.0', parent: '0000:00:02.0' }], '0000:01:00.0');
  assert.equal(bridge.hotReset.scope, 'none');
  assert.match(bridge.hotReset.reason, /the bridge 0000:00:02.0/);

  const sibling = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0' }, { bdf: '0000:01:00.1', parent: '0000:00:02.0', id: '17cb:1103' }], '0000:01:00.0');
  assert.equal(sibling.hotReset.scope, 'none');

  const slotted = plan([RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', id: '10de:2342' }], '0000:01:00.0', { slots: [resetSlot('2', '0000:01:00', 'pciehp')] });
  assert.equal(slotted.hotReset.scope, 'none', 'the slot cannot reset it either');
});

test('VFs on a virtual bus: VF gets none; the PF\'s bus reset does not descend into the virtual bus', () => {
  const devs: ResetDev[] = [
    { ...RP(), secondaryBus: 1 },
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 2 },
    { bdf: '0000:02:00.0', parent: '0000:00:02.0', physfn: '0000:01:00.0', group: 3 },
    { bdf: '0000:02:00.1', parent: '0000:00:02.0', physfn: '0000:01:00.0', group: 4 },
  ];
  const vf = plan(devs, '0000:02:00.0');
  assert.equal(vf.hotReset.scope, 'none');
  assert.match(vf.hotReset.reason, /virtual bus/);
  const pf = plan(devs, '0000:01:00.0');
  assert.equal(pf.hotReset.scope, 'bus');
  assert.deepEqual(affected(pf), ['0000:01:00.0']);
  assert.equal(pf.hotReset.ready, true);
});

test('VFs on the PF\'s bus: included after the other functions; a VF caller and VF members block', () => {
  const devs: ResetDev[] = [
    RP(),
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 2 },
    { bdf: '0000:01:00.1', parent: '0000:00:02.0', physfn: '0000:01:00.0', group: 3 },
    { bdf: '0000:01:00.2', parent: '0000:00:02.0', group: 2 },
  ];
  const vf = plan(devs, '0000:01:00.1');
  assert.equal(vf.hotReset.scope, 'bus');
  assert.deepEqual(affected(vf), ['0000:01:00.0', '0000:01:00.2', '0000:01:00.1']);
  assert.deepEqual(codes(vf), ['0000:01:00.1 vf-caller']);
  assert.equal(vf.hotReset.impossible, true);
  const pf = plan(devs, '0000:01:00.0');
  assert.deepEqual(codes(pf), ['0000:01:00.1 other-dev-set']);
  assert.match(pf.hotReset.change!, /also hits VF 0000:01:00\.1, which each have a reset set of their own/);
  assert.equal(pf.hotReset.ready, false);
});

// PF at 01:00.0 with ARI VFs 01:00.1 … 01:00.7 and 01:01.0, 01:01.1 below a pciehp port.
const ARI: ResetDev[] = [
  RP(),
  { bdf: '0000:01:00.0', parent: '0000:00:02.0', id: '1b36:0010', group: 2 },
  ...['00.1', '00.2', '00.3', '00.4', '00.5', '00.6', '00.7', '01.0', '01.1'].map((x, i): ResetDev => ({ bdf: `0000:01:${x}`, parent: '0000:00:02.0', physfn: '0000:01:00.0', group: 10 + i })),
];
const ARI_SLOT = [resetSlot('1', '0000:01:00', 'pciehp')];

test('pre-7.1 pciehp numbering: a VF at device 0 gets the slot (device 0 only), one at device 1 the whole bus (kernel.md §11 (k))', () => {
  const at0 = plan(ARI, '0000:01:00.1', { slots: ARI_SLOT });
  assert.equal(at0.hotReset.scope, 'slot');
  assert.deepEqual(affected(at0), ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3', '0000:01:00.4', '0000:01:00.5', '0000:01:00.6', '0000:01:00.7']);
  assert.ok(codes(at0).includes('0000:01:00.1 vf-caller'));
  const at1 = plan(ARI, '0000:01:01.0', { slots: ARI_SLOT });
  assert.equal(at1.hotReset.scope, 'bus');
  assert.equal(at1.hotReset.affected.length, 10);
  assert.match(at1.hotReset.reason, /not in pciehp slot "1".*before 7.1/);
});

test('7.1 numbering: the pciehp slot holds the whole bus', () => {
  const p = plan(ARI, '0000:01:01.0', { slots: ARI_SLOT, release: '7.1.0' });
  assert.equal(p.hotReset.scope, 'slot');
  assert.equal(p.hotReset.affected.length, 10);
  assert.match(p.hotReset.reason, /7\.1 or later/);
});

test('slot numbering reading follows the kernel release', () => {
  assert.equal(slotReadingFor('6.1.0-56-amd64').reading, 'device-number');
  assert.equal(slotReadingFor('6.12.5').reading, 'device-number');
  assert.equal(slotReadingFor('7.0.3').reading, 'device-number');
  assert.equal(slotReadingFor('7.1.0-rc1').reading, 'whole-bus');
  assert.equal(slotReadingFor('8.0').reading, 'whole-bus');
  const unknown = slotReadingFor(null);
  assert.equal(unknown.reading, 'device-number');
  assert.equal(unknown.assumed, true);
});

test('pre-7.1 ARI multi-function device: function 8 meets slot-keyed functions and must call from device 0', () => {
  const devs: ResetDev[] = [RP(), { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 2 }, { bdf: '0000:01:01.0', parent: '0000:00:02.0', group: 3 }];
  const fn8 = plan(devs, '0000:01:01.0', { slots: ARI_SLOT });
  assert.equal(fn8.hotReset.scope, 'bus');
  assert.deepEqual(codes(fn8), ['0000:01:00.0 other-dev-set']);
  assert.match(fn8.hotReset.change!, /call the hot reset from 0000:01:00.0/);
  const fn0 = plan(devs, '0000:01:00.0', { slots: ARI_SLOT });
  assert.equal(fn0.hotReset.scope, 'slot');
  assert.deepEqual(affected(fn0), ['0000:01:00.0']);
  assert.equal(fn0.hotReset.ready, true);
});

test('nested switches: the endpoint alone below its downstream port; a port in the middle sweeps the subtree in pre-order', () => {
  const devs: ResetDev[] = [
    RP(),
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', bridge: true },
    { bdf: '0000:02:00.0', parent: '0000:01:00.0', bridge: true },
    { bdf: '0000:02:01.0', parent: '0000:01:00.0', bridge: true },
    { bdf: '0000:03:00.0', parent: '0000:02:00.0', bridge: true },
    { bdf: '0000:04:00.0', parent: '0000:03:00.0', bridge: true },
    { bdf: '0000:05:00.0', parent: '0000:04:00.0', group: 9 },
    { bdf: '0000:06:00.0', parent: '0000:02:01.0', group: 8 },
  ];
  const ep = plan(devs, '0000:05:00.0');
  assert.equal(ep.hotReset.bridge, '0000:04:00.0');
  assert.deepEqual(affected(ep), ['0000:05:00.0']);
  assert.equal(ep.hotReset.ready, true);
  const port = plan(devs, '0000:02:00.0');
  assert.deepEqual(affected(port), ['0000:02:00.0', '0000:03:00.0', '0000:04:00.0', '0000:05:00.0', '0000:02:01.0', '0000:06:00.0']);
  assert.equal(port.hotReset.impossible, true);
});

test('set of several devices: resets the set can do alone, and groups it would still need', () => {
  const devs: ResetDev[] = [
    RP(),
    { bdf: '0000:01:00.0', parent: '0000:00:02.0', group: 15 },
    { bdf: '0000:01:00.1', parent: '0000:00:02.0', group: 16, driver: 'e1000e' },
    RP('0000:00:03.0', 20),
    { bdf: '0000:03:00.0', parent: '0000:00:03.0', group: 17 },
    { bdf: '0000:00:04.0', group: 18 },
  ];
  const host = resetHost(devs);
  const r = planResets({ host, slots: [], inUse: notInUse }, ['0000:00:04.0', '0000:01:00.0', '0000:03:00.0']);
  const set = r.set!;
  assert.deepEqual(set.groups, [15, 17, 18]);
  assert.deepEqual(set.byItself, ['0000:03:00.0']);
  assert.deepEqual(set.needOutside, [{ device: '0000:01:00.0', groups: [16], devices: ['0000:01:00.1'] }]);
  assert.deepEqual(set.impossible.map((i) => i.device), ['0000:00:04.0']);

  const both = planResets({ host, slots: [], inUse: notInUse }, ['0000:01:00.0', '0000:01:00.1']).set!;
  assert.equal(both.resets.length, 1, 'both functions trigger the same bus reset');
  assert.deepEqual(both.resets[0]!.callers, ['0000:01:00.0', '0000:01:00.1']);
  assert.equal(both.resets[0]!.byItself, true);
  assert.equal(both.resets[0]!.ready, false, '0000:01:00.1 is still on e1000e');
  assert.deepEqual(both.needOutside, []);

  assert.equal(planResets({ host, slots: [], inUse: notInUse }, ['0000:03:00.0']).set, null);
});
