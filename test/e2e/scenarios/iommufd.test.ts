/**
 * The iommufd era against the real kernel. On the lab's cdev kernel (6.12, IOMMUFD +
 * VFIO_DEVICE_CDEV): `reset-plan`'s iommufd answer against what VFIO_DEVICE_GET_PCI_HOT_RESET_INFO
 * reports through the cdev path, for every vfio-bound device opened alone, with its whole
 * reset set in one iommufd context, and with the set split between two processes (two
 * contexts); where the plan says ready, the empty-group-list reset succeeds, else the kernel
 * refuses. Then the cdev interfaces `show` reports, and a device held through its cdev counted
 * in use. On Debian's 6.1 kernel (no cdev) the same devices must be reported without cdevs and
 * the iommufd answer as unavailable.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  HAS_CDEV, IN_LAB, LAB_KERNEL, NOT_IN_LAB, ORACLE, allBdfs, bindingState, cdevOracle, labTopology, roleBdf, run,
  sysfsBind, sysfsRestore, truthDevice, vfioctl, vfioctlJson, type CdevOracleAnswer,
} from '../lab/guest.js';
import { eligible } from '../lab/capture-guest-lib.js';

const topo = IN_LAB ? labTopology().name : '';
const cdevOnly = !IN_LAB ? NOT_IN_LAB : !HAS_CDEV ? `needs the cdev kernel (this guest runs ${LAB_KERNEL})` : false;
const bound: string[] = [];

before(async () => {
  if (!IN_LAB) return;
  for (const b of allBdfs().filter(eligible)) {
    // A PF with VFs stays on its driver (vfio-pci refuses it); its VFs are bound instead.
    if (fs.readdirSync(`/sys/bus/pci/devices/${b}`).some((n) => n.startsWith('virtfn'))) continue;
    await sysfsBind(b, 'vfio-pci');
    bound.push(b);
  }
});

after(() => {
  for (const b of bound) sysfsRestore(b);
});

/** The kernel's per-device answer in vfioctl's words. */
const devIdWord = (d: number | 'owned' | 'not-owned') => (typeof d === 'number' ? 'dev-id' : d);
const byBdf = <T extends { bdf: string }>(xs: readonly T[]) => [...xs].sort((a, b) => a.bdf.localeCompare(b.bdf));

/** The reset went through, or QEMU's root port never brought the link back (see reset-plan.test.ts). */
async function resetWentThrough(r: CdevOracleAnswer, bridge: string | null): Promise<boolean> {
  if (r.reset?.ok) return true;
  if (r.reset?.errno !== 'ENOTTY' || !bridge) return false;
  return (await run('dmesg', [])).stdout.includes(`${bridge}: Data Link Layer Link Active not set`);
}

/** Starts the oracle holding `bdfs` bound to one iommufd context of its own; resolves once bound. */
async function holdThroughCdev(bdfs: readonly string[]): Promise<{ proc: ChildProcessWithoutNullStreams; line: any }> {
  const proc = spawn(ORACLE, ['cdev-hold', ...bdfs], { stdio: 'pipe' }) as ChildProcessWithoutNullStreams;
  const line = await new Promise<string>((resolve, reject) => {
    proc.stdout.once('data', (b: Buffer) => resolve(b.toString()));
    proc.once('exit', (c) => reject(new Error(`cdev holder exited ${c}`)));
  });
  return { proc, line: JSON.parse(line.trim().split('\n')[0]!) };
}

