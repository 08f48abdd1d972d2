import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TreeSpec } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { FAKE_LAB_ENV, fakeLab } from '../helpers/fake-lab.js';
import { run } from '../../src/cli/main.js';
import { recordingRunner } from '../helpers/cli.js';
import { parseDesiredState } from '../../src/provision/desired-state.js';
import { VfioctlError } from '../../src/errors.js';

const ENV = FAKE_LAB_ENV;

function lab(t: { after: (f: () => void) => void }, spec: TreeSpec = labSpec()) {
  const { root, kernel, run, at } = fakeLab(t, spec);
  const file = (doc: unknown) => {
    const p = path.join(root, `state-${Math.random().toString(16).slice(2)}.json`);
    fs.writeFileSync(p, typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2));
    return p;
  };
  return { root, kernel, vfioctl: run, driverOf: (bdf: string) => at(bdf).driver, file };
}

const DESIRED = {
  schemaVersion: 1,
  devices: [
    { match: '0000:01:00.0', driver: 'vfio-pci' },
    { match: '8086:100e', driver: 'vfio-pci' },
    { match: '0000:00:05.0', driver: 'host' },
  ],
};

test('apply converges (bind, whole-group pattern, give back) with bind --json output, then is idempotent', async (t) => {
  const { kernel, vfioctl, driverOf, file } = lab(t);
  const f = file(DESIRED);
  const r = await vfioctl('apply', f, '--json');
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.schemaVersion, 1);
  assert.equal(doc.changed, true);
  assert.deepEqual(doc.actions.map((a: any) => [a.bdf, a.from, a.to, a.status]), [
    ['0000:00:05.0', 'vfio-pci', null, 'unbound'],
    ['0000:01:00.0', 'e1000e', 'vfio-pci', 'bound'],
    ['0000:03:01.0', 'e1000', 'vfio-pci', 'bound'],
    ['0000:03:02.0', 'e1000', 'vfio-pci', 'bound'],
  ]);
  assert.equal(driverOf('0000:01:00.0'), 'vfio-pci');
  assert.equal(driverOf('0000:03:02.0'), 'vfio-pci');
  assert.notEqual(driverOf('0000:00:05.0'), 'vfio-pci');
  const writes = kernel.log.length;

  const again = await vfioctl('apply', f, '--json');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.json().changed, false);
  assert.ok(again.json().actions.every((a: any) => a.status === 'unchanged'));
  assert.equal(kernel.log.length, writes, 'a converged host gets no writes');
});

test('apply --dry-run plans without writing; text output names each device', async (t) => {
  const { kernel, vfioctl, file } = lab(t);
  const r = await vfioctl('apply', file(DESIRED), '--dry-run');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /0000:01:00.0: e1000e -> vfio-pci \(planned\)/);
  assert.match(r.stdout, /dry run: nothing written/);
  assert.deepEqual(kernel.log, []);
});

test('apply refuses an unsafe state as a whole (split group): exit 4, nothing written', async (t) => {
  const { kernel, vfioctl, file } = lab(t);
  const r = await vfioctl('apply', file({ schemaVersion: 1, devices: [{ match: '0000:01:00.0', driver: 'vfio-pci' }, { match: 'eth1', driver: 'vfio-pci' }] }), '--json');
  assert.equal(r.code, 4);
  const acts = r.json().actions;
  assert.equal(acts.find((a: any) => a.bdf === '0000:03:01.0').status, 'refused');
  assert.match(acts.find((a: any) => a.bdf === '0000:03:01.0').reason, /group 4/);
  assert.equal(acts.find((a: any) => a.bdf === '0000:01:00.0').status, 'unchanged', 'not attempted');
  assert.deepEqual(kernel.log, []);
});

test('apply rolls back every device when one fails', async (t) => {
  const { kernel, vfioctl, driverOf, file } = lab(t);
  kernel.failNext({ path: /drivers\/e1000\/unbind$/, errno: 'EIO' });
  const r = await vfioctl('apply', file(DESIRED), '--json');
  assert.equal(r.code, 1, r.stderr);
  const statuses = r.json().actions.map((a: any) => a.status);
  assert.ok(statuses.includes('failed'), statuses.join());
  assert.ok(statuses.includes('rolled-back'), statuses.join());
  assert.equal(driverOf('0000:01:00.0'), 'e1000e', 'rolled back');
  assert.equal(driverOf('0000:00:05.0'), 'vfio-pci', 'rolled back');
  assert.equal(driverOf('0000:03:01.0'), 'e1000');
});

