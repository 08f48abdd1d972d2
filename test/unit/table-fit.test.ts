import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli, REPO } from '../helpers/cli.js';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { stripAnsi } from '../../src/cli/render/table.js';
import { cliTable, fitWidths, fixedColumns } from '../../src/cli/render/groups.js';
import { makeChalk } from '../../src/cli/color.js';

const LABS = fs.readdirSync(path.join(REPO, 'test/fixtures')).filter((d) => d.startsWith('lab-'));
const PCI_IDS = path.join(REPO, 'test/fixtures/pci.ids');

const widest = (text: string) => Math.max(...stripAnsi(text).split('\n').map((l) => l.length));

test('groups on a terminal fits COLUMNS (80 and 120) on every lab tree, with pci.ids names, one line per device, no rules', async () => {
  for (const lab of LABS) {
    for (const tree of ['host', 'vfio']) {
      const root = path.join(REPO, 'test/fixtures', lab, tree);
      const piped = await cli(['groups'], root);
      const deviceLine = (l: string) => /\b[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\b/.test(l) && !l.startsWith('        ');
      const devices = piped.stdout.split('\n').filter(deviceLine).length;
      for (const cols of [80, 120]) {
        const r = await cli(['groups'], root, { isTTY: true, env: { COLUMNS: String(cols) } });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(widest(r.stdout) <= cols, `${lab}/${tree} at ${cols}: ${widest(r.stdout)} columns\n${stripAnsi(r.stdout)}`);
        assert.doesNotMatch(r.stdout, /[─│┌┼]/, 'no borders or rules');
        const lines = stripAnsi(r.stdout).trimEnd().split('\n');
        assert.equal(lines.filter(deviceLine).length, devices, 'one line per device');
      }
      // --wide never cuts: the names are whole.
      const wide = await cli(['groups', '--wide'], root, { isTTY: true, env: { COLUMNS: '80' } });
      assert.doesNotMatch(stripAnsi(wide.stdout).split('\n').filter((l) => !l.startsWith('        ')).join('\n'), /…/, `${lab}/${tree} --wide`);
    }
  }
});

test('groups on a terminal cuts names with …, full names stay in show and --json', async () => {
  const root = path.join(REPO, 'test/fixtures/lab-switch/host');
  const r = await cli(['groups', '--group', '4'], root, { isTTY: true, env: { COLUMNS: '120' } });
  assert.match(r.stdout, /\[8086:2922\] Int[^\n]*…/);
  const narrow = await cli(['groups', '--group', '4'], root, { isTTY: true, env: { COLUMNS: '80' } });
  assert.match(narrow.stdout, /\[8086:2922\]/, 'at 80 columns the ids stay whole');
  assert.ok(widest(narrow.stdout) <= 80);
  const show = await cli(['show', '00:1f.2'], root);
  assert.match(show.stdout, /82801IR\/IO\/IH \(ICH9R\/DO\/DH\) 6 port SATA Controller \[AHCI mode\]/);
  const doc = (await cli(['groups', '--group', '4', '--json'], root)).json();
  assert.equal(doc.groups[0].devices[1].deviceName, '82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]');
});

test('groups on a terminal fits 80 columns without pci.ids names too', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, labSpec());
  for (const cols of [80, 120]) {
    const r = await cli(['groups'], root, { isTTY: true, env: { COLUMNS: String(cols) } });
    assert.ok(widest(r.stdout) <= cols, stripAnsi(r.stdout));
  }
});

test('fitWidths: names shrink first, then the class, then driver notes; fixed columns never', () => {
  assert.deepEqual(fitWidths([5, 6, 12, 40, 20, 30], 200), [5, 6, 12, 40, 20, 30]);
  const w = fitWidths([5, 6, 12, 40, 20, 30], 90);
  assert.deepEqual(w.slice(0, 3), [5, 6, 12]);
  assert.ok(w.reduce((a, b) => a + b, 0) + 10 <= 90, String(w));
  assert.equal(w[5], 30, 'the driver keeps its width while names can give');
  const tight = fitWidths([5, 6, 12, 40, 20, 60], 80);
  assert.ok(tight[5]! < 60 && tight[3] === 12 && tight[4] === 8, String(tight));
});

test('cliTable (small tables) and fixedColumns (large ones) print the same lines', async () => {
  const c = makeChalk(1);
  const head = ['GROUP', 'VIABLE', 'DEVICE'].map((h) => c.bold(h));
  const body = [
    { rows: [['1', c.green('yes'), '0000:00:01.0'], ['', '', '0000:00:01.1']], why: c.dim('        why shared: a reason') },
    { rows: [['12', c.red('no'), c.red('lpc_ich') + ' (bl…']], why: null },
  ];
  const widths = [5, 6, 12];
  assert.equal(fixedColumns(head, body, widths), await cliTable(head, body, widths));
});

test('a --root tree without pci.ids gets the names of the host pci.ids (injected here), ids unchanged', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, labSpec());
  const bare = (await cli(['show', '01:00.0', '--json'], root)).json();
  assert.equal(bare.vendorName, null, 'no pci.ids anywhere: no names');
  const named = (await cli(['show', '01:00.0', '--json'], root, { pciIdsFallback: ['/nonexistent/pci.ids', PCI_IDS] })).json();
  assert.equal(named.vendorName, 'Intel Corporation');
  assert.equal(named.vendorId, bare.vendorId);
  assert.equal(named.deviceId, bare.deviceId);
});
