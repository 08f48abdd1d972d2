import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LazyArray, writeJson } from '../../src/cli/render/json-stream.js';
import { cli, REPO } from '../helpers/cli.js';
import { tempRoot } from '../helpers/tree.js';
import { synthHost, writeHost } from '../bench/synth.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { vfioNodes } from '../../src/sysfs/vfio-nodes.js';
import { isVfioBound } from '../../src/model/host.js';

/** What writeJson prints, and how many pieces it handed over. */
function streamed(doc: Record<string, unknown>): { text: string; pieces: string[] } {
  const pieces: string[] = [];
  writeJson(doc, (t) => pieces.push(t), '\n');
  return { text: pieces.join(''), pieces };
}

/** The same document with every LazyArray made whole: what JSON.stringify printed before. */
function whole(doc: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, v instanceof LazyArray ? [...v.items].map(v.map) : v]));
}

test('writeJson prints exactly JSON.stringify(doc, null, 2): empty, nested, escaped, undefined and lazy members', () => {
  const docs: Record<string, unknown>[] = [
    {},
    { a: 1 },
    { a: [], b: {}, c: null, d: undefined, e: () => 1, f: 'x' },
    { s: 'quote " backslash \\ newline \n tab \t nul \u0000 — ✓ \u2028', 'key "quoted"\n': true },
    { nested: { deep: [1, [2, [3, { four: [] }]], { x: undefined, y: [undefined, null] }] }, n: -0, big: 1e21 },
    { lazy: new LazyArray([], (x) => x) },
    { lazy: new LazyArray([1, 2, 3], (x: number) => ({ id: x, list: Array.from({ length: x }, (_, i) => ({ i, s: `v${i}\n` })) })), after: 'end' },
    { lazy: new LazyArray(['a', 'b'], () => undefined) },
    { first: new LazyArray([{ a: {} }], (x) => x), second: new LazyArray([[[]]], (x) => x) },
    { date: new Date(0), map: new Map([[1, 2]]), withToJSON: { toJSON: () => ({ replaced: [1] }) } },
  ];
  for (const doc of docs) {
    assert.equal(streamed(doc).text, JSON.stringify(whole(doc), null, 2) + '\n', JSON.stringify(whole(doc)));
  }
});

test('writeJson hands over pieces of about 64 KiB, never the whole of a large document', () => {
  const rows = Array.from({ length: 5000 }, (_, i) => ({ bdf: `0000:00:${i}`, names: ['a', 'b'] }));
  const doc = { rows: new LazyArray(rows, (r) => r) };
  const { text, pieces } = streamed(doc);
  assert.equal(text, JSON.stringify(whole(doc), null, 2) + '\n');
  assert.ok(pieces.length > 5, `${pieces.length} pieces for ${text.length} characters`);
  // A piece ends after the batch of elements (16) that took it past 64 KiB.
  const batch = JSON.stringify([rows.slice(0, 16)], null, 2).length;
  assert.ok(pieces.every((p) => p.length < (64 << 10) + batch), 'each piece about one chunk');
});

/**
 * A bench host's first 250 functions (a prefix of synthHost keeps every parent and PF before
 * its children): a switch with SR-IOV NICs whose VFs are a third vfio-pci, over 70 of them.
 */
const bench = tempRoot();
after(bench.cleanup);
writeHost(bench.root, synthHost(1100).slice(0, 250));

test('groups --json on every lab tree and a bench host: the document JSON.stringify(…, null, 2) prints, in pieces', async () => {
  const fixtures = path.join(REPO, 'test/fixtures');
  const roots = fs.readdirSync(fixtures).filter((d) => d.startsWith('lab-')).flatMap((d) => ['host', 'vfio'].map((tree) => path.join(fixtures, d, tree)));
  for (const root of [...roots, bench.root]) {
    const r = await cli(['groups', '--json'], root);
    assert.equal(r.code, 0, root);
    // JSON.stringify of its own parse is the old printer's text for the same values and key order.
    assert.equal(r.stdout, JSON.stringify(JSON.parse(r.stdout), null, 2) + '\n', root);
  }
});

test('groups --json: the vfio nodes of many devices (node directories listed once) are those of one-by-one lookups', async () => {
  const root = bench.root;
  const fsr = new FsRoot(root);
  const host = scanHost(fsr);
  const bound = [...host.devices.values()].filter(isVfioBound);
  assert.ok(bound.length > 50, `${bound.length} vfio-bound devices`);
  // Some groups with a node, one in noiommu mode, one only under /sys/class/vfio; some cdevs
  // by their vfio-dev/X/dev, some only by /dev/vfio/devices/X, one /dev entry a link out of the
  // root; the devices' vfio-dev/ names from /sys/class/vfio-dev, one device missing there.
  fs.mkdirSync(path.join(root, 'dev/vfio/devices'), { recursive: true });
  fs.mkdirSync(path.join(root, 'sys/class/vfio'), { recursive: true });
  bound.forEach((d, i) => {
    const dev = fs.readdirSync(path.join(root, 'sys/bus/pci/devices', d.bdf, 'vfio-dev'))[0]!;
    if (i % 3 === 0) fs.writeFileSync(path.join(root, 'dev/vfio', String(d.iommuGroup)), '');
    if (i === 7) fs.writeFileSync(path.join(root, 'dev/vfio', `noiommu-${d.iommuGroup}`), '');
    if (i === 8) fs.writeFileSync(path.join(root, 'sys/class/vfio', String(d.iommuGroup)), '');
    if (i === 10) fs.symlinkSync('/dev/null', path.join(root, 'dev/vfio', String(d.iommuGroup)));
    if (i % 4 === 1) fs.writeFileSync(path.join(root, 'sys/bus/pci/devices', d.bdf, 'vfio-dev', dev, 'dev'), '511:3\n');
    if (i % 5 === 2) fs.writeFileSync(path.join(root, 'dev/vfio/devices', dev), '');
    // One device the vfio-dev class does not name (its own vfio-dev/ is listed then).
    if (i === 13) fs.rmSync(path.join(root, 'sys/class/vfio-dev', dev));
  });
  const doc = (await cli(['groups', '--json'], root)).json();
  const got = new Map<string, unknown>(doc.groups.flatMap((g: { devices: { bdf: string; vfioGroupNode: string | null; vfioCdev: string | null }[] }) =>
    g.devices.map((d) => [d.bdf, { vfioGroupNode: d.vfioGroupNode, vfioCdev: d.vfioCdev }])));
  assert.ok(fs.readdirSync(path.join(root, 'sys/class/vfio-dev')).length >= bound.length - 1, 'the bench host has the vfio-dev class');
  let nodes = 0;
  let cdevs = 0;
  const one = new FsRoot(root);
  for (const d of host.devices.values()) {
    const want = vfioNodes(one, d);
    assert.deepEqual(got.get(d.bdf), want, d.bdf);
    if (want.vfioGroupNode !== null) nodes++;
    if (want.vfioCdev !== null) cdevs++;
  }
  assert.ok(nodes > 15, `${nodes} devices with a group node`);
  assert.ok(cdevs > 15, `${cdevs} devices with a cdev`);
});
