import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../helpers/cli.js';
import { LINE_AFTER_WINDOW, PciIds } from '../../src/sysfs/pciids.js';

/**
 * PciIds finds a vendor's, a device's and a subsystem's line on demand instead of parsing a
 * vendor's whole block (Intel's is thousands of lines). Checked against a plain parse of
 * every line (the previous implementation) on the repository's sample and, when there is
 * one, the system's pci.ids: every id in the file, and ids that are not.
 */
function reference(text: string) {
  const vendors = new Map<string, { name: string; devices: Map<string, { name: string; subsystems: Map<string, string> }> }>();
  let vendor: { name: string; devices: Map<string, { name: string; subsystems: Map<string, string> }> } | undefined;
  let current: { name: string; subsystems: Map<string, string> } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('C ')) break;
    if (line === '' || line.startsWith('#')) continue;
    let m: RegExpExecArray | null;
    if ((m = /^([0-9a-f]{4})  (.*)$/.exec(line))) {
      // The first block of an id is the one found (findLine); later duplicates are not.
      vendor = vendors.has(m[1]!) ? { name: '', devices: new Map() } : { name: m[2]!.trim(), devices: new Map() };
      if (!vendors.has(m[1]!)) vendors.set(m[1]!, vendor);
      current = undefined;
    } else if (vendor && line.startsWith('\t\t')) {
      // First entry wins here too (lspci refuses a file with a duplicate entry).
      if ((m = /^\t\t([0-9a-f]{4}) ([0-9a-f]{4})\s+(.*)$/.exec(line)) && current && !current.subsystems.has(`${m[1]} ${m[2]}`)) current.subsystems.set(`${m[1]} ${m[2]}`, m[3]!.trim());
    } else if (vendor && line.startsWith('\t')) {
      if ((m = /^\t([0-9a-f]{4})\s+(.*)$/.exec(line))) {
        current = { name: m[2]!.trim(), subsystems: new Map() };
        if (!vendor.devices.has(m[1]!)) vendor.devices.set(m[1]!, current);
      }
    } else vendor = undefined;
  }
  return vendors;
}

const FILES = [path.join(REPO, 'test/fixtures/pci.ids'), '/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids'].filter((f) => fs.existsSync(f));

test('pci.ids lookups on demand give the names a full parse gives, for every id in the file and for missing ones', () => {
  assert.ok(FILES.length >= 1);
  for (const file of FILES) {
    const text = fs.readFileSync(file, 'utf8');
    const ids = new PciIds(text);
    const want = reference(text);
    let checked = 0;
    for (const [v, block] of want) {
      assert.equal(ids.vendor(v), block.name, `${file}: vendor ${v}`);
      assert.equal(ids.device(v, 'fffe'), block.devices.get('fffe')?.name ?? null);
      for (const [d, dev] of block.devices) {
        assert.equal(ids.device(v, d.toUpperCase()), dev.name, `${file}: ${v}:${d}`);
        assert.equal(ids.subsystem(v, d, 'fffe', 'fffe'), null);
        for (const [key, name] of dev.subsystems) {
          const [sv, sd] = key.split(' ');
          assert.equal(ids.subsystem(v, d, sv!, sd!), name, `${file}: ${v}:${d} ${key}`);
          checked++;
        }
        checked++;
      }
    }
    assert.equal(ids.vendor('fffe'), want.get('fffe')?.name ?? null);
    assert.ok(checked > 10, `${file}: ${checked} ids checked`);
  }
});

