import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { VERSION } from '../../src/cli/program.js';

const { root, cleanup } = tempRoot();
test.after(cleanup);
buildTree(root, {
  devices: [
    { bdf: '0000:00:01.0', id: '8086:1901', class: '060400', driver: 'pcieport', group: 1 },
    { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '10de:2204', class: '030000', driver: 'vfio-pci', vfioDev: 'vfio0', group: 2 },
    { bdf: '0000:01:00.1', parent: '0000:00:01.0', id: '10de:1aef', class: '040300', driver: 'snd_hda_intel', override: 'vfio-pci', group: 2 },
  ],
});
const ANSI = /\u001b\[/;

test('--json: exactly one document, schemaVersion 1, no ANSI even when colour is forced', async () => {
  for (const [args, env, isTTY] of [
    [['groups', '--json'], { NO_COLOR: '1' }, false],
    [['groups', '--json', '--color'], {}, true],
    [['--color', 'groups', '--json'], { FORCE_COLOR: '3' }, true],
    [['show', '01:00.1', '--json', '--color'], {}, true],
  ] as const) {
    const r = await cli([...args], root, { env: { ...env }, isTTY });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, ANSI, args.join(' '));
    const doc = r.json(); // throws unless stdout is a single JSON document
    assert.equal(typeof doc, 'object');
    assert.equal(doc.schemaVersion, 1);
    assert.ok(r.stdout.endsWith('}\n'));
  }
});

test('groups --json: the contract fields of the issue, with override and vfio state', async () => {
  const doc = (await cli(['groups', '--json', '--group', '2'], root)).json();
  const g = doc.groups[0];
  assert.deepEqual(Object.keys(g).slice(0, 5), ['id', 'viable', 'blockers', 'reason', 'reasonCode']);
  assert.deepEqual(g.blockers, ['0000:01:00.1']);
  const audio = g.devices[1];
  for (const k of ['bdf', 'vendorId', 'deviceId', 'subsystemVendorId', 'subsystemDeviceId', 'classCode', 'vendorName', 'deviceName', 'className', 'driver', 'driverOverride', 'bridge', 'resetMethods', 'physfn', 'numaNode']) {
    assert.ok(k in audio, k);
  }
  assert.equal(audio.driverOverride, 'vfio-pci');
  assert.equal(audio.subsystemVendorId, '10de');
  assert.equal(audio.subsystemDeviceId, '0000');
  // On snd_hda_intel with an override naming vfio-pci: flagged as disagreeing.
  assert.equal(audio.overrideMismatch, true);
  assert.equal(g.devices[0].overrideMismatch, false);
  const r = await cli(['groups', '--group', '2'], root);
  assert.match(r.stdout, /snd_hda_intel \(override vfio-pci!\)/);
  assert.match(r.stderr, /0000:01:00.1: driver_override is vfio-pci but the device is on snd_hda_intel: an interrupted change\?/);
});

test('colour: only on a TTY; NO_COLOR and --no-color turn it off; --color forces it', async () => {
  const coloured = async (args: string[], env: Record<string, string>, isTTY: boolean) => ANSI.test((await cli(args, root, { env, isTTY })).stdout);
  assert.equal(await coloured(['groups'], {}, true), true, 'TTY');
  assert.equal(await coloured(['groups'], {}, false), false, 'pipe');
  assert.equal(await coloured(['groups'], { NO_COLOR: '1' }, true), false, 'NO_COLOR');
  assert.equal(await coloured(['groups', '--no-color'], {}, true), false, '--no-color');
  assert.equal(await coloured(['--no-color', 'groups'], { FORCE_COLOR: '1' }, true), false, '--no-color beats FORCE_COLOR');
  assert.equal(await coloured(['groups', '--color'], {}, false), true, '--color on a pipe');
  assert.equal(await coloured(['groups'], { FORCE_COLOR: '1' }, false), true, 'FORCE_COLOR on a pipe');
  assert.equal(await coloured(['groups'], { TERM: 'dumb' }, true), false, 'dumb terminal');
  assert.equal(await coloured(['show', '01:00.0'], {}, true), true, 'show colours too');
});

test('usage errors exit 2 with one vfioctl: line and a hint', async () => {
  for (const args of [['frob'], ['groups', '--bogus'], ['--bogus', 'groups'], ['show'], ['groups', '--group'], ['show', 'a', 'b']]) {
    const r = await cli(args, root);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0]!, /^vfioctl: usage: \S/, args.join(' '));
    assert.match(lines[lines.length - 1]!, /^hint: /);
    assert.ok(lines.length <= 3, r.stderr);
  }
  const unknown = await cli(['grops'], root);
  assert.match(unknown.stderr, /^vfioctl: usage: unknown command 'grops'/);
  const invalid = await cli(['groups', '--group', 'x'], root);
  assert.equal(invalid.code, 2);
  assert.equal(invalid.stderr, 'vfioctl: invalid group "x": a group is a non-negative number\n');
});

