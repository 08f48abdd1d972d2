import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { cli } from '../helpers/cli.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { planBind, planUnbind, type BindInput, type DriverChoice } from '../../src/plan/bind-plan.js';
import type { Host } from '../../src/model/types.js';

const VFIO: DriverChoice = { driver: 'vfio-pci', module: 'vfio_pci', registered: true, matches: true };

function host(t: { after: (f: () => void) => void }): Host {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, labSpec());
  return scanHost(new FsRoot(root));
}

function input(h: Host, selected: string[], over: Partial<BindInput> = {}): BindInput {
  const all = [...h.devices.keys()];
  return {
    host: h, selected, explicit: new Set(selected), group: false, force: false,
    choices: new Map(all.map((b) => [b, VFIO])), uses: new Map(), noiommu: false, vfioDrivers: new Set(), ...over,
  };
}

test('a single device in its own group: one bind action', (t) => {
  const h = host(t);
  const p = planBind(input(h, ['0000:01:00.0']));
  assert.equal(p.refused, false);
  assert.equal(p.changes, true);
  assert.deepEqual(p.actions.map((a) => [a.bdf, a.kind, a.from, a.to]), [['0000:01:00.0', 'bind', 'e1000e', 'vfio-pci']]);
});

test('group: a peer on a host driver refuses the plan, naming it; --group adds endpoints only', (t) => {
  const h = host(t);
  const p = planBind(input(h, ['0000:03:01.0']));
  assert.equal(p.refused, true);
  assert.equal(p.changes, false);
  assert.equal(p.actions[0]!.refusal, 'group');
  assert.match(p.actions[0]!.reason!, /IOMMU group 4 would not be viable: 0000:03:02\.0 \(e1000\) would keep a host driver; use --group/);
  const g = planBind(input(h, ['0000:03:01.0'], { group: true }));
  assert.deepEqual(g.actions.map((a) => [a.bdf, a.kind, a.pulledIn]), [['0000:03:01.0', 'bind', false], ['0000:03:02.0', 'bind', true]]);
  // --force binds the one device anyway, with a warning.
  const f = planBind(input(h, ['0000:03:01.0'], { force: true }));
  assert.equal(f.actions[0]!.kind, 'bind');
  assert.match(f.actions[0]!.warnings[0]!, /overridden by --force/);
});

test('a refusal stops the whole run: other actions are not attempted', (t) => {
  const h = host(t);
  const p = planBind(input(h, ['0000:01:00.0', '0000:00:04.0'], { uses: new Map([['0000:00:04.0', [{ code: 'boot-vga', detail: 'boot VGA device (boot_vga=1)' }]]]) }));
  assert.equal(p.refused, true);
  assert.deepEqual(p.actions.map((a) => [a.kind, a.refusal]), [['refused', 'in-use'], ['unchanged', 'not-attempted']]);
});

test('host uses: net-up only warns; a vfio device is judged only by vfio-open', (t) => {
  const h = host(t);
  const up = planBind(input(h, ['0000:01:00.0'], { uses: new Map([['0000:01:00.0', [{ code: 'net-up', detail: 'interface eth0 is up' }]]]) }));
  assert.equal(up.actions[0]!.kind, 'bind');
  assert.deepEqual(up.actions[0]!.warnings, ['interface eth0 is up']);
  const variant: DriverChoice = { driver: 'mlx5_vfio_pci', module: 'mlx5_vfio_pci', registered: true, matches: true };
  const open = planBind(input(h, ['0000:00:05.0'], {
    choices: new Map([['0000:00:05.0', variant]]),
    uses: new Map([['0000:00:05.0', [{ code: 'vfio-open', detail: 'a VFIO user has the device open (enable=1)' }]]]),
  }));
  assert.equal(open.actions[0]!.refusal, 'in-use');
  assert.match(open.actions[0]!.reason!, /unbinding would block/);
});

