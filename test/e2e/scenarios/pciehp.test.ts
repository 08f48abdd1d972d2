/**
 * The pciehp topology: root ports whose slots belong to native PCIe hotplug (ACPI bridge
 * hotplug off), so the kernel uses a SLOT reset (kernel.md §5.1, §5.3, §11 (j), (k)).
 * Checks what sysfs shows for such slots, that reset-plan picks slot mode for device 0 and
 * bus mode for a VF at device 1 exactly as the kernel's INFO does, and that a slot reset
 * through VFIO_DEVICE_PCI_HOT_RESET succeeds and leaves the device in place (pciehp masks
 * its own presence/link events around the reset; no hot-removal follows).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import {
  IN_LAB, LAB_KERNEL, NOT_IN_LAB, allBdfs, labTopology, missing, hasCommand, oracle, roleBdf, run, sysfsBind, sysfsRestore,
  truthDevice, vfioctlJson, vfsOf,
} from '../lab/guest.js';

const topo = process.env.LAB_TOPOLOGY;
const skip = !IN_LAB ? NOT_IN_LAB : topo !== 'pciehp' ? 'runs in the pciehp topology' : false;
const DEV = '/sys/bus/pci/devices';
const SLOTS = '/sys/bus/pci/slots';
const bound: string[] = [];

before(async () => {
  if (skip) return;
  const t = labTopology();
  for (const b of [roleBdf(t, 'e1000e'), ...vfsOf(roleBdf(t, 'nvme'))]) {
    await sysfsBind(b, 'vfio-pci');
    bound.push(b);
  }
});

after(() => {
  for (const b of bound) sysfsRestore(b);
});

const busOf = (bdf: string) => bdf.slice(0, 7);
const deviceNumber = (bdf: string) => parseInt(bdf.slice(8, 10), 16);

test('every root port with a device below it has a pciehp slot at device 0 of its bus', { skip }, () => {
  const slots = fs.readdirSync(SLOTS).map((name) => ({
    name,
    address: fs.readFileSync(`${SLOTS}/${name}/address`, 'utf8').trim(),
    module: fs.existsSync(`${SLOTS}/${name}/module`) ? fs.readlinkSync(`${SLOTS}/${name}/module`).split('/').pop() : null,
  }));
  const ports = allBdfs().filter((b) => truthDevice(b).bridge);
  assert.equal(ports.length, 2, `root ports: ${ports.join(', ')}`);
  for (const port of ports) {
    const secondary = Number(fs.readFileSync(`${DEV}/${port}/secondary_bus_number`, 'utf8').trim());
    const bus = `0000:${secondary.toString(16).padStart(2, '0')}`;
    const slot = slots.find((s) => s.address.startsWith(`${bus}:`));
    assert.ok(slot, `no slot for bus ${bus} below ${port}: ${JSON.stringify(slots)}`);
    // pciehp registers its slot as device number 0 (6.1).
    assert.equal(slot.address, `${bus}:00`);
    // Debian's 6.1 links the slot to /sys/module/pciehp; 6.12 (built-in pciehp) gives no
    // module link, and vfioctl finds the driver through the port service instead.
    assert.equal(slot.module, LAB_KERNEL === 'cdev' ? null : 'pciehp', `slot ${slot.name} module link on the ${LAB_KERNEL} kernel`);
    // The port's hotplug service (BDF:pcie004) is bound to pciehp too (kernel.md §11 (j)).
    const services = fs.readdirSync(`${DEV}/${port}/`).filter((n) => n.startsWith(`${port}:pcie`));
    const hp = services.filter((n) => fs.existsSync(`${DEV}/${port}/${n}/driver`)
      && fs.readlinkSync(`${DEV}/${port}/${n}/driver`).endsWith('/pciehp'));
    assert.deepEqual(hp, [`${port}:pcie004`], `port services of ${port}: ${services.join(', ')}`);
  }
});

test('slot mode for device 0, bus mode for a VF at device 1, as the kernel answers', { skip }, async (t) => {
  if (!(await hasCommand('reset-plan'))) return t.skip(missing('reset-plan'));
  const vfs = vfsOf(roleBdf(labTopology(), 'nvme'));
  const atZero = vfs.filter((v) => deviceNumber(v) === 0);
  const beyond = vfs.filter((v) => deviceNumber(v) !== 0);
  assert.ok(atZero.length > 0 && beyond.length > 0, `VFs on both sides of device 0: ${vfs.join(', ')}`);
  for (const bdf of bound) {
    const { run: r, json } = await vfioctlJson('reset-plan', bdf, '--json');
    assert.equal(r.code, 0, r.stderr);
    const hr = (json.plans as any[]).find((p) => p.device === bdf).hotReset;
    const info = await oracle('info', bdf, [truthDevice(bdf).group!]);
    assert.equal(info.ok, true, JSON.stringify(info));
    const kernel = info.devices!.map((d) => d.bdf);
    if (deviceNumber(bdf) === 0) {
      assert.equal(hr.scope, 'slot', `${bdf}: ${hr.reason}`);
      assert.ok(kernel.every((b) => deviceNumber(b) === 0), `${bdf}: the kernel's slot list has only device 0: ${kernel}`);
    } else {
      assert.equal(hr.scope, 'bus', `${bdf}: ${hr.reason}`);
      assert.deepEqual([...kernel].sort(), allBdfs().filter((b) => busOf(b) === busOf(bdf)), `${bdf}: the whole bus`);
    }
    assert.deepEqual((hr.affected as any[]).map((a) => a.bdf), kernel, `${bdf}: affected devices, in the kernel's order`);
  }
});

test('a slot reset succeeds and the device stays bound (no hotplug removal)', { skip }, async (t) => {
  const bdf = roleBdf(labTopology(), 'e1000e');
  const group = truthDevice(bdf).group!;
  const started = process.hrtime.bigint();
  const res = await oracle('reset', bdf, [group]);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.diagnostic(`${bdf}: slot reset answered ${JSON.stringify(res.reset)} in ${ms.toFixed(0)} ms (oracle run included)`);
  assert.deepEqual(res.reset, { ok: true }, JSON.stringify(res));
  assert.equal(truthDevice(bdf).driver, 'vfio-pci', 'still bound after the reset');
  const log = (await run('dmesg', [])).stdout;
  for (const bad of ['Link Down', 'Card not present', 'Data Link Layer Link Active not set']) {
    assert.ok(!log.includes(bad), `dmesg has "${bad}" after the slot reset:\n${log.split('\n').filter((l) => l.includes(bad)).join('\n')}`);
  }
});
