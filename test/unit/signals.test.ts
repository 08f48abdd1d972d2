import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runPaused } from '../helpers/paused.js';
import { fileURLToPath } from 'node:url';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { cli } from '../helpers/cli.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { FAKE_LAB_ENV } from '../helpers/fake-lab.js';
import { snapshotTree, treeDiff } from '../helpers/tree-snapshot.js';

/**
 * vfioctl as a process, stopped in the middle of `bind --group` (8 steps: for each of two
 * devices its record, driver_override, unbind, probe) by SIGINT or SIGTERM, or killed outright.
 * A signal rolls the run back before exiting non-zero; after SIGKILL the next vfioctl to take
 * the lock, whatever it was asked, puts the devices back and says so.
 */
const FAKE_CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/fake-cli.js');
const STEPS = 8;

function setup(t: { after: (f: () => void) => void }) {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const spec = labSpec();
  buildTree(root, spec);
  const specFile = path.join(root, '..', `${path.basename(root)}.spec.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec));
  t.after(() => fs.rmSync(specFile, { force: true }));
  return { root, spec, specFile, before: snapshotTree(root) };
}

/** vfioctl on the fake kernel over `root`, paused before step `at`, then `act` on it. */
const runPausedFake = (root: string, specFile: string, at: number, argv: string[], act: (pid: number) => void) =>
  runPaused([FAKE_CLI, root, specFile, '--', ...argv, '--json'], at, FAKE_LAB_ENV, act);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} at every step of bind --group: rolled back, exit non-zero, JSON says so`, async (t) => {
    const { root, specFile, before } = setup(t);
    for (let at = 0; at < STEPS; at++) {
      const r = await runPausedFake(root, specFile, at, ['bind', '03:01.0', '--group', '--variant', 'vfio-pci'], (pid) => process.kill(pid, signal));
      assert.ok(r.paused, `step ${at}: never paused: ${r.stderr}`);
      assert.equal(r.signal, null, `step ${at}: killed by the signal instead of handling it`);
      assert.equal(r.code, 1, `step ${at}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`interrupted by ${signal}`));
      assert.deepEqual(treeDiff(before, snapshotTree(root)), [], `step ${at}: not as it began`);
      assert.ok(!fs.existsSync(path.join(root, 'run/vfioctl/journal.json')), `step ${at}: journal left`);
      const doc = JSON.parse(r.stdout);
      assert.equal(doc.changed, false);
      if (at > 0) assert.equal(doc.rollback.complete, true, `step ${at}`);
      for (const a of doc.actions) assert.notEqual(a.status, 'bound');
    }
  });
}

test('SIGKILL at every step of bind --group: the next vfioctl (another command, another device) puts the pair back', async (t) => {
  const { root, spec, specFile, before } = setup(t);
  for (let at = 0; at < STEPS; at++) {
    const r = await runPausedFake(root, specFile, at, ['bind', '03:01.0', '--group', '--variant', 'vfio-pci'], (pid) => process.kill(pid, 'SIGKILL'));
    assert.equal(r.signal, 'SIGKILL');
    // Before step 0 nothing is recorded because nothing has changed yet.
    assert.equal(fs.existsSync(path.join(root, 'run/vfioctl/journal.json')), at > 0, `step ${at}: journal after SIGKILL`);
    if (at === 2) {
      // Killed between 03:01.0's override and its unbind: groups and show flag the disagreement.
      const g = await cli(['groups', '--json'], root);
      const dev = g.json().groups.flatMap((x: any) => x.devices).find((d: any) => d.bdf === '0000:03:01.0');
      assert.deepEqual([dev.driver, dev.driverOverride, dev.overrideMismatch], ['e1000', 'vfio-pci', true]);
      assert.match((await cli(['groups'], root)).stderr, /0000:03:01.0: driver_override is vfio-pci but the device is on e1000/);
      assert.match((await cli(['show', '03:01.0'], root)).stdout, /override:\s+vfio-pci \(not its driver/);
    }
    // The kill takes the lock with it; the next run is about an unrelated device.
    const kernel = new FakeKernel(root, spec);
    const next = await cli(['unbind', '0000:00:03.0', '--json'], root, { makeFs: () => kernel, env: FAKE_LAB_ENV });
    assert.equal(next.code, 0, `step ${at}: ${next.stderr}`);
    const doc = next.json();
    if (at > 0) {
      assert.match(next.stderr, /an earlier vfioctl run \(pid \d+, "bind 03:01.0 --group --variant vfio-pci"/);
      assert.equal(doc.recovered.complete, true, `step ${at}: ${JSON.stringify(doc.recovered)}`);
    }
    assert.equal(doc.actions[0].status, 'unchanged', 'and then does what it was asked');
    assert.deepEqual(treeDiff(before, snapshotTree(root)), [], `step ${at}: not put back`);
    assert.ok(!fs.existsSync(path.join(root, 'run/vfioctl/journal.json')));
  }
});

test('a damaged or hostile journal is never acted on: it is reported and removed, and names no path', async (t) => {
  const { root, spec, before } = setup(t);
  fs.mkdirSync(path.join(root, 'run/vfioctl'), { recursive: true, mode: 0o700 });
  const kernel = new FakeKernel(root, spec);
  for (const journal of [
    '{not json',
    JSON.stringify({ schemaVersion: 1, pid: 1, command: 'x', startedAt: 'y', subjects: [{ kind: 'file', path: '/etc/shadow', content: 'pwned', link: null, mode: 420 }] }),
    JSON.stringify({ schemaVersion: 1, pid: 1, command: 'x', startedAt: 'y', subjects: [{ kind: 'device', bdf: '0000:01:00.0', driver: '../../../../tmp/x', override: null }] }),
    JSON.stringify({ schemaVersion: 1, pid: 1, command: 'x', startedAt: 'y', subjects: [{ kind: 'node', path: '/dev/vfio/../../etc/passwd', uid: 0, gid: 0, mode: 511 }] }),
  ]) {
    fs.writeFileSync(path.join(root, 'run/vfioctl/journal.json'), journal);
    const r = await cli(['unbind', '0000:00:03.0', '--json'], root, { makeFs: () => kernel, env: FAKE_LAB_ENV });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /journal that cannot be trusted was removed/);
    assert.ok(r.json().recovered.damaged);
    assert.ok(!fs.existsSync(path.join(root, 'run/vfioctl/journal.json')));
    assert.ok(!fs.existsSync(path.join(root, 'etc/shadow')));
  }
  assert.deepEqual(treeDiff(before, snapshotTree(root)), []);
  assert.ok(kernel.writes.every((w) => !w.path.includes('..')), 'no write through a name from the journal');
});
