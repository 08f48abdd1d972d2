/**
 * Issue 6 against the real kernel: `apply` (converge, idempotence, dry run, give back,
 * malformed file, rollback, --export), `grant` on real /dev/vfio nodes, `doctor`, and
 * `persist --dry-run`, in the rootports topology; `vfs` and apply's rollback on the
 * NVMe SR-IOV PF in the sriov topology.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  IN_LAB, NOT_IN_LAB, REPO, allBdfs, hasCommand, labTopology, missing, roleBdf, run, sysfsRestore, truthDevice,
  vfioctl, vfioctlJson, vfsOf,
} from '../lab/guest.js';

const topo = IN_LAB ? labTopology().name : '';
const only = (name: string) => (!IN_LAB ? NOT_IN_LAB : topo !== name ? `runs in the ${name} topology` : false);
const DEV = '/sys/bus/pci/devices';

/** Driver and override of every function: what "changes nothing" is checked against. */
function state(): Record<string, string> {
  return Object.fromEntries(allBdfs().map((b) => {
    const d = truthDevice(b);
    return [b, `${d.driver ?? '-'} override=${d.override ?? '-'}`];
  }));
}

async function need(t: any, ...names: string[]): Promise<boolean> {
  for (const n of names) {
    if (!(await hasCommand(n))) {
      t.skip(missing(n));
      return false;
    }
  }
  return true;
}

let fileNo = 0;
function desiredFile(body: unknown): string {
  const p = `/tmp/lab-desired-${process.pid}-${fileNo++}.json`;
  fs.writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body, null, 2));
  return p;
}

const desired = (...devices: { match: string; driver: string }[]) => desiredFile({ schemaVersion: 1, devices });

function action(json: any, bdf: string): any {
  const a = (json.actions as any[]).find((x) => x.bdf === bdf);
  assert.ok(a, `no action for ${bdf}: ${JSON.stringify(json)}`);
  return a;
}

/** sysfs writes vfioctl reports under --verbose ("write VALUE > PATH"). */
const writesIn = (stderr: string) => stderr.split('\n').filter((l) => /^write /.test(l));

