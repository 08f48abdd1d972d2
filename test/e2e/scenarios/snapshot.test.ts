/**
 * `vfioctl snapshot` in the real kernel: the tree must answer `--root` queries the
 * way the live system does, keep links relative, and hold no write-only files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  IN_LAB, NOT_IN_LAB, allBdfs, findRole, hasCommand, labTopology, missing, run, vfioctl, vfioctlJson, vfsOf,
} from '../lab/guest.js';

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) walk(p, out);
  }
  return out;
}

test('snapshot DIR answers --root like the live kernel', { skip: IN_LAB ? false : NOT_IN_LAB }, async (t) => {
  if (!(await hasCommand('snapshot'))) return t.skip(missing('snapshot'));
  const dir = fs.mkdtempSync('/tmp/lab-snap-');
  const snap = await vfioctl('snapshot', dir);
  assert.equal(snap.code, 0, snap.stderr);

  const live = await vfioctlJson('groups', '--json');
  const fromSnap = await vfioctlJson('--root', dir, 'groups', '--json');
  assert.deepEqual(fromSnap.json, live.json, 'groups --json from the snapshot');

  // `show` per device costs two node start-ups under TCG: the topology's own devices
  // (and their VFs and upstream bridges) are the ones that differ between topologies.
  const shown = new Set<string>();
  for (const role of labTopology().roles) {
    for (const pf of findRole(role)) {
      for (const b of [pf, ...vfsOf(pf)]) shown.add(b);
      const parent = path.basename(path.dirname(fs.realpathSync(`/sys/bus/pci/devices/${pf}`)));
      if (/^[0-9a-f]{4}:/.test(parent)) shown.add(parent);
    }
  }
  for (const bdf of shown) {
    const a = await vfioctlJson('show', bdf, '--json');
    const b = await vfioctlJson('--root', dir, 'show', bdf, '--json');
    assert.deepEqual(b.json, a.json, `show ${bdf} from the snapshot`);
  }
  if (await hasCommand('reset-plan')) {
    const a = await vfioctlJson('reset-plan', ...allBdfs(), '--json');
    const b = await vfioctlJson('--root', dir, 'reset-plan', ...allBdfs(), '--json');
    assert.deepEqual(b.json, a.json, 'reset-plan --json from the snapshot');
  }

  const entries = walk(dir);
  for (const p of entries) {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) assert.ok(!fs.readlinkSync(p).startsWith('/'), `absolute link ${p}`);
    assert.ok(!['bind', 'unbind', 'remove', 'rescan', 'reset', 'config', 'new_id', 'remove_id'].includes(path.basename(p)) || st.isDirectory(),
      `write-only or raw file copied: ${p}`);
  }
  const alias = fs.readFileSync(path.join(dir, 'lib/modules', fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), 'modules.alias'), 'utf8');
  assert.match(alias, /^alias vfio_pci:v00008086d000010D3sv\*sd\*bc\*sc\*i\* vfio_pci_lab$/m);
  assert.doesNotMatch(alias, /^alias pci:/m, 'only vfio_pci aliases are kept');
});

test('snapshot --tar writes an archive of the same tree', { skip: IN_LAB ? false : NOT_IN_LAB }, async (t) => {
  if (!(await hasCommand('snapshot'))) return t.skip(missing('snapshot'));
  const tar = `/tmp/lab-snap-${process.pid}.tar.gz`;
  const r = await vfioctl('snapshot', '--tar', tar);
  assert.equal(r.code, 0, r.stderr);
  const dir = fs.mkdtempSync('/tmp/lab-untar-');
  const x = await run('tar', ['-C', dir, '-xzf', tar]);
  assert.equal(x.code, 0, x.stderr);
  const live = await vfioctlJson('groups', '--json');
  const fromTar = await vfioctlJson('--root', dir, 'groups', '--json');
  assert.deepEqual(fromTar.json, live.json);
});