test('variant mismatch, bridge, no group, SR-IOV PF; already bound is unchanged', (t) => {
  const h = host(t);
  const mismatch = planBind(input(h, ['0000:00:03.0'], { choices: new Map([['0000:00:03.0', { ...VFIO, driver: 'vfio_pci_lab', module: 'vfio_pci_lab', matches: false }]]) }));
  assert.equal(mismatch.actions[0]!.refusal, 'variant-mismatch');
  assert.equal(planBind(input(h, ['0000:02:00.0'])).actions[0]!.refusal, 'bridge');
  assert.equal(planBind(input(h, ['0000:02:00.0'], { force: true })).actions[0]!.refusal, 'bridge', '--force cannot make the kernel bind a bridge');
  assert.deepEqual(planBind(input(h, ['0000:02:00.0'], { explicit: new Set() })).actions, [], 'a bridge reached through group:N is skipped');
  const same = planBind(input(h, ['0000:00:05.0']));
  assert.equal(same.actions[0]!.kind, 'unchanged');
  assert.equal(same.changes, false);
  const noGroup: Host = { ...h, devices: new Map([...h.devices].map(([b, d]) => [b, b === '0000:01:00.0' ? { ...d, iommuGroup: null } : d])) };
  assert.equal(planBind(input(noGroup, ['0000:01:00.0'])).actions[0]!.refusal, 'no-iommu-group');
  assert.equal(planBind(input(noGroup, ['0000:01:00.0'], { noiommu: true })).actions[0]!.kind, 'bind');
  const pf: Host = { ...h, devices: new Map([...h.devices].map(([b, d]) => [b, b === '0000:01:00.0' ? { ...d, sriovNumVfs: 2, sriovTotalVfs: 7 } : d])) };
  assert.equal(planBind(input(pf, ['0000:01:00.0'])).actions[0]!.refusal, 'sriov-vfs');
});

test('unbind plan: recorded driver, --to, not on vfio, open device', (t) => {
  const h = host(t);
  const base = { host: h, force: false, to: null, records: new Map(), uses: new Map(), vfioDrivers: new Set<string>() };
  const rec = planUnbind({ ...base, selected: ['0000:00:05.0'], records: new Map([['0000:00:05.0', { driver: 'virtio-pci', module: 'virtio_pci' }]]) });
  assert.deepEqual(rec.actions.map((a) => [a.kind, a.from, a.to]), [['release', 'vfio-pci', 'virtio-pci']]);
  const to = planUnbind({ ...base, selected: ['0000:00:05.0'], to: { driver: 'pci-stub', module: 'pci_stub' } });
  assert.equal(to.actions[0]!.to, 'pci-stub');
  const host_ = planUnbind({ ...base, selected: ['0000:01:00.0'] });
  assert.equal(host_.actions[0]!.kind, 'unchanged');
  assert.equal(host_.changes, false);
  const open = planUnbind({ ...base, selected: ['0000:00:05.0'], uses: new Map([['0000:00:05.0', [{ code: 'vfio-open', detail: 'x' }]]]) });
  assert.equal(open.refused, true);
});

test('variants --json: ranked candidates, alias, wildcards, chosen; show lists them', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, labSpec());
  const r = await cli(['variants', '01:00.0', '00:03.0', '02:00.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.schemaVersion, 1);
  const [nvme, e1000e, bridge] = doc.devices;
  assert.equal(e1000e.bdf, '0000:01:00.0');
  assert.equal(e1000e.modalias, 'pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00');
  assert.deepEqual(e1000e.candidates, [
    { module: 'vfio_pci_lab', driver: 'vfio_pci_lab', alias: 'vfio_pci:v00008086d000010D3sv*sd*bc*sc*i*', wildcards: 5, loaded: true, present: true },
    { module: 'vfio_pci', driver: 'vfio-pci', alias: 'vfio_pci:v*d*sv*sd*bc*sc*i*', wildcards: 7, loaded: true, present: true },
  ]);
  assert.equal(e1000e.chosen, 'vfio_pci_lab');
  assert.deepEqual([nvme.chosen, nvme.chosenDriver], ['vfio_pci', 'vfio-pci']);
  assert.equal(bridge.chosen, null);
  const human = await cli(['variants', '01:00.0'], root);
  assert.match(human.stdout, /1\. vfio_pci_lab +5 wildcards/);
  assert.match(human.stdout, /auto: vfio_pci_lab/);
  const show = await cli(['show', '01:00.0', '--json'], root);
  assert.equal(show.json().variants.chosen, 'vfio_pci_lab');
  assert.match((await cli(['show', '01:00.0'], root)).stdout, /vfio variants: +vfio_pci_lab \(5\), vfio_pci \(7\) -> auto: vfio_pci_lab/);
});
