/**
 * `vfioctl probe` against the kernel's own answers: every vfio-bound device of the topology
 * (the e1000e on the lab's variant driver, vfio_pci_lab, with its migration and dirty-tracking
 * ops; the rest on vfio-pci), opened through the group and, where the kernel has cdevs,
 * through the cdev, compared with what the C oracle (oracle/probe.c) reads; `reset-plan
 * --verify` agrees with the kernel; a device held by another process is refused promptly;
 * a device on a host driver is refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  IN_LAB, LAB_KERNEL, NOT_IN_LAB, REPO, allBdfs, hasCommand, isLabPlumbing, missing, run, sysfsBind, sysfsRestore, truthDevice, vfioctl, vfioctlJson,
} from '../lab/guest.js';
import { eligible } from '../lab/capture-guest-lib.js';

const PROBE_ORACLE = path.join(REPO, 'test/e2e/work/probe');
const VARIANT = 'vfio_pci_lab';
const VARIANT_PARAMS = `/sys/module/${VARIANT}/parameters`;

const bound: string[] = [];
let loadedVariant = false;

before(async () => {
  if (!IN_LAB) return;
  const hadVariant = fs.existsSync(`/sys/module/${VARIANT}`);
  for (const b of allBdfs().filter(eligible)) {
    const d = truthDevice(b);
    // A PF with VFs stays on its driver (vfio-pci refuses it).
    if (fs.readdirSync(`/sys/bus/pci/devices/${b}`).some((n) => n.startsWith('virtfn'))) continue;
    // The e1000e (8086:10d3) goes to the variant, which only lists that id.
    const driver = d.vendor === '8086' && d.device === '10d3' && !fs.existsSync(`/sys/bus/pci/devices/${b}/physfn`) ? VARIANT : 'vfio-pci';
    if (driver === VARIANT && !fs.existsSync(`/sys/module/${VARIANT}`)) {
      const m = await run('modprobe', [VARIANT]);
      assert.equal(m.code, 0, `modprobe ${VARIANT}: ${m.stderr}`);
      loadedVariant = !hadVariant;
    }
    await sysfsBind(b, driver);
    bound.push(b);
  }
});

after(async () => {
  for (const b of bound) sysfsRestore(b);
  // Later scenarios expect the variant not loaded (bind's `auto` loads it itself).
  if (loadedVariant) await run('rmmod', [VARIANT]);
});

interface OracleProbe {
  ok: boolean;
  stage?: string;
  errno?: string;
  via?: string;
  info?: { flags: number; regions: number; irqs: number; caps: number[] };
  migration?: number | null;
  dirtyTracking?: boolean;
  lowPower?: boolean;
  hotReset?: { flags: number; devices: { bdf: string; id: number }[] } | { errno: string };
}

async function oracleProbe(mode: 'group' | 'cdev', bdf: string, arg: string): Promise<OracleProbe> {
  const r = await run(PROBE_ORACLE, [mode, bdf, arg]);
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as OracleProbe;
  } catch {
    throw new Error(`probe oracle ${mode} ${bdf} ${arg} printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
}

// Names written down here independently of src/vfio/uapi.ts (include/uapi/linux/vfio.h).
const DEVICE_FLAGS = ['RESET', 'PCI', 'PLATFORM', 'AMBA', 'CCW', 'AP', 'FSL_MC', 'CAPS', 'CDX'];
const MIGRATION_FLAGS = ['STOP_COPY', 'P2P', 'PRE_COPY'];
const bits = (n: number, names: string[]) => names.filter((_, i) => n & (1 << i));

function cdevOf(bdf: string): string | null {
  const dir = `/sys/bus/pci/devices/${bdf}/vfio-dev`;
  const name = fs.existsSync(dir) ? fs.readdirSync(dir).find((n) => /^vfio\d+$/.test(n)) : undefined;
  return name && fs.existsSync(`/dev/vfio/devices/${name}`) ? name : null;
}

/** vfioctl's document for one device against the oracle's answer. */
function assertMatches(doc: any, o: OracleProbe, bdf: string, via: string) {
  assert.equal(o.ok, true, `the oracle could not open ${bdf} via ${via}: ${JSON.stringify(o)}`);
  assert.equal(doc.bdf, bdf);
  assert.equal(doc.via, via);
  assert.deepEqual(doc.info.flags, bits(o.info!.flags, DEVICE_FLAGS), 'VFIO_DEVICE_GET_INFO flags');
  assert.equal(doc.info.regions, o.info!.regions);
  assert.equal(doc.info.irqs, o.info!.irqs);
  assert.deepEqual(doc.info.capabilities.map((c: { id: number }) => c.id), o.info!.caps);
  assert.deepEqual(doc.migration, o.migration === null ? null : { flags: bits(o.migration!, MIGRATION_FLAGS) }, 'migration');
  assert.equal(doc.dirtyTracking, o.dirtyTracking, 'dirty tracking');
  assert.equal(doc.lowPower, o.lowPower, 'low power');
  const h = o.hotReset!;
  if ('errno' in h) {
    assert.equal(doc.hotResetInfo, null);
    assert.equal(doc.hotResetError, h.errno);
    return;
  }
  assert.equal(doc.hotResetError, null);
  const cdev = via === 'cdev';
  assert.deepEqual(doc.hotResetInfo.devices.map((d: any) => ({ bdf: d.bdf, id: cdev ? (d.devId === 'owned' ? 0 : d.devId === 'not-owned' ? 0xffffffff : d.devId) : d.group })), h.devices, 'hot-reset INFO');
}