test('apply rejects malformed files with the line and field at fault, exit 2, no write', async (t) => {
  const { kernel, vfioctl, file } = lab(t);
  const cases: [string, RegExp][] = [
    ['{\n  "schemaVersion": 1,\n  "devices": [\n    {"match": "0000:01:00.0", "driver": "vfio-pci",}\n  ]\n}', /:4: column 52: invalid JSON: expected a "key"/],
    ['{"schemaVersion": 2, "devices": []}', /:1: schemaVersion: must be 1, found 2/],
    ['{\n"schemaVersion": 1,\n"devices": [\n{"match": "0000:01:00.0"}\n]}', /:4: devices\[0\]\.driver: missing/],
    ['{\n"schemaVersion": 1,\n"devices": [{"match": "0000:01:00.0", "driver": "vfio-pci"},\n{"match": "eth0", "drvier": "host"}]}', /:4: devices\[1\]\.drvier: unknown field/],
    ['{"schemaVersion": 1, "schemaVersion": 1, "devices": []}', /duplicate key "schemaVersion"/],
    ['{"schemaVersion": 1, "devices": {"match": "x"}}', /devices: expected an array, found an object/],
    ['{"schemaVersion": 1, "devices": [{"match": 7, "driver": "auto"}]}', /devices\[0\]\.match: expected a string, found a number/],
    ['{"schemaVersion": 1, "devices": [{"match": "../../etc", "driver": "auto"}]}', /devices\[0\]\.match: "..\/..\/etc" is not a device selector/],
    ['{"schemaVersion":1,"devices":[{"match":"0000:01:00.0","driver":"auto"},\n{"match":"0000:01:00.0","driver":"host"}]}', /:2: devices\[1\]\.match: "0000:01:00.0" is already listed on line 1/],
    ['', /invalid JSON: unexpected end of input/],
  ];
  for (const [text, re] of cases) {
    const r = await vfioctl('apply', file(text));
    assert.equal(r.code, 2, `${text}: ${r.stderr}`);
    assert.match(r.stderr, re, text);
    assert.match(r.stderr, /nothing was changed/);
  }
  const missing = await vfioctl('apply', file({ schemaVersion: 1, devices: [{ match: '0000:0a:00.0', driver: 'vfio-pci' }] }));
  assert.equal(missing.code, 3);
  assert.deepEqual(kernel.log, []);
});

test('apply: an address overrides a VENDOR:DEVICE pattern; a pattern matching nothing only warns', async (t) => {
  const { vfioctl, file } = lab(t);
  const r = await vfioctl('apply', file({ schemaVersion: 1, devices: [
    { match: '8086:100e', driver: 'vfio-pci' },
    { match: '0000:03:02.0', driver: 'host' },
    { match: 'dead:beef', driver: 'auto' },
  ] }), '--dry-run', '--json');
  assert.match(r.stderr, /no device matches dead:beef/);
  // 03:02.0 stays on e1000 (host), so binding 03:01.0 alone would split group 4: refused.
  assert.equal(r.code, 4);
  assert.deepEqual(r.json().actions.map((a: any) => [a.bdf, a.status]), [['0000:03:01.0', 'refused'], ['0000:03:02.0', 'unchanged']]);
});

test('apply --export prints the vfio bindings as a file that apply accepts unchanged; - reads stdin', async (t) => {
  const { root, kernel, vfioctl } = lab(t);
  const exp = await vfioctl('apply', '--export');
  assert.equal(exp.code, 0, exp.stderr);
  assert.deepEqual(JSON.parse(exp.stdout), { schemaVersion: 1, devices: [{ match: '0000:00:05.0', driver: 'vfio-pci' }] });
  let stdout = '';
  let stderr = '';
  const code = await run(['--root', root, 'apply', '-', '--json'], {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: ENV, isTTY: false, runner: recordingRunner().runner, makeFs: () => kernel,
    readStdin: async () => exp.stdout,
  });
  assert.equal(code, 0, stderr);
  assert.equal(JSON.parse(stdout).changed, false);
  assert.deepEqual(kernel.log, []);
});

test('apply --persist installs the boot files after a successful apply (JSON stays one document)', async (t) => {
  const { root, vfioctl, file } = lab(t);
  const r = await vfioctl('apply', file({ schemaVersion: 1, devices: [{ match: 'eth0', driver: 'vfio-pci' }] }), '--persist', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().changed, true);
  assert.match(r.stderr, /persist: create \/etc\/udev\/rules.d\/60-vfioctl.rules/);
  assert.match(fs.readFileSync(path.join(root, 'etc/udev/rules.d/60-vfioctl.rules'), 'utf8'), /KERNEL=="0000:01:00.0", ATTR\{driver_override\}="vfio-pci"/);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'etc/vfioctl/desired.json'), 'utf8')).devices, [{ match: '0000:01:00.0', driver: 'vfio-pci' }]);
});