/** vfioctl with text on standard input (for `apply -`). */
function vfioctlStdin(input: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, [path.join(REPO, 'bin', 'vfioctl'), ...args],
      { cwd: REPO, input, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (err: any) {
    return { code: typeof err.status === 'number' ? err.status : -1, stdout: String(err.stdout ?? ''), stderr: String(err.stderr ?? '') };
  }
}

function kernelLog(): string {
  try {
    return execFileSync('dmesg', { encoding: 'utf8' });
  } catch {
    return '';
  }
}

// ---- rootports: apply -------------------------------------------------------------

test('apply: converges e1000e to vfio-pci, then changes nothing, dry run writes nothing, host gives it back, export round-trips',
  { skip: only('rootports') }, async (t) => {
    if (!(await need(t, 'apply'))) return;
    const bdf = roleBdf(labTopology(), 'e1000e');
    const toVfio = desired({ match: bdf, driver: 'vfio-pci' });
    try {
      let t0 = Date.now();
      const first = await vfioctlJson('apply', toVfio, '--json');
      t.diagnostic(`first apply ${Date.now() - t0} ms`);
      assert.equal(first.run.code, 0, first.run.stderr);
      assert.equal(first.json.changed, true);
      assert.equal(action(first.json, bdf).status, 'bound');
      const d = truthDevice(bdf);
      assert.equal(d.driver, 'vfio-pci', 'the driver link really is vfio-pci');
      assert.equal(d.override, 'vfio-pci');
      assert.ok(fs.existsSync(`/dev/vfio/${d.group}`), `/dev/vfio/${d.group} appears`);

      const before = state();
      t0 = Date.now();
      const again = await vfioctlJson('--verbose', 'apply', toVfio, '--json');
      t.diagnostic(`second apply ${Date.now() - t0} ms`);
      assert.equal(again.run.code, 0, again.run.stderr);
      assert.equal(again.json.changed, false);
      assert.equal(action(again.json, bdf).status, 'unchanged');
      assert.deepEqual(writesIn(again.run.stderr), [], 'no sysfs write on the second run');
      assert.deepEqual(state(), before, 'nothing changed');

      // Export what is bound now; applying it back is a no-op (through standard input).
      const exp = await vfioctl('apply', '--export');
      assert.equal(exp.code, 0, exp.stderr);
      const doc = JSON.parse(exp.stdout);
      assert.equal(doc.schemaVersion, 1);
      assert.deepEqual(doc.devices, [{ match: bdf, driver: 'vfio-pci' }], 'export lists exactly the vfio-bound device');
      const round = vfioctlStdin(exp.stdout, '--verbose', 'apply', '-', '--json');
      assert.equal(round.code, 0, round.stderr);
      assert.equal(JSON.parse(round.stdout).changed, false, 'the exported state is already the state');
      assert.deepEqual(writesIn(round.stderr), []);
      assert.deepEqual(state(), before);

      // A dry run of the give-back plans it and writes nothing.
      const toHost = desired({ match: bdf, driver: 'host' });
      const dry = await vfioctlJson('--verbose', 'apply', toHost, '--dry-run', '--json');
      assert.equal(dry.run.code, 0, dry.run.stderr);
      assert.equal(action(dry.json, bdf).status, 'planned');
      assert.deepEqual(writesIn(dry.run.stderr), [], 'a dry run writes nothing');
      assert.deepEqual(state(), before, 'a dry run changes nothing');

      const back = await vfioctlJson('apply', toHost, '--json');
      assert.equal(back.run.code, 0, back.run.stderr);
      assert.equal(back.json.changed, true);
      assert.equal(action(back.json, bdf).status, 'unbound');
      assert.equal(truthDevice(bdf).driver, 'e1000e', 'host driver back');
      assert.equal(truthDevice(bdf).override, null, 'override cleared');
      const backAgain = await vfioctlJson('apply', toHost, '--json');
      assert.equal(backAgain.json.changed, false, 'host on a host-bound device is a no-op');
      const none = await vfioctl('apply', '--export');
      assert.deepEqual(JSON.parse(none.stdout).devices, [], 'nothing vfio-bound is exported');
    } finally {
      if (truthDevice(bdf).driver !== 'e1000e') sysfsRestore(bdf);
    }
  });

test('apply: a malformed file exits 2, names the line, and changes nothing', { skip: only('rootports') }, async (t) => {
  if (!(await need(t, 'apply'))) return;
  const bdf = roleBdf(labTopology(), 'e1000e');
  const before = state();
  const cases: [string, RegExp][] = [
    // The bad field is on line 4.
    [`{"schemaVersion": 1,\n "devices": [\n  {"match": "${bdf}", "driver": "vfio-pci"},\n  {"match": "${bdf}", "drvier": "vfio-pci"}\n ]}\n`, /:4\b/],
    [`{"schemaVersion": 1, "devices": [{"match": "${bdf}", "driver": "vfio-pci"},]}`, /:1\b/],
    [`{"schemaVersion": 2, "devices": []}`, /schemaVersion/],
  ];
  for (const [text, where] of cases) {
    const f = desiredFile(text);
    const r = await vfioctl('--verbose', 'apply', f);
    assert.equal(r.code, 2, `exit ${r.code} for ${JSON.stringify(text)}: ${r.stderr}`);
    assert.match(r.stderr, where, r.stderr);
    assert.deepEqual(writesIn(r.stderr), []);
    assert.deepEqual(state(), before, 'nothing changed');
  }
});

// ---- rootports: grant, doctor, persist -----------------------------------------------

test('grant: real /dev/vfio/N ownership changes, --revoke restores root:root 0600', { skip: only('rootports') }, async (t) => {
  if (!(await need(t, 'grant', 'bind'))) return;
  const bdf = roleBdf(labTopology(), 'nvme');
  try {
    const b = await vfioctl('bind', bdf, '--variant', 'vfio-pci');
    assert.equal(b.code, 0, b.stderr);
    const g = truthDevice(bdf).group!;
    const node = `/dev/vfio/${g}`;
    const st0 = fs.statSync(node);
    assert.deepEqual([st0.uid, st0.gid, st0.mode & 0o7777], [0, 0, 0o600], 'the kernel creates the node root:root 0600');

    const r = await vfioctlJson('grant', bdf, '--user', 'nobody', '--group', 'nogroup', '--json');
    assert.equal(r.run.code, 0, r.run.stderr);
    assert.equal(r.json.changed, true);
    const st = fs.statSync(node);
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [65534, 65534, 0o660], `${node} after grant`);
    const n = (r.json.nodes as any[]).find((x) => x.path === node);
    assert.ok(n && n.verified === true, JSON.stringify(r.json.nodes));
    assert.match(r.run.stderr, new RegExp(`group ${g}`), 'warns that the whole group comes with it');
    const again = await vfioctlJson('grant', bdf, '--user', 'nobody', '--group', 'nogroup', '--json');
    assert.equal(again.json.changed, false, 'a repeated grant changes nothing');

    const rv = await vfioctlJson('grant', bdf, '--revoke', '--json');
    assert.equal(rv.run.code, 0, rv.run.stderr);
    assert.equal(rv.json.changed, true);
    const st2 = fs.statSync(node);
    assert.deepEqual([st2.uid, st2.gid, st2.mode & 0o7777], [0, 0, 0o600], `${node} after --revoke`);
  } finally {
    await vfioctl('unbind', bdf);
    if (truthDevice(bdf).driver !== 'nvme') sysfsRestore(bdf);
  }
  assert.equal(truthDevice(bdf).driver, 'nvme');
});