test('probe --json matches the kernel (C oracle) for every vfio-bound device, via the group and via the cdev', { skip: IN_LAB ? false : NOT_IN_LAB }, async (t) => {
  if (!(await hasCommand('probe'))) return t.skip(missing('probe'));
  assert.ok(bound.length > 0, 'the topology must have vfio-bound devices');
  for (const bdf of bound) {
    await t.test(bdf, async (t) => {
      const dev = truthDevice(bdf);
      const { run: r, json } = await vfioctlJson('probe', bdf, '--via', 'group', '--json');
      assert.equal(r.code, 0, r.stderr);
      const d0 = json.devices[0];
      t.diagnostic(`${bdf} on ${dev.driver}: info ${d0.info.flags.join('|')} ${d0.info.regions} regions ${d0.info.irqs} irqs; migration ${d0.migration ? d0.migration.flags.join('|') : 'none'}; dirty tracking ${d0.dirtyTracking}; low power ${d0.lowPower}; INFO ${d0.hotResetInfo ? d0.hotResetInfo.devices.map((x: any) => `${x.bdf}/${x.group}`).join(',') : d0.hotResetError}`);
      assertMatches(json.devices[0], await oracleProbe('group', bdf, String(dev.group)), bdf, 'group');
      const cdev = cdevOf(bdf);
      // The cdev kernel must offer every vfio device's cdev: the cdev path is not optional there.
      if (LAB_KERNEL === 'cdev') assert.ok(cdev, `${bdf}: no /dev/vfio/devices node on the cdev kernel`);
      if (cdev) {
        const c = await vfioctlJson('probe', bdf, '--via', 'cdev', '--json');
        assert.equal(c.run.code, 0, c.run.stderr);
        assertMatches(c.json.devices[0], await oracleProbe('cdev', bdf, cdev), bdf, 'cdev');
        const h = c.json.devices[0];
        t.diagnostic(`${bdf} via ${cdev}: devId ${h.devId}; INFO ${h.hotResetInfo ? `${h.hotResetInfo.flags.join('|')} ${h.hotResetInfo.devices.map((x: any) => `${x.bdf}/${x.devId}`).join(',')}` : h.hotResetError}`);
        // The default is the cdev where the kernel offers one.
        assert.equal((await vfioctlJson('probe', bdf, '--json')).json.devices[0].via, 'cdev');
      }
      if (dev.driver === VARIANT) {
        // Exactly what the module registered (it says so in its read-only parameters).
        const flags = Number(fs.readFileSync(`${VARIANT_PARAMS}/registered_migration_flags`, 'utf8'));
        assert.deepEqual(json.devices[0].migration, { flags: bits(flags, MIGRATION_FLAGS) });
        assert.ok(flags & 1, 'STOP_COPY is always registered');
        assert.equal(json.devices[0].dirtyTracking, fs.readFileSync(`${VARIANT_PARAMS}/registered_dirty_tracking`, 'utf8').trim() === 'Y');
        // The registered ops work: a migration through the kernel's FSM, its data stream resumed, garbage refused.
        const m = JSON.parse((await run(PROBE_ORACLE, ['migrate', bdf, String(dev.group)])).stdout.trim());
        t.diagnostic(`${bdf} migration through the kernel: ${JSON.stringify(m)}`);
        assert.equal(m.ok, true, JSON.stringify(m));
        assert.equal(m.flags, flags);
        assert.equal(m.bytes, 64, 'the whole state stream');
        assert.equal(m.precopyBytes, flags & 4 ? 32 : -1, 'PRE_COPY gives the first half, then STOP_COPY the rest');
        assert.equal(m.stream, `vfio_pci_lab state v1 ${bdf}`);
        assert.equal(m.garbageRefused, 'EINVAL');
      } else {
        assert.equal(json.devices[0].migration, null, 'vfio-pci reports no migration');
        assert.equal(json.devices[0].dirtyTracking, false);
        const m = JSON.parse((await run(PROBE_ORACLE, ['migrate', bdf, String(dev.group)])).stdout.trim());
        assert.deepEqual([m.stage, m.errno], ['migration', 'ENOTTY'], 'the kernel agrees: no migration');
      }
    });
  }
});