test('pci.ids lookups are the same wherever a block ends relative to the first window the search decodes', () => {
  const WINDOW = LINE_AFTER_WINDOW;
  const hex = (n: number) => n.toString(16).padStart(4, '0');
  let cases = 0;
  // Vendor A's block ends, and vendor B's device 2000's subsystem lines end, `at` bytes from
  // where the search for that end starts (the end of the vendor's or the device's line):
  // every distance from a line or two before the window's border to two lines after it.
  const build = (padA: number, padB: number) => {
    const a = ['1234  Vendor A'];
    // The padding goes on the first line, so that every later line moves with it: the ends
    // cross the border, and so does the start of each line near it.
    for (let d = 0; d < 700; d++) a.push(`\t${hex(d)}  Device ${d}${d === 0 ? 'x'.repeat(padA) : ''}`);
    a.push(`\t${hex(0xf000)}  Last`);
    const b = ['1235  Vendor B', '\t2000  Device with many subsystems'];
    for (let n = 0; n < 560; n++) b.push(`\t\t${hex(0x1000 + n)} ${hex(n)}  Sub ${n}${n === 0 ? 'y'.repeat(padB) : ''}`);
    b.push('\t\t1234 ffff  Last', '\t2001  After the subsystems', '\t\t1234 0001  Sub of 2001');
    return ['# synthetic', ...a, ...b, '1236  Vendor C', '\t2001  Device C1', ''].join('\n');
  };
  const endOf = (text: string, line: string) => text.indexOf('\n', text.indexOf(line));
  const distances = (text: string) => [text.indexOf('\n1235  Vendor B') - endOf(text, '1234  Vendor A'), text.indexOf('\n\t2001  After') - endOf(text, '\t2000  Device with many')];
  const [a0, b0] = distances(build(0, 0));
  assert.ok(a0! < WINDOW - 40 && b0! < WINDOW - 40, `the blocks without padding (${a0}, ${b0}) must end before the window`);
  for (let at = WINDOW - 40; at <= WINDOW + 60; at++) {
    const text = build(at - a0!, at - b0!);
    // The distances are what this case is for.
    assert.deepEqual(distances(text), [at, at]);
    const ids = new PciIds(text);
    for (const [v, block] of reference(text)) {
      assert.equal(ids.vendor(v), block.name);
      for (const [d, dev] of block.devices) {
        assert.equal(ids.device(v, d), dev.name, `at ${at}: ${v}:${d}`);
        for (const [key, name] of dev.subsystems) assert.equal(ids.subsystem(v, d, ...(key.split(' ') as [string, string])), name, `at ${at}: ${v}:${d} ${key}`);
      }
    }
    assert.equal(ids.subsystem('1235', '2000', '1234', '0001'), null, `at ${at}: 2001's subsystem is not 2000's`);
    assert.equal(ids.subsystem('1235', '2001', '1234', '0001'), 'Sub of 2001');
    assert.equal(ids.device('1234', '2000'), null, `at ${at}: vendor B's device is not vendor A's`);
    assert.equal(ids.device('1235', '0000'), null, `at ${at}: vendor A's device is not vendor B's`);
    cases++;
  }
  assert.equal(cases, 101);
});

test('pci.ids: the first of duplicate device and subsystem lines wins, and a device is looked for only in its vendor\'s block', () => {
  const text = [
    '1234  Vendor A',
    '\t0001  First 0001',
    '\t\t1111 2222  First sub',
    '\t\t1111 2222  Second sub',
    '\t0001  Second 0001',
    '\t\t1111 3333  Sub of the second 0001',
    '1235  Vendor B',
    '\t0002  Only in B',
    '',
  ].join('\n');
  const ids = new PciIds(text);
  assert.equal(ids.device('1234', '0001'), 'First 0001');
  assert.equal(ids.subsystem('1234', '0001', '1111', '2222'), 'First sub');
  assert.equal(ids.subsystem('1234', '0001', '1111', '3333'), null, 'a subsystem of the duplicate line is not the first line\'s');
  assert.equal(ids.device('1234', '0002'), null);
  assert.equal(ids.device('1235', '0002'), 'Only in B');
  assert.deepEqual([...reference(text).get('1234')!.devices.keys()], ['0001']);
  assert.equal(reference(text).get('1234')!.devices.get('0001')!.name, 'First 0001');
});
