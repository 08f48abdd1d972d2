import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';
import { planGrant } from '../../src/provision/grant-plan.js';
import { parseIdFile, resolveAccount } from '../../src/provision/accounts.js';

const canChown = process.getuid?.() === 0;

function host(root: string) {
  buildTree(root, {
    devices: [
      { bdf: '0000:00:01.0', id: '1b36:000c', class: '060400', driver: 'pcieport', group: 1 },
      { bdf: '0000:01:00.0', parent: '0000:00:01.0', id: '10de:2204', class: '030000', driver: 'vfio-pci', group: 12, vfioDev: 'vfio0' },
      { bdf: '0000:01:00.1', parent: '0000:00:01.0', id: '10de:1aef', class: '040300', driver: 'vfio-pci', group: 12, vfioDev: 'vfio1' },
      { bdf: '0000:00:02.0', id: '8086:10d3', class: '020000', driver: 'e1000e', group: 2 },
    ],
    devVfio: [12],
  });
  const put = (p: string, text: string, mode: number) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text);
    fs.chmodSync(path.join(root, p), mode);
  };
  put('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n', 0o644);
  put('etc/group', 'root:x:0:\nkvm:x:36:alice,bob\n', 0o644);
  put('dev/vfio/12', '', 0o600);
  put('dev/vfio/devices/vfio0', '', 0o600);
  put('dev/vfio/devices/vfio1', '', 0o600);
  put('dev/iommu', '', 0o660);
}

const st = (root: string, p: string) => {
  const s = fs.statSync(path.join(root, p));
  return `${s.uid}:${s.gid} ${(s.mode & 0o7777).toString(8).padStart(4, '0')}`;
};

test('grant: group node, device cdev and /dev/iommu go to the user, with the whole-group warning; idempotent', { skip: !canChown && 'chown needs root' }, async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root);
  const r = await cli(['grant', '0000:01:00.0', '--user', 'alice', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json();
  assert.equal(doc.changed, true);
  assert.deepEqual(doc.user, { name: 'alice', uid: 1000 });
  assert.deepEqual(doc.iommuGroups, [{ id: 12, node: '/dev/vfio/12', devices: ['0000:01:00.0', '0000:01:00.1'] }]);
  assert.deepEqual(doc.nodes.map((n: any) => [n.path, n.kind, n.after.mode, n.verified]), [
    ['/dev/vfio/12', 'group', '0600', true],
    ['/dev/vfio/devices/vfio0', 'device', '0600', true],
    ['/dev/iommu', 'iommufd', '0600', true],
  ]);
  assert.match(r.stderr, /every device of IOMMU group 12: 0000:01:00.0, 0000:01:00.1 \(not only 0000:01:00.0\)/);
  assert.equal(st(root, 'dev/vfio/12'), '1000:0 0600');
  assert.equal(st(root, 'dev/vfio/devices/vfio0'), '1000:0 0600');
  assert.equal(st(root, 'dev/vfio/devices/vfio1'), '0:0 0600', 'the unselected member cdev is untouched');

  const again = await cli(['grant', '0000:01:00.0', '--user', 'alice', '--json'], root);
  assert.equal(again.code, 0);
  assert.equal(again.json().changed, false);
  assert.ok(again.json().nodes.every((n: any) => n.changed === false));
});

test('grant --group shares with a group (0660); --revoke restores root:root 0600 and iommufd 0660', { skip: !canChown && 'chown needs root' }, async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root);
  let r = await cli(['grant', 'group:12', '--user', '1001', '--group', 'kvm'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /set \/dev\/vfio\/12: 0:0 0600 -> 1001:36 0660/);
  assert.equal(st(root, 'dev/vfio/devices/vfio1'), '1001:36 0660');
  r = await cli(['grant', 'group:12', '--revoke', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().changed, true);
  assert.equal(st(root, 'dev/vfio/12'), '0:0 0600');
  assert.equal(st(root, 'dev/vfio/devices/vfio0'), '0:0 0600');
  assert.equal(st(root, 'dev/iommu'), '0:0 0660');
});

test('grant --dry-run changes nothing and says what it would do', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root);
  const before = st(root, 'dev/vfio/12');
  const r = await cli(['grant', '01:00.1', '--user', 'bob', '--dry-run'], root);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /would set \/dev\/vfio\/12: .* -> 1001:0 0600/);
  assert.equal(st(root, 'dev/vfio/12'), before);
  const j = await cli(['grant', '01:00.1', '--user', 'bob', '--dry-run', '--json'], root);
  assert.equal(j.json().changed, true, 'as bind --dry-run: a real run would change the host');
  assert.equal(st(root, 'dev/vfio/12'), before);
});

test('grant refuses bad input with no change: unknown user, no vfio node, missing --user', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  host(root);
  const before = st(root, 'dev/vfio/12');
  let r = await cli(['grant', '0000:01:00.0', '--user', 'mallory'], root);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /user "mallory": no such user in \/etc\/passwd/);
  r = await cli(['grant', '0000:00:02.0', '--user', 'alice'], root);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /group 2 has no VFIO node/);
  r = await cli(['grant', '0000:01:00.0'], root);
  assert.equal(r.code, 2);
  assert.equal(st(root, 'dev/vfio/12'), before);
});

test('planGrant: revoke keeps /dev/iommu while its owner still holds another group', () => {
  const iommu = { path: '/dev/iommu', kind: 'iommufd' as const, current: { uid: 1000, gid: 0, mode: 0o600 } };
  const g12 = { path: '/dev/vfio/12', kind: 'group' as const, current: { uid: 1000, gid: 0, mode: 0o600 } };
  const g13 = { path: '/dev/vfio/13', kind: 'group' as const, current: { uid: 1000, gid: 0, mode: 0o600 } };
  const kept = planGrant([g12, iommu], { revoke: true, uid: 1000, gid: null }, [g13]);
  assert.deepEqual(kept.steps.map((s) => s.path), ['/dev/vfio/12']);
  assert.match(kept.warnings[0]!, /left as is/);
  const restored = planGrant([g12, iommu], { revoke: true, uid: 1000, gid: null }, []);
  assert.deepEqual(restored.steps.map((s) => [s.path, s.after.mode]), [['/dev/vfio/12', 0o600], ['/dev/iommu', 0o660]]);
  const stolen = planGrant([iommu], { revoke: false, uid: 1001, gid: null });
  assert.match(stolen.warnings[0]!, /belonged to uid 1000/);
});

test('accounts: names, numbers without an entry, malformed lines', () => {
  const entries = parseIdFile('root:x:0:0::/:/bin/sh\nbroken\nx:y:notanumber:\nalice:x:1000:1000::/:/bin/sh\n');
  assert.deepEqual(entries.map((e) => e.name), ['root', 'alice']);
  assert.equal(resolveAccount('user', 'alice', entries, '/etc/passwd').id, 1000);
  assert.deepEqual(resolveAccount('user', '4242', entries, '/etc/passwd'), { name: '4242', id: 4242 });
  assert.throws(() => resolveAccount('user', 'a:b', entries, '/etc/passwd'), /no such user/);
  assert.throws(() => resolveAccount('user', '', entries, '/etc/passwd'), /empty user/);
});
