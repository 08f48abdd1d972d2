import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../helpers/cli.js';
import { PciIds } from '../../src/sysfs/pciids.js';

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
      if ((m = /^\t\t([0-9a-f]{4}) ([0-9a-f]{4})\s+(.*)$/.exec(line)) && current) current.subsystems.set(`${m[1]} ${m[2]}`, m[3]!.trim());
    } else if (vendor && line.startsWith('\t')) {
      if ((m = /^\t([0-9a-f]{4})\s+(.*)$/.exec(line))) vendor.devices.set(m[1]!, (current = { name: m[2]!.trim(), subsystems: new Map() }));
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
