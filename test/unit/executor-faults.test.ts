import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTree, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { labSpec } from '../helpers/lab-tree.js';
import { FAKE_LAB_ENV } from '../helpers/fake-lab.js';
import { snapshotTree, treeDiff } from '../helpers/tree-snapshot.js';

/**
 * Every mutating command, with every one of its file-system calls failed in turn (sysfs writes,
 * state records, the journal, device-node ownership, generated files), with rotating errnos
 * and with a thrown bug. Each run must end with the tree exactly as it began (or, when the
 * failed call did not matter, exactly as a clean run leaves it), no journal left behind, a
 * documented exit code, and JSON that says what really happened.
 */

const ERRNOS = ['EBUSY', 'ENODEV', 'EINVAL', 'EIO', 'EACCES', 'EROFS'];
const ELSEWHERE = fs.mkdtempSync(path.join(os.tmpdir(), 'vfioctl-desired-'));
const desired = (name: string, devices: object[]) => {
  const p = path.join(ELSEWHERE, name);
  fs.writeFileSync(p, JSON.stringify({ schemaVersion: 1, devices }));
  return p;
};

const sriovSpec = (): TreeSpec => ({
  osrelease: '6.1.0-test',
  modulesAlias: 'alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n',
  drivers: { 'vfio-pci': 'vfio_pci', nvme: 'nvme' },
  devices: [
    { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
    { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '1b36:0010', class: '010802', driver: 'nvme', group: 2, sriov: { total: 4, num: 0 } },
  ],
});

interface Scenario {
  readonly name: string;
  readonly spec: () => TreeSpec;
  readonly opts?: ConstructorParameters<typeof FakeKernel>[2];
  /** Commands run first (not failed), e.g. a bind before an unbind. */
  readonly prep?: readonly string[][];
  readonly argv: readonly string[];
  /** Files the tree needs (passwd for grant). */
  readonly files?: Record<string, string>;
}

const SCENARIOS: Scenario[] = [
  { name: 'bind', spec: labSpec, argv: ['bind', '01:00.0', '--variant', 'vfio-pci'] },
  { name: 'bind --group', spec: labSpec, argv: ['bind', '03:01.0', '--group', '--variant', 'vfio-pci'] },
  { name: 'unbind', spec: labSpec, prep: [['bind', '01:00.0', '03:01.0', '--group', '--variant', 'vfio-pci']], argv: ['unbind', '01:00.0', '03:01.0', '03:02.0'] },
  { name: 'apply', spec: labSpec, argv: ['apply', desired('apply.json', [{ match: '01:00.0', driver: 'vfio-pci' }, { match: '00:03.0', driver: 'vfio-pci' }, { match: '00:05.0', driver: 'host' }])] },
  { name: 'vfs --bind', spec: sriovSpec, opts: { idTables: { nvme: ['1b36:0010'] } }, argv: ['vfs', '01:00.0', '--count', '2', '--bind', 'vfio-pci'] },
  { name: 'vfs --count 0 (VFs on vfio)', spec: sriovSpec, opts: { idTables: { nvme: ['1b36:0010'] } }, prep: [['vfs', '01:00.0', '--count', '2', '--bind', 'vfio-pci']], argv: ['vfs', '01:00.0', '--count', '0'] },
  { name: 'grant', spec: labSpec, prep: [['bind', '01:00.0', '--variant', 'vfio-pci']], argv: ['grant', '01:00.0', '--user', 'alice', '--group', 'kvm'], files: { 'etc/passwd': 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n', 'etc/group': 'root:x:0:\nkvm:x:36:alice\n' } },
  { name: 'persist', spec: labSpec, argv: ['persist', desired('persist.json', [{ match: '01:00.0', driver: 'vfio-pci' }, { match: '8086:100e', driver: 'vfio-pci' }])], files: { 'etc/vfioctl/desired.json': '{"schemaVersion":1,"devices":[]}\n' } },
  { name: 'persist --remove', spec: labSpec, prep: [['persist', desired('persist2.json', [{ match: '01:00.0', driver: 'vfio-pci' }])]], argv: ['persist', '--remove'] },
];

/** Record timestamps differ from run to run; nothing else may. */
const normalize = (snap: Map<string, string>) => new Map([...snap].map(([k, v]) => [k, v.replace(/"at": "[^"]*"/, '"at": "…"')]));

function setup(sc: Scenario) {
  const { root, cleanup } = tempRoot();
  const spec = sc.spec();
  buildTree(root, spec);
  for (const [p, text] of Object.entries(sc.files ?? {})) {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text);
  }
  const kernel = new FakeKernel(root, spec, sc.opts);
  const run = (argv: readonly string[]) => cli([...argv, '--json'], root, { makeFs: () => kernel, env: { ...FAKE_LAB_ENV, VFIOCTL_EXEC: '/usr/bin/vfioctl' } });
  return { root, kernel, run, cleanup };
}

async function prepared(sc: Scenario) {
  const lab = setup(sc);
  for (const argv of sc.prep ?? []) {
    const r = await lab.run(argv);
    assert.equal(r.code, 0, `${sc.name}: prep ${argv.join(' ')}: ${r.stderr}`);
  }
  return { ...lab, before: normalize(snapshotTree(lab.root)), from: lab.kernel.ops.length };
}

for (const sc of SCENARIOS) {
  test(`faults: ${sc.name} — every call failed in turn ends as it began, with the truth in JSON`, async (t) => {
    // A clean run: how many calls it makes and how it leaves the tree.
    const clean = await prepared(sc);
    const ok = await clean.run(sc.argv);
    assert.equal(ok.code, 0, `${sc.name}: clean run: ${ok.stderr}`);
    const done = normalize(snapshotTree(clean.root));
    assert.notDeepEqual(done, clean.before, `${sc.name}: the clean run changes something`);
    const calls = clean.kernel.ops.length - clean.from;
    clean.cleanup();
    assert.ok(calls >= 2, `${sc.name}: ${calls} calls`);

    let failures = 0;
    for (let i = 0; i < calls; i++) {
      for (const errno of [ERRNOS[i % ERRNOS.length]!, 'THROW']) {
        const lab = await prepared(sc);
        lab.kernel.failOp(lab.from + i, errno);
        const r = await lab.run(sc.argv);
        const what = `${sc.name}: call ${i} (${lab.kernel.ops[lab.from + i] ?? '?'}) failing with ${errno}`;
        const after = normalize(snapshotTree(lab.root));
        assert.ok(!fs.existsSync(path.join(lab.root, 'run/vfioctl/journal.json')), `${what}: journal left behind`);
        assert.doesNotMatch(r.stderr, /\n\s+at .*\(.*:\d+:\d+\)/, `${what}: stack trace`);
        if (r.code === 0) {
          // The call did not matter to the outcome (e.g. a courtesy file): fully changed.
          assert.deepEqual(treeDiff(done, after), [], `${what}: exit 0 but not fully changed`);
          continue;
        }
        failures++;
        assert.ok(errno === 'THROW' ? r.code === 70 : r.code === 1 || r.code === 5, `${what}: exit ${r.code}: ${r.stderr}`);
        assert.deepEqual(treeDiff(lab.before, after), [], `${what}: not rolled back`);
        if (r.stdout.trim()) {
          const doc = r.json();
          if ('changed' in doc) assert.equal(doc.changed, false, `${what}: says changed`);
          if (doc.rollback) assert.equal(doc.rollback.complete, true, `${what}: rollback said incomplete`);
          for (const a of doc.actions ?? []) assert.ok(!['bound', 'unbound'].includes(a.status), `${what}: ${a.bdf} says ${a.status}`);
        }
        lab.cleanup();
      }
    }
    assert.ok(failures >= calls, `${sc.name}: ${failures} failing runs of ${2 * calls}`);
    t.diagnostic(`${calls} calls, ${2 * calls} runs, ${failures} failed and were rolled back`);
  });
}

test('faults: a failure during the rollback itself is reported truthfully (rollback failed, what is left, the fix)', async () => {
  const sc = SCENARIOS[1]!; // bind --group: two devices
  const clean = await prepared(sc);
  assert.equal((await clean.run(sc.argv)).code, 0);
  const calls = clean.kernel.ops.length - clean.from;
  clean.cleanup();
  let incomplete = 0;
  for (let i = 0; i < calls; i++) {
    // Fail a call, then every call of the rollback that restores a driver_override.
    const lab = await prepared(sc);
    lab.kernel.failOp(lab.from + i, 'EIO');
    for (let j = i + 1; j < i + 12; j++) lab.kernel.failOp(lab.from + j, 'EBUSY');
    const r = await lab.run(sc.argv);
    if (r.code === 0) continue; // only courtesy files failed
    const after = normalize(snapshotTree(lab.root));
    const same = treeDiff(lab.before, after).length === 0;
    const doc = r.json();
    if (doc.rollback) {
      assert.equal(doc.rollback.complete, same, `call ${i}: rollback.complete ${doc.rollback.complete} but the tree ${same ? 'is' : 'is not'} as it began: ${treeDiff(lab.before, after).join('; ')} ${JSON.stringify(doc.rollback)} ${lab.kernel.ops.slice(lab.from).join(', ')}`);
      if (!same) {
        incomplete++;
        assert.ok(doc.rollback.subjects.some((x: any) => x.status === 'rollback-failed' && x.fix), `call ${i}: no subject names its fix`);
        assert.equal(doc.changed, true);
        assert.match(r.stderr, /rollback failed|NOT put back/);
      }
    } else assert.ok(same, `call ${i}: no rollback reported but the tree changed`);
    lab.cleanup();
  }
  assert.ok(incomplete > 0, 'some double faults leave something to fix');
});