test('grant: a device without a vfio node is not found (3) and nothing changes', { skip: only('rootports') }, async (t) => {
  if (!(await need(t, 'grant'))) return;
  const bdf = roleBdf(labTopology(), 'virtio-net');
  const before = fs.readdirSync('/dev/vfio').map((n) => `${n}:${fs.statSync(`/dev/vfio/${n}`).mode}`);
  const r = await vfioctl('grant', bdf, '--user', 'nobody');
  assert.equal(r.code, 3, `exit ${r.code}: ${r.stderr}`);
  assert.deepEqual(fs.readdirSync('/dev/vfio').map((n) => `${n}:${fs.statSync(`/dev/vfio/${n}`).mode}`), before);
});

test('doctor --json: IOMMU and interrupt remapping pass in the lab (intel_iommu=on, intremap=on)', { skip: only('rootports') }, async (t) => {
  if (!(await need(t, 'doctor'))) return;
  const t0 = Date.now();
  const { run: r, json } = await vfioctlJson('doctor', '--json');
  t.diagnostic(`doctor ${Date.now() - t0} ms`);
  const checks = json.checks as any[];
  const status = (id: string) => checks.find((c) => c.id === id)?.status;
  assert.equal(status('iommu-active'), 'PASS', JSON.stringify(checks));
  assert.equal(status('iommu-cmdline'), 'PASS', JSON.stringify(checks));
  assert.equal(status('iommu-firmware'), 'PASS', JSON.stringify(checks));
  assert.equal(status('interrupt-remapping'), 'PASS', JSON.stringify(checks));
  assert.equal(status('allow-unsafe-interrupts'), 'PASS');
  assert.equal(status('acs-override'), 'PASS');
  assert.equal(status('vfio-pci-ids'), 'PASS');
  const failed = checks.filter((c) => c.status === 'FAIL');
  assert.equal(json.ok, failed.length === 0);
  assert.equal(r.code, failed.length === 0 ? 0 : 1, `exit ${r.code} with failures ${JSON.stringify(failed)}`);
  for (const c of checks) if (c.status !== 'PASS') assert.ok(c.fix, `${c.id} ${c.status} comes with a fix`);
  // The kernel's own truth behind the remapping PASS.
  assert.match(fs.readFileSync('/proc/interrupts', 'utf8'), /IR-PCI-MSI/);
});

test('persist --dry-run shows the udev rule and unit and writes nothing', { skip: only('rootports') }, async (t) => {
  if (!(await need(t, 'persist'))) return;
  const bdf = roleBdf(labTopology(), 'e1000e');
  const f = desired({ match: bdf, driver: 'vfio-pci' });
  const before = state();
  const { run: r, json } = await vfioctlJson('persist', f, '--dry-run', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json.dryRun, true);
  assert.equal(json.changed, true, 'as bind --dry-run: a real run would install the files');
  const files = json.files as any[];
  const rule = files.find((x) => x.path === '/etc/udev/rules.d/60-vfioctl.rules');
  assert.ok(rule, JSON.stringify(files.map((x) => x.path)));
  assert.match(rule.content, /driver_override/);
  assert.match(rule.content, new RegExp(bdf.replace(/\./g, '\\.')));
  const unit = files.find((x) => /\/etc\/systemd\/system\/[^/]+\.service$/.test(x.path));
  assert.ok(unit, JSON.stringify(files.map((x) => x.path)));
  assert.match(unit.content, /vfioctl/);
  assert.match(unit.content, /\bapply\b/);
  for (const x of files) assert.ok(!fs.existsSync(x.path), `${x.path} was not written`);
  assert.deepEqual(state(), before);
});