test('missing group or device exits 3 with what, why and a hint', async () => {
  const g = await cli(['groups', '--group', '42'], root);
  assert.equal(g.code, 3);
  assert.equal(g.stderr, "vfioctl: group 42: no such IOMMU group\nhint: run 'vfioctl groups' to list groups\n");
  const d = await cli(['show', '0000:05:00.0'], root);
  assert.equal(d.code, 3);
  assert.equal(d.stderr, "vfioctl: device 0000:05:00.0: no such PCI device\nhint: run 'vfioctl groups' to list devices\n");
});

test('--help and --version exit 0 on stdout', async () => {
  const v = await cli(['--version'], root);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), VERSION);
  const h = await cli(['groups', '--help'], root);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--not-viable/);
  assert.equal(h.stderr, '');
});

test('an unexpected error is internal (70): one line, no stack unless VFIOCTL_DEBUG', async () => {
  const boom = () => {
    throw new TypeError('boom');
  };
  const quiet = await cli(['groups'], root, { makeFs: boom as unknown as (r: string) => FsRoot });
  assert.equal(quiet.code, 70);
  assert.match(quiet.stderr, /^vfioctl: internal error \(please report, vfioctl .*\): boom\n$/);
  const debug = await cli(['groups'], root, { makeFs: boom as unknown as (r: string) => FsRoot, env: { NO_COLOR: '1', VFIOCTL_DEBUG: '1' } });
  assert.match(debug.stderr, /\n\s+at /, 'stack printed with VFIOCTL_DEBUG');
});

test('VFIOCTL_ROOT works like --root, and --root wins over it', async () => {
  const viaFlag = await cli(['groups', '--json'], root);
  const viaEnv = await cli(['groups', '--json'], undefined, { env: { NO_COLOR: '1', VFIOCTL_ROOT: root } });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.equal(viaEnv.stdout, viaFlag.stdout);
  const { root: empty, cleanup: done } = tempRoot();
  try {
    buildTree(empty, { devices: [] });
    const both = await cli(['groups', '--json'], root, { env: { NO_COLOR: '1', VFIOCTL_ROOT: empty } });
    assert.equal(both.json().groups.length, 2, '--root wins');
    const emptyEnv = await cli(['groups', '--json'], undefined, { env: { NO_COLOR: '1', VFIOCTL_ROOT: empty } });
    assert.deepEqual(emptyEnv.json().groups, []);
  } finally {
    done();
  }
});

test('a host without IOMMU groups: plain message and exit 0; the kernel command line is named when it is the cause', async () => {
  const { root: r, cleanup: done } = tempRoot();
  try {
    buildTree(r, { devices: [{ bdf: '0000:00:02.0', id: '8086:46a6', class: '030000', driver: 'i915' }], cmdline: 'root=/dev/sda1 intel_iommu=off quiet' });
    const t = await cli(['groups'], r);
    assert.equal(t.code, 0);
    const [first, hint, ...rest] = t.stdout.split('\n');
    assert.equal(first, 'No IOMMU groups: the IOMMU is disabled on the kernel command line (intel_iommu=off).');
    // The first minute: where to go from here, as commands that work (see hints.test.ts).
    assert.equal(hint, `hint: run 'vfioctl --root ${r} doctor' to see what to change; to see vfioctl on a host with an IOMMU, run 'vfioctl --root examples/hosts/switch groups' (a sample tree it ships)`);
    assert.deepEqual(rest, ['']);
    const { hint: jsonHint, ...doc } = (await cli(['groups', '--json'], r)).json();
    assert.deepEqual(doc, { schemaVersion: 1, iommuPresent: false, groups: [] });
    assert.equal(`hint: ${jsonHint}`, hint);
  } finally {
    done();
  }
});

test('groups, reset-plan and show are built without the other commands, and behave the same as in the full tree', async () => {
  const { commandNameOf } = await import('../../src/cli/program-base.js');
  const { createProgram } = await import('../../src/cli/program.js');
  assert.equal(commandNameOf(['groups', '--json']), 'groups');
  assert.equal(commandNameOf(['--root', '/x', '--no-color', '-v', 'groups']), 'groups');
  assert.equal(commandNameOf(['--root=/x', '--color', 'show', '01:00.0']), 'show');
  assert.equal(commandNameOf(['--root', 'groups', 'show']), 'show', "--root's value is not the command");
  assert.equal(commandNameOf(['--help', 'groups']), undefined);
  assert.equal(commandNameOf(['--bogus', 'groups']), undefined);
  assert.equal(commandNameOf([]), undefined);
  const sink = { write: () => true };
  const full = createProgram({ stdout: sink, stderr: sink, env: {}, isTTY: false, runner: async () => ({ exitCode: 0, stdout: '', stderr: '' }) });
  for (const name of ['groups', 'reset-plan', 'show']) {
    const fullHelp = full.commands.find((c) => c.name() === name)!.helpInformation();
    const fastHelp = await cli([name, '--help'], root);
    assert.equal(fastHelp.stdout, fullHelp, name);
    const bad = await cli(['--no-color', name, '--bogus'], root);
    assert.equal(bad.code, 2, name);
    assert.match(bad.stderr, /^vfioctl: usage: unknown option '--bogus'\nhint: /, name);
  }
  // A missing operand is the same usage error in both.
  const missing = await cli(['--no-color', 'reset-plan'], root);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^vfioctl: usage: missing required argument 'selector'/);
});