test('reset-plan --verify: verified by the kernel for every vfio-bound device', { skip: IN_LAB ? false : NOT_IN_LAB }, async (t) => {
  if (!(await hasCommand('probe'))) return t.skip(missing('probe'));
  const { run: r, json } = await vfioctlJson('reset-plan', ...bound, '--verify', '--json');
  assert.equal(r.code, 0, `${r.stderr}\n${JSON.stringify(json.plans?.map((p: any) => [p.device, p.differences]))}`);
  for (const p of json.plans) assert.equal(p.verification, 'verified', `${p.device}: ${JSON.stringify(p.differences)} kernel ${JSON.stringify(p.kernel)}`);
});

test('a device held open by another process is refused promptly (exit 4); a device on a host driver is refused', { skip: IN_LAB ? false : NOT_IN_LAB }, async (t) => {
  if (!(await hasCommand('probe'))) return t.skip(missing('probe'));
  const bdf = bound[0]!;
  const holder = spawn(PROBE_ORACLE, ['hold', bdf, String(truthDevice(bdf).group)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      holder.stdout.once('data', (b: Buffer) => resolve(b.toString()));
      holder.once('exit', (code) => reject(new Error(`holder exited (${code})`)));
    });
    assert.match(line, /"held":true/, line);
    const started = Date.now();
    for (const via of cdevOf(bdf) ? ['group', 'cdev'] : ['group']) {
      const r = await vfioctl('probe', bdf, '--via', via);
      assert.equal(r.code, 4, `${via}: ${r.stderr}`);
      assert.match(r.stderr, /is in use/);
    }
    const v = await vfioctl('reset-plan', bdf, '--verify');
    assert.equal(v.code, 4, v.stderr);
    t.diagnostic(`refusals took ${Date.now() - started} ms`);
    assert.ok(Date.now() - started < 30_000, 'refused without waiting');
  } finally {
    holder.kill('SIGTERM');
  }
  const host = allBdfs().find((b) => {
    const d = truthDevice(b);
    return d.driver !== null && !d.vfioDev && !d.bridge && !isLabPlumbing(b);
  });
  assert.ok(host, 'a device on a host driver');
  const before = fs.readFileSync(`/sys/bus/pci/devices/${host}/enable`, 'utf8');
  const r = await vfioctl('probe', host);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /is not on a vfio driver/);
  assert.equal(fs.readFileSync(`/sys/bus/pci/devices/${host}/enable`, 'utf8'), before, 'nothing changed');
  const verify = await vfioctlJson('reset-plan', host, '--verify', '--json');
  assert.equal(verify.run.code, 0);
  assert.equal(verify.json.plans[0].verification, 'not-verifiable');
});
