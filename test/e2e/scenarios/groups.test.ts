/**
 * `vfioctl groups --json` against the kernel's own sysfs, in every topology.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { IN_LAB, NOT_IN_LAB, findRole, hasCommand, labTopology, missing, truthDevice, truthGroups, vfioctlJson } from '../lab/guest.js';
import { FsRoot } from '../../../src/sysfs/fsroot.js';
import { scanHost } from '../../../src/sysfs/scan.js';
import { koffiOf } from '../../../src/ffi/libc.js';
import { libcFileCalls } from '../../../src/sysfs/libc-file-calls.js';

test('groups --json equals sysfs truth', { skip: IN_LAB ? false : NOT_IN_LAB }, async (t) => {
  if (!(await hasCommand('groups'))) return t.skip(missing('groups'));
  const topo = labTopology();
  const { run, json } = await vfioctlJson('groups', '--json');
  assert.equal(run.code, 0, run.stderr);
  const truth = truthGroups();
  assert.ok(truth.length > 0, 'the lab kernel must have IOMMU groups');
  assert.equal(json.iommuPresent, true);

  const got = json.groups as any[];
  assert.deepEqual(got.map((g) => g.id), truth.map((g) => g.id), 'group ids');
  for (const tg of truth) {
    const g = got.find((x) => x.id === tg.id)!;
    const what = `group ${tg.id} (${topo.name})`;
    assert.deepEqual((g.devices as any[]).map((d) => d.bdf).sort(), tg.members, `${what} members`);
    assert.equal(g.viable, tg.viable, `${what} viable`);
    assert.deepEqual([...(g.blockers as string[])].sort(), tg.blockers, `${what} blockers`);
    for (const d of g.devices as any[]) {
      const k = truthDevice(d.bdf);
      assert.equal(d.driver, k.driver, `${d.bdf} driver`);
      assert.equal(d.vendorId, k.vendor, `${d.bdf} vendor`);
      assert.equal(d.deviceId, k.device, `${d.bdf} device`);
      assert.equal(d.classCode, k.classCode, `${d.bdf} class`);
      assert.equal(d.iommuGroup, tg.id, `${d.bdf} iommuGroup`);
      assert.equal(d.driverOverride, k.override, `${d.bdf} driverOverride`);
      assert.equal(d.vfioBound, k.vfioDev, `${d.bdf} vfioBound`);
    }
  }
});

test('every topology role is present with its host driver', { skip: IN_LAB ? false : NOT_IN_LAB }, async () => {
  for (const role of labTopology().roles) {
    const bdfs = findRole(role);
    assert.equal(bdfs.length, 1, `${role.name}: ${bdfs.join(',')}`);
    assert.equal(truthDevice(bdfs[0]!).driver, role.hostDriver, `${role.name} host driver`);
  }
});

test("a scan of the kernel's sysfs through libc's calls (a long scan's) reads what Node's calls read", { skip: IN_LAB ? false : NOT_IN_LAB }, () => {
  const viaNode = scanHost(new FsRoot('/'));
  const fsr = new FsRoot('/');
  const calls = libcFileCalls(koffiOf(createRequire(import.meta.url)('koffi')));
  assert.ok(calls, 'libc loads through koffi in the guest');
  fsr.fileCalls = calls;
  const viaLibc = scanHost(fsr);
  assert.ok(viaNode.devices.size >= labTopology().roles.length, `${viaNode.devices.size} functions`);
  assert.ok([...viaNode.devices.values()].some((d) => d.driver !== null && d.resetMethodKnown), 'drivers and reset methods were read');
  assert.deepEqual(viaLibc, viaNode);
});
