import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { stripAnsi } from '../../src/cli/render/table.js';
import { cli } from '../helpers/cli.js';

test('groups --json: viability, blockers and reason on a built tree', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, {
    devices: [
      { bdf: '0000:00:00.0', id: '8086:29c0', class: '060000', group: 0, resetMethods: null },
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 2 },
      { bdf: '0000:00:1f.0', id: '8086:2918', class: '060100', driver: 'lpc_ich', group: 3 },
      { bdf: '0000:00:1f.3', id: '8086:2930', class: '0c0500', group: 3 },
    ],
  });
  const r = await cli(['groups', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.schemaVersion, 1);
  assert.deepEqual(doc.groups.map((g: any) => g.id), [0, 1, 2, 3]);
  const g2 = doc.groups[2];
  assert.equal(g2.viable, false);
  assert.deepEqual(g2.blockers, ['0000:01:00.0']);
  assert.equal(g2.reason.startsWith('isolated'), true);
  assert.equal(g2.devices[0].deviceId, '10d3');
  assert.equal(g2.devices[0].driver, 'e1000e');
  assert.equal(g2.devices[0].driverOverride, null);
  assert.deepEqual(g2.devices[0].resetMethods, ['pm', 'bus']);
  assert.equal(doc.groups[1].viable, true, 'pcieport keeps a group viable');
  assert.equal(doc.groups[3].reasonCode, 'root-bus-multifunction');
  assert.deepEqual(doc.groups[3].blockers, ['0000:00:1f.0']);
});

test('groups on a TTY: borderless table with colour; NO_COLOR keeps the layout and drops the colour', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, {
    devices: [
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '10de:2204', class: '030000', driver: 'vfio-pci', group: 2 },
      { bdf: '0000:01:00.1', parent: '0000:00:01.0', id: '10de:1aef', class: '040300', driver: 'snd_hda_intel', group: 2 },
    ],
  });
  const tty = await cli(['groups'], root, { isTTY: true, env: { COLUMNS: '120' } });
  assert.equal(tty.code, 0, tty.stderr);
  assert.doesNotMatch(tty.stdout, /[┌│─]/, 'no borders, no rules');
  assert.match(tty.stdout, /\u001b\[31msnd_hda_intel/, 'the blocker is red');
  assert.match(tty.stdout, /why shared: functions of one multifunction device/);
  const plain = await cli(['groups'], root, { isTTY: true, env: { NO_COLOR: '1', COLUMNS: '120' } });
  assert.equal(plain.stdout, stripAnsi(tty.stdout));
  assert.doesNotMatch(plain.stdout, /\u001b\[/);
  const piped = await cli(['groups'], root, { isTTY: false, env: {} });
  assert.doesNotMatch(piped.stdout, /[┌│]/, 'pipes get plain columns');
});