// ---- sriov: vfs ----------------------------------------------------------------------

function sriov(pf: string, name: string): string {
  return fs.readFileSync(`${DEV}/${pf}/${name}`, 'utf8').trim();
}

/** The lab's starting SR-IOV state: N unbound VFs, autoprobe off (lab/prepare-guest.ts). */
function resetSriov(pf: string, vfs: number): void {
  if (Number(sriov(pf, 'sriov_numvfs')) !== vfs) {
    if (Number(sriov(pf, 'sriov_numvfs')) > 0) fs.writeFileSync(`${DEV}/${pf}/sriov_numvfs`, '0');
    fs.writeFileSync(`${DEV}/${pf}/sriov_drivers_autoprobe`, '0');
    if (vfs > 0) fs.writeFileSync(`${DEV}/${pf}/sriov_numvfs`, String(vfs));
  }
  fs.writeFileSync(`${DEV}/${pf}/sriov_drivers_autoprobe`, '0');
}

test('vfs: --count N --bind vfio-pci creates VFs no host driver touches, --count 0 removes them, too many is refused',
  { skip: only('sriov') }, async (t) => {
    if (!(await need(t, 'vfs'))) return;
    const pf = roleBdf(labTopology(), 'nvme');
    const start = Number(sriov(pf, 'sriov_numvfs'));
    const total = Number(sriov(pf, 'sriov_totalvfs'));
    t.diagnostic(`guest starts with ${start} VFs of ${total}, autoprobe ${sriov(pf, 'sriov_drivers_autoprobe')}`);
    assert.ok(total >= 2, `sriov_totalvfs ${total}`);
    try {
      // From the lab's starting VFs to none.
      let r = await vfioctlJson('vfs', pf, '--count', '0', '--json');
      assert.equal(r.run.code, 0, r.run.stderr);
      assert.equal(Number(sriov(pf, 'sriov_numvfs')), 0);
      assert.deepEqual(vfsOf(pf), []);
      assert.equal(r.json.changed, start > 0);

      // A host as it normally is: autoprobe on, so nvme would grab new VFs unless vfioctl stops it.
      fs.writeFileSync(`${DEV}/${pf}/sriov_drivers_autoprobe`, '1');
      const logBefore = kernelLog().length;
      const t0 = Date.now();
      r = await vfioctlJson('vfs', pf, '--count', String(total), '--bind', 'vfio-pci', '--json');
      t.diagnostic(`vfs --count ${total} --bind vfio-pci ${Date.now() - t0} ms`);
      assert.equal(r.run.code, 0, r.run.stderr);
      assert.equal(r.json.changed, true);
      assert.equal(r.json.numVfs, total);
      const vfs = vfsOf(pf);
      assert.equal(vfs.length, total, `virtfn links: ${vfs.join(', ')}`);
      for (const vf of vfs) {
        const phys = path.basename(fs.readlinkSync(`${DEV}/${vf}/physfn`));
        assert.equal(phys, pf, `${vf}/physfn`);
        assert.equal(truthDevice(vf).driver, 'vfio-pci', `${vf} driver`);
        assert.ok(truthDevice(vf).vfioDev, `${vf} has a vfio device`);
        assert.equal(action(r.json, vf).status, 'bound');
      }
      assert.deepEqual((r.json.vfs as any[]).map((v) => v.bdf).sort(), vfs);
      assert.equal(sriov(pf, 'sriov_drivers_autoprobe'), '1', 'autoprobe put back as it was');
      const newLog = kernelLog().slice(logBefore);
      for (const vf of vfs) assert.doesNotMatch(newLog, new RegExp(`nvme.*pci function ${vf.replace(/\./g, '\\.')}`), `nvme probed ${vf}:\n${newLog}`);
      assert.equal(truthDevice(pf).driver, 'nvme', 'the PF keeps its driver');

      // Same count and binding again: nothing to do.
      const again = await vfioctlJson('vfs', pf, '--count', String(total), '--bind', 'vfio-pci', '--json');
      assert.equal(again.run.code, 0, again.run.stderr);
      assert.equal(again.json.changed, false);
      assert.deepEqual(again.json.writes, []);

      // More than the device supports: usage error naming sriov_totalvfs, nothing changed.
      const before = state();
      const tooMany = await vfioctl('vfs', pf, '--count', String(total + 1));
      assert.equal(tooMany.code, 2, `exit ${tooMany.code}: ${tooMany.stderr}`);
      assert.match(tooMany.stderr, /sriov_totalvfs/);
      assert.deepEqual(state(), before);
      assert.equal(Number(sriov(pf, 'sriov_numvfs')), total);

      // --count 0 with the VFs on vfio-pci (not open): they go.
      r = await vfioctlJson('vfs', pf, '--count', '0', '--json');
      assert.equal(r.run.code, 0, r.run.stderr);
      assert.equal(Number(sriov(pf, 'sriov_numvfs')), 0);
      assert.deepEqual(vfsOf(pf), []);
      for (const vf of vfs) assert.ok(!fs.existsSync(`${DEV}/${vf}`), `${vf} is gone`);
    } finally {
      resetSriov(pf, start);
    }
  });