async function release(proc: ChildProcessWithoutNullStreams): Promise<void> {
  if (proc.exitCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await gone;
}

async function iommufdPlan(bdf: string): Promise<any> {
  const { run: r, json } = await vfioctlJson('reset-plan', bdf, '--json');
  assert.equal(r.code, 0, r.stderr);
  const plan = (json.plans as any[]).find((p) => p.device === bdf);
  assert.ok(plan, `no plan for ${bdf}`);
  return plan.hotReset;
}

test('reset-plan\'s iommufd answer agrees with the kernel\'s INFO through the cdev path', { skip: cdevOnly }, async (t) => {
  assert.ok(bound.length > 0, 'the topology must have vfio-bound devices');
  for (const bdf of bound) {
    await t.test(bdf, async (t) => {
      const hr = await iommufdPlan(bdf);
      const fd = hr.iommufd;
      assert.equal(fd.available, true, `cdev kernel, but: ${fd.unavailableReason}`);
      const alone = await cdevOracle('reset', [bdf]);
      if (hr.scope === 'none') {
        // No bus or slot reset for this device: INFO fails the same way in both modes.
        assert.equal(alone.ok, false, JSON.stringify(alone));
        assert.equal(alone.stage, 'hot_reset_info');
        assert.equal(alone.errno, 'ENODEV');
        assert.equal(fd.ready, false);
        return;
      }
      assert.equal(alone.ok, true, `the oracle could not ask through ${bdf}'s cdev: ${JSON.stringify(alone)}`);
      assert.equal(alone.flags!.devId, true, 'a cdev-opened device gets dev_ids, not group ids');

      // The whole set in one context: what vfioctl predicts, entry by entry.
      const vfioOpen = (fd.open as string[]).filter((b) => truthDevice(b).driver === 'vfio-pci');
      const whole = vfioOpen.length > 1 ? await cdevOracle('reset', vfioOpen) : alone;
      assert.equal(whole.ok, true, JSON.stringify(whole));
      const kernel = byBdf(whole.devices!.map((d) => ({ bdf: d.bdf, devId: devIdWord(d.devid) })));
      assert.deepEqual(kernel, byBdf(fd.info), `INFO with ${vfioOpen.join(', ')} bound to one context`);
      assert.equal(whole.flags!.devIdOwned, fd.ownedFlag, 'DEV_ID_OWNED');
      const didReset = await resetWentThrough(whole, hr.bridge);
      assert.equal(didReset, fd.ready, `plan says ready=${fd.ready} (${JSON.stringify(fd.blockers)}), the kernel answered ${JSON.stringify(whole.reset)}`);
      if (!fd.ready) assert.ok(fd.blockers.length > 0, 'a plan that is not ready says why');

      // Opened alone: only the device's own group is owned; what vfioctl says can never be
      // owned stays not owned.
      const ownGroup = truthDevice(bdf).group;
      const never = new Set((fd.info as any[]).filter((i) => i.devId === 'not-owned').map((i) => i.bdf));
      for (const d of alone.devices!) {
        const expected = d.bdf === bdf ? 'dev-id'
          : !never.has(d.bdf) && truthDevice(d.bdf).group === ownGroup ? 'owned' : 'not-owned';
        assert.equal(devIdWord(d.devid), expected, `${d.bdf} with only ${bdf} bound`);
      }
      const needsMore = (fd.open as string[]).length > 1;
      assert.equal(alone.flags!.devIdOwned, fd.ownedFlag && !needsMore, 'alone, DEV_ID_OWNED only when nothing else must be bound');
      if (needsMore) assert.equal(await resetWentThrough(alone, hr.bridge), false, 'alone, the kernel refuses what needs more devices');

      // Split between two processes (two contexts): the second one's devices block the first.
      if (vfioOpen.length > 1) {
        const others = vfioOpen.filter((b) => b !== bdf);
        const { proc, line } = await holdThroughCdev(others);
        try {
          assert.equal(line.ok, true, JSON.stringify(line));
          const split = (await iommufdPlan(bdf)).iommufd;
          assert.equal(split.ready, false, 'another process holds part of the set');
          const blocked = new Set((split.blockers as any[]).filter((b) => b.code === 'other-iommufd').map((b) => b.bdf));
          for (const o of others) assert.ok(blocked.has(o), `${o} held by pid ${proc.pid} is an other-iommufd blocker: ${JSON.stringify(split.blockers)}`);
          const k = await cdevOracle('reset', [bdf]);
          assert.equal(k.ok, true, JSON.stringify(k));
          for (const o of others) assert.equal(k.devices!.find((d) => d.bdf === o)?.devid, 'not-owned', `${o} in the other context`);
          assert.equal(k.flags!.devIdOwned, false);
          assert.equal(await resetWentThrough(k, hr.bridge), false, 'the kernel refuses a set split across contexts');
        } finally {
          await release(proc);
        }
      }
    });
  }
});

test('show and groups report the device\'s VFIO interfaces as the kernel offers them', { skip: IN_LAB ? false : NOT_IN_LAB }, async () => {
  assert.ok(bound.length > 0);
  const { run: r, json } = await vfioctlJson('groups', '--json');
  assert.equal(r.code, 0, r.stderr);
  const devices = new Map<string, any>((json.groups as any[]).flatMap((g) => g.devices).map((d: any) => [d.bdf, d]));
  for (const bdf of bound) {
    const d = devices.get(bdf);
    assert.ok(d, `${bdf} in groups --json`);
    assert.equal(d.vfioGroupNode, `/dev/vfio/${truthDevice(bdf).group}`);
    const entries = fs.existsSync(`/sys/bus/pci/devices/${bdf}/vfio-dev`) ? fs.readdirSync(`/sys/bus/pci/devices/${bdf}/vfio-dev`) : [];
    if (HAS_CDEV) {
      assert.equal(entries.length, 1, `${bdf} vfio-dev/`);
      assert.equal(d.vfioCdev, `/dev/vfio/devices/${entries[0]}`);
      assert.ok(fs.statSync(d.vfioCdev).isCharacterDevice(), `${d.vfioCdev} exists`);
    } else {
      assert.equal(d.vfioCdev, null, `Debian's ${LAB_KERNEL} kernel offers no cdev`);
    }
    const show = await vfioctlJson('show', bdf, '--json');
    assert.equal(show.run.code, 0, show.run.stderr);
    const s = show.json;
    assert.equal(s.bdf, bdf);
    assert.equal(s.vfioCdev, d.vfioCdev);
    assert.equal(s.vfioGroupNode, d.vfioGroupNode);
    if (!HAS_CDEV) {
      const fdAnswer = (await iommufdPlan(bdf)).iommufd;
      assert.equal(fdAnswer.available, false);
      assert.equal(fdAnswer.ready, false);
      assert.match(fdAnswer.unavailableReason, /older than 6\.6|no device cdev/);
    }
  }
});

test('a device held through its cdev is in use: unbind and rebind refuse (exit 4) promptly, reset-plan names the holder', { skip: cdevOnly || (topo !== 'rootports' ? 'runs in the rootports topology' : false) }, async () => {
  const nvme = roleBdf(labTopology(), 'nvme');
  assert.equal(truthDevice(nvme).driver, 'vfio-pci');
  const { proc, line } = await holdThroughCdev([nvme]);
  try {
    assert.equal(line.ok, true, JSON.stringify(line));
    const before = bindingState();
    const t0 = Date.now();
    const u = await vfioctlJson('unbind', nvme, '--json');
    assert.equal(u.run.code, 4, `exit ${u.run.code}: ${u.run.stderr}`);
    const refusal = (u.json.actions as any[]).find((a) => a.bdf === nvme);
    assert.equal(refusal?.code, 'in-use', JSON.stringify(u.json.actions));
    assert.match(refusal.reason, new RegExp(`pid ${proc.pid} .*/dev/vfio/devices/vfio\\d+`), 'names the holder and its cdev');
    const b = await vfioctl('bind', nvme, '--variant', 'vfio_pci_lab');
    assert.equal(b.code, 4, `exit ${b.code}: ${b.stderr}`);
    assert.ok(Date.now() - t0 < 30_000, 'refused promptly, not blocked in the kernel');
    assert.deepEqual(bindingState(), before, 'nothing changed');
    const plan = await vfioctlJson('reset-plan', nvme, '--json');
    const me = (plan.json.plans[0].hotReset.affected as any[]).find((a) => a.bdf === nvme);
    assert.equal(me.inUse, true);
    assert.ok((me.inUseFindings as any[]).some((f) => f.detail.includes(String(proc.pid))), JSON.stringify(me.inUseFindings));
  } finally {
    await release(proc);
  }
  // Once the holder is gone the device is free again.
  const free = await vfioctl('unbind', nvme);
  assert.equal(free.code, 0, free.stderr);
  assert.equal(truthDevice(nvme).driver, 'nvme');
  await sysfsBind(nvme, 'vfio-pci');
});

test('grant on the cdev kernel: the device cdev and /dev/iommu are handed over and read back, --revoke restores them', { skip: cdevOnly || (topo !== 'rootports' ? 'runs in the rootports topology' : false) }, async () => {
  const nvme = roleBdf(labTopology(), 'nvme');
  const cdev = `/dev/vfio/devices/${fs.readdirSync(`/sys/bus/pci/devices/${nvme}/vfio-dev`)[0]}`;
  const owner = (p: string) => { const s = fs.statSync(p); return [s.uid, s.gid, s.mode & 0o7777]; };
  const iommu0 = owner('/dev/iommu');
  assert.deepEqual(owner(cdev), [0, 0, 0o600], 'the kernel creates the cdev root:root 0600');
  try {
    const r = await vfioctlJson('grant', nvme, '--user', 'nobody', '--group', 'nogroup', '--json');
    assert.equal(r.run.code, 0, r.run.stderr);
    assert.deepEqual(owner(cdev), [65534, 65534, 0o660]);
    assert.deepEqual(owner('/dev/iommu').slice(0, 2), [65534, 65534]);
    for (const p of [cdev, '/dev/iommu', `/dev/vfio/${truthDevice(nvme).group}`]) {
      const n = (r.json.nodes as any[]).find((x) => x.path === p);
      assert.ok(n && n.verified === true, `${p} in ${JSON.stringify(r.json.nodes)}`);
    }
    const rv = await vfioctlJson('grant', nvme, '--revoke', '--json');
    assert.equal(rv.run.code, 0, rv.run.stderr);
    assert.deepEqual(owner(cdev), [0, 0, 0o600]);
    assert.deepEqual(owner('/dev/iommu'), iommu0);
  } finally {
    await vfioctl('grant', nvme, '--revoke');
  }
});
