import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli, REPO } from '../helpers/cli.js';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { partialScans, scanFor } from '../../src/sysfs/neighbourhood.js';
import { synthHost, writeHost } from '../bench/synth.js';

/**
 * show and reset-plan read the device's neighbourhood (group, bridges, reset scope), not the
 * whole host (src/sysfs/neighbourhood.ts): the same output as with a full scan, on every
 * lab capture and on synthetic hosts, for a number of file reads that does not grow with
 * the host.
 */

const FIXTURES = path.join(REPO, 'test/fixtures');
const LAB_TREES = fs.readdirSync(FIXTURES).filter((d) => d.startsWith('lab-')).sort()
  .flatMap((lab) => ['host', 'vfio'].map((t) => path.join(FIXTURES, lab, t)).filter((p) => fs.existsSync(p)));

/** An FsRoot that counts every read-side call (reads, links, listings, lookups). */
class CountingFs extends FsRoot {
  calls = 0;
  override read(p: string) { this.calls++; return super.read(p); }
  override readText(p: string, max?: number) { this.calls++; return super.readText(p, max); }
  override readLink(p: string) { this.calls++; return super.readLink(p); }
  override realpath(p: string) { this.calls++; return super.realpath(p); }
  override list(p: string) { this.calls++; return super.list(p); }
  override exists(p: string) { this.calls++; return super.exists(p); }
  override lexists(p: string) { this.calls++; return super.lexists(p); }
  override isDir(p: string) { this.calls++; return super.isDir(p); }
}

async function both(argv: string[], root: string): Promise<[string, string]> {
  const run = async () => {
    const r = await cli(argv, root);
    return `${r.code}\n${r.stdout}\n${r.stderr}`;
  };
  partialScans.enabled = false;
  let full: string;
  try {
    full = await run();
  } finally {
    partialScans.enabled = true;
  }
  return [await run(), full];
}

/** Every device, each group, and all devices at once: partial and full scans print the same. */
async function compareOn(root: string, devices: readonly string[], groups: readonly number[], text = true): Promise<void> {
  const cases: string[][] = [];
  for (const b of devices) {
    cases.push(['show', b, '--json'], ['reset-plan', b, '--json']);
    if (text) cases.push(['show', b], ['reset-plan', b]);
  }
  for (const g of groups) cases.push(['reset-plan', `group:${g}`, '--json'], ['reset-plan', `group:${g}`]);
  if (devices.length > 1) cases.push(['reset-plan', ...devices.slice(0, 24), '--json']);
  cases.push(['show', '0000:7f:1f.7', '--json'], ['reset-plan', 'group:999999', '--json'], ['reset-plan', 'eth0', '--json']);
  for (const argv of cases) {
    const [partial, full] = await both(argv, root);
    assert.equal(partial, full, `${argv.join(' ')} on ${path.relative(REPO, root)}`);
  }
}

test('show and reset-plan print the same from the neighbourhood as from a full scan, on every lab capture', async () => {
  assert.ok(LAB_TREES.length >= 7, 'the lab captures are there');
  for (const root of LAB_TREES) {
    const host = scanHost(new FsRoot(root));
    assert.ok(host.devices.size > 0, root);
    await compareOn(root, [...host.devices.keys()], host.groups.map((g) => g.id));
  }
});

test('the neighbourhood holds complete groups and devices read exactly as a full scan reads them', () => {
  for (const root of LAB_TREES) {
    const fsr = new FsRoot(root);
    const full = scanHost(fsr);
    for (const bdf of full.devices.keys()) {
      for (const opts of [{ peers: true }, { resetScope: true }]) {
        const part = scanFor(new FsRoot(root), [bdf], opts);
        assert.ok(part.devices.has(bdf));
        for (const [b, d] of part.devices) {
          // pcie is probed only where a held group is explained (as scanHost probes it).
          const want = full.devices.get(b)!;
          const inHeldGroup = part.groups.some((g) => g.devices.includes(b));
          assert.deepEqual(inHeldGroup ? d : { ...d, pcie: null }, inHeldGroup ? want : { ...want, pcie: null }, `${b} via ${bdf} in ${root}`);
        }
        for (const g of part.groups) assert.deepEqual(g, full.groups.find((x) => x.id === g.id), `group ${g.id} in ${root}`);
      }
    }
  }
});

const SAMPLE = [
  '0000:00:01.0', // root port (root bus)
  '0000:00:1f.3', // PCH function in a shared group on the root bus
  '0000:01:00.0', // switch upstream port
  '0000:02:00.0', // switch downstream port
  '0000:03:00.0', // SR-IOV PF, alone in its group (ACS)
  '0000:03:10.0', // its VF
  '0000:04:00.1', // PF sharing a group with its VFs
  '0000:04:10.1', // a VF of that group
];

/** tmpfs when there is one: writing a 4,096-function tree to a disk-backed /tmp can take a minute. */
const SCRATCH = (() => {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    return '/dev/shm';
  } catch {
    return os.tmpdir();
  }
})();

function synthTree(total: number): string {
  const dir = fs.mkdtempSync(path.join(SCRATCH, `vfioctl-nbh-${total}-`));
  writeHost(dir, synthHost(total));
  return dir;
}

test('show and reset-plan of one device read as many files on a 1,024- as on a 4,096-function host, and print what a full scan prints', async () => {
  const small = synthTree(1024);
  const big = synthTree(4096);
  try {
    await compareOn(small, SAMPLE, [0, 1]);
    await compareOn(big, SAMPLE, [1], false);
    // A full scan grows with the host: the counter sees it.
    const full: number[] = [];
    for (const root of [small, big]) {
      const c = new CountingFs(root);
      scanHost(c);
      full.push(c.calls);
    }
    assert.ok(full[1]! > 3 * full[0]!, `full scan: ${full.join(' vs ')}`);
    for (const bdf of SAMPLE) {
      for (const argv of [['show', bdf, '--json'], ['reset-plan', bdf, '--json'], ['show', bdf], ['reset-plan', bdf]]) {
        const counts: number[] = [];
        for (const root of [small, big]) {
          let counter: CountingFs | undefined;
          const r = await cli(argv, root, { makeFs: (rt) => (counter = new CountingFs(rt)) });
          assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
          counts.push(counter!.calls);
        }
        assert.equal(counts[0], counts[1], `${argv.join(' ')}: ${counts[0]} file operations at 1,024 functions, ${counts[1]} at 4,096`);
        // Below a full scan even on the small host (the switch's upstream port resets a quarter of it).
        assert.ok(counts[0]! < full[0]!, `${argv.join(' ')}: ${counts[0]} file operations, a full scan ${full[0]}`);
      }
    }
  } finally {
    fs.rmSync(small, { recursive: true, force: true });
    fs.rmSync(big, { recursive: true, force: true });
  }
});