// ---- sriov: apply rollback on a real kernel refusal ----------------------------------

test('apply: the PF refused by vfio-pci (EBUSY, VFs enabled meanwhile) rolls the e1000e back to e1000e',
  { skip: only('sriov') }, async (t) => {
    if (!(await need(t, 'apply'))) return;
    const pf = roleBdf(labTopology(), 'nvme');
    const nic = roleBdf(labTopology(), 'e1000e');
    assert.ok(nic < pf, 'the NIC binds first');
    const start = Number(sriov(pf, 'sriov_numvfs'));
    // Something enables VFs on the PF after vfioctl planned (no VFs: the PF may go to vfio-pci)
    // and before it binds: here a modprobe install hook on the variant vfioctl loads for the
    // NIC. vfio-pci then refuses the PF for real ("Cannot bind to PF with SR-IOV enabled").
    const hook = '/etc/modprobe.d/lab-provisioning-race.conf';
    if (fs.existsSync('/sys/module/vfio_pci_lab')) assert.equal((await run('rmmod', ['vfio_pci_lab'])).code, 0, 'vfio_pci_lab unloads');
    resetSriov(pf, 0);
    fs.mkdirSync(path.dirname(hook), { recursive: true });
    fs.writeFileSync(hook, `install vfio_pci_lab /sbin/modprobe --ignore-install vfio_pci_lab && echo 2 > ${DEV}/${pf}/sriov_numvfs\n`);
    const f = desired({ match: nic, driver: 'auto' }, { match: pf, driver: 'vfio-pci' });
    const logBefore = kernelLog().length;
    try {
      const before = state();
      const t0 = Date.now();
      const { run: r, json } = await vfioctlJson('apply', f, '--json');
      t.diagnostic(`rolled-back apply ${Date.now() - t0} ms`);
      assert.equal(r.code, 1, `exit ${r.code}: ${r.stderr}\n${r.stdout}`);
      assert.equal(json.changed, false, 'rolled back: the host is as it was');
      const a = action(json, nic);
      assert.equal(a.status, 'rolled-back', JSON.stringify(a));
      const b = action(json, pf);
      assert.equal(b.status, 'failed', JSON.stringify(b));
      assert.equal(Number(sriov(pf, 'sriov_numvfs')), 2, 'the hook really enabled the VFs');
      assert.match(kernelLog().slice(logBefore), /Cannot bind to PF with SR-IOV enabled/, 'the kernel refused the PF');
      assert.equal(truthDevice(nic).driver, 'e1000e', 'the NIC is back on its host driver');
      assert.equal(truthDevice(pf).driver, 'nvme', 'the PF is back on nvme');
      assert.deepEqual(state(), { ...before, ...Object.fromEntries(vfsOf(pf).map((v) => [v, state()[v]])) }, 'every function as before (plus the new VFs)');
    } finally {
      fs.rmSync(hook, { force: true });
      for (const b of [nic, pf]) {
        const want = b === nic ? 'e1000e' : 'nvme';
        if (truthDevice(b).driver !== want) sysfsRestore(b);
      }
      resetSriov(pf, start);
    }
  });