test('parseDesiredState: valid input keeps entry lines; errors are usage errors', () => {
  const s = parseDesiredState('\uFEFF{"schemaVersion":1,\n"devices":[\n{"match":"10de:2330","driver":"auto"},\n{"match":"group:4","driver":"mlx5_vfio_pci"}]}');
  assert.deepEqual(s.devices.map((d) => [d.match, d.driver, d.line]), [['10de:2330', 'auto', 3], ['group:4', 'mlx5_vfio_pci', 4]]);
  assert.throws(() => parseDesiredState('[1]', 'x.json'), (e: unknown) => e instanceof VfioctlError && e.code === 2 && /x\.json:1/.test(e.what));
  assert.throws(() => parseDesiredState('{"schemaVersion":1,"devices":[]} trailing'), /after the document/);
  assert.throws(() => parseDesiredState('{"schemaVersion":1,"devices":["\u0001"]}'), /control character/);
});

test('apply --skip-missing (the boot unit): a device that is gone is reported, the others are bound, exit 0', async (t) => {
  const { kernel, vfioctl, driverOf, file } = lab(t);
  const f = file({ schemaVersion: 1, devices: [{ match: '0000:0a:00.0', driver: 'vfio-pci' }, { match: '0000:01:00.0', driver: 'vfio-pci' }, { match: 'eth9', driver: 'vfio-pci' }] });
  const strict = await vfioctl('apply', f, '--json');
  assert.equal(strict.code, 3, 'without it a missing device is an error');
  assert.deepEqual(kernel.log, [], 'and nothing is bound');
  const r = await vfioctl('apply', '--skip-missing', f, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /json:4: device 0000:0a:00.0: no such PCI device; skipped/);
  assert.match(r.stderr, /eth9.*; skipped/);
  assert.deepEqual(r.json().actions.map((a: any) => [a.bdf, a.status]), [['0000:01:00.0', 'bound']]);
  assert.equal(driverOf('0000:01:00.0'), 'vfio-pci');
});

test('apply --only (the hotplug unit): a device a loaded host driver took before udev set the override ends on its VFIO driver; other entries are left alone', async (t) => {
  const { root, vfioctl, driverOf, file } = lab(t);
  // The race: e1000e bound the device in device_add, then the rule wrote driver_override.
  const dev = fs.realpathSync(path.join(root, 'sys/bus/pci/devices/0000:01:00.0'));
  fs.writeFileSync(path.join(dev, 'driver_override'), 'vfio-pci\n');
  assert.equal(driverOf('0000:01:00.0'), 'e1000e');
  const f = file(DESIRED);
  const r = await vfioctl('apply', '--skip-missing', '--only', '0000:01:00.0', f, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json().actions.map((a: any) => [a.bdf, a.from, a.to, a.status]), [['0000:01:00.0', 'e1000e', 'vfio-pci', 'bound']]);
  assert.equal(driverOf('0000:01:00.0'), 'vfio-pci');
  assert.equal(driverOf('0000:03:01.0'), 'e1000', 'the pattern entry is not applied to other devices');
  assert.equal(driverOf('0000:00:05.0'), 'vfio-pci', 'nor the host entry');
  // Once there, a second add event's run changes nothing.
  const again = await vfioctl('apply', '--skip-missing', '--only', '0000:01:00.0', f, '--json');
  assert.equal(again.json().changed, false);
  // A device the file does not name, or one gone again before the unit ran: nothing to do.
  const other = await vfioctl('apply', '--only', '0000:00:04.0', f, '--json');
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stderr, /has no entry for 0000:00:04.0; nothing to do/);
  const gone = await vfioctl('apply', '--skip-missing', '--only', '0000:0a:00.0', f, '--json');
  assert.equal(gone.code, 0, gone.stderr);
  assert.match(gone.stderr, /--only 0000:0a:00.0: .*no such PCI device; skipped/);
  assert.equal((await vfioctl('apply', '--only', '0000:0a:00.0', f)).code, 3, 'without --skip-missing it is an error');
  assert.equal((await vfioctl('apply', '--only', '0000:01:00.0', '--persist', f)).code, 2);
});
