import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli, REPO } from '../helpers/cli.js';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { ERROR_CODES } from '../../src/errors.js';

const { root, cleanup } = tempRoot();
test.after(cleanup);
buildTree(root, labSpec());

/** Every run here also goes through the schema check of helpers/cli.ts. */
async function errorDoc(args: string[], exit: number, code: string) {
  const r = await cli(args, root);
  assert.equal(r.code, exit, `${args.join(' ')}: ${r.stderr}`);
  const doc = r.json();
  assert.deepEqual(Object.keys(doc), ['schemaVersion', 'error']);
  assert.equal(doc.error.code, code, args.join(' '));
  assert.equal(doc.error.exit, exit);
  // The human form stays on stderr, as without --json.
  assert.match(r.stderr, /^vfioctl: /, args.join(' '));
  assert.ok(r.stderr.includes(doc.error.message.split(':')[0]), r.stderr);
  return doc.error;
}

test('--json: an error document on stdout for usage errors, unknown devices and groups, whatever the position of --json', async () => {
  const usage = await errorDoc(['groups', '--bogus', '--json'], 2, 'usage');
  assert.match(usage.message, /unknown option '--bogus'/);
  assert.match(usage.hint, /vfioctl --help/);
  await errorDoc(['--json', 'frob'], 2, 'usage');
  await errorDoc(['show', '--json'], 2, 'usage');
  await errorDoc(['groups', '--group', 'x', '--json'], 2, 'usage');
  const dev = await errorDoc(['show', '09:00.0', '--json'], 3, 'no-such-device');
  assert.equal(dev.message, 'device 0000:09:00.0: no such PCI device');
  assert.equal(dev.hint, "run 'vfioctl groups' to list devices");
  await errorDoc(['groups', '--group', '99', '--json'], 3, 'no-such-group');
  await errorDoc(['reset-plan', 'group:99', '--json'], 3, 'no-such-group');
  await errorDoc(['show', '5:0.0', '--json'], 2, 'usage');
  await errorDoc(['snapshot', '--json'], 2, 'usage');
});

test('--json: a command that printed its document and then fails prints no second document', async () => {
  // doctor on a tree without an IOMMU fails (exit 1) after printing its checks.
  const r = await cli(['doctor', '--json'], root);
  assert.equal(r.code, 1);
  const doc = r.json();
  assert.equal(doc.ok, false);
  assert.equal(doc.error, undefined);
  for (const c of doc.checks) assert.match(c.code, /^[a-z0-9]+(-[a-z0-9]+)*$/, c.id);
});

test('without --json errors print nothing on stdout, and -- ends the options', async () => {
  const r = await cli(['show', '09:00.0'], root);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, '');
});

test('the error codes are documented in the man page and the error schema', () => {
  const man = fs.readFileSync(path.join(REPO, 'man/vfioctl.8'), 'utf8');
  const section = man.slice(man.indexOf('.SH ERROR CODES'), man.indexOf('.SH', man.indexOf('.SH ERROR CODES') + 4));
  const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'schema/error.schema.json'), 'utf8'));
  assert.deepEqual([...schema.properties.error.properties.code.enum].sort(), [...ERROR_CODES].sort());
  for (const code of ERROR_CODES) assert.ok(section.includes(`.B ${code.replace(/-/g, '\\-')}`), `man ERROR CODES lacks ${code}`);
});

test('colour: the flag beats the environment (--color over NO_COLOR, --no-color over FORCE_COLOR)', async () => {
  const ansi = /\u001b\[/;
  assert.match((await cli(['groups', '--color'], root, { env: { NO_COLOR: '1' } })).stdout, ansi);
  assert.doesNotMatch((await cli(['groups', '--no-color'], root, { env: { FORCE_COLOR: '1' }, isTTY: true })).stdout, ansi);
  assert.doesNotMatch((await cli(['groups'], root, { env: { NO_COLOR: '1' }, isTTY: true })).stdout, ansi);
});

test('show: network interfaces, block devices and subsystem names, like lspci', async (t) => {
  const r = await cli(['show', 'eth0'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^interfaces: +eth0$/m);
  const disk = await cli(['show', '00:03.0', '--json'], root);
  assert.deepEqual(disk.json().blockDevices, ['nvme0n1']);
  assert.deepEqual(disk.json().interfaces, []);
  assert.match((await cli(['show', '00:03.0'], root)).stdout, /^block devices: +nvme0n1$/m);
  // Subsystem names from pci.ids (the lab capture has its own).
  const lab = path.join(REPO, 'test/fixtures/lab-switch/host');
  const lpc = await cli(['show', '00:1f.0'], lab);
  assert.match(lpc.stdout, /^subsystem: +\[1af4:1100\] Red Hat, Inc\. QEMU Virtual Machine$/m);
  const doc = (await cli(['show', '00:1f.0', '--json'], lab)).json();
  assert.equal(doc.subsystemVendorName, 'Red Hat, Inc.');
  assert.equal(doc.subsystemName, 'QEMU Virtual Machine');
  t.diagnostic('interfaces and disks come from /sys/class/net and /sys/class/block below the function');
});

test('--json: an internal error (a bug) still prints the error document, code internal-error, exit 70', async () => {
  const r = await cli(['groups', '--json'], root, { makeFs: () => { throw new Error('boom'); } });
  assert.equal(r.code, 70);
  const doc = r.json();
  assert.equal(doc.error.code, 'internal-error');
  assert.match(doc.error.message, /boom/);
  assert.match(r.stderr, /^vfioctl: internal error \(please report/);
});

test('--json: --help and --version answer with a document too', async () => {
  const help = await cli(['groups', '--help', '--json'], root);
  assert.equal(help.code, 0);
  assert.match(help.json().help, /^Usage: vfioctl groups/);
  const version = await cli(['--version', '--json'], root);
  assert.deepEqual(version.json(), { schemaVersion: 1, version: '0.1.0' });
  // Without --json, the text as before.
  assert.match((await cli(['groups', '--help'], root)).stdout, /^Usage: vfioctl groups/);
});
