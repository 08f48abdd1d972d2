import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN, REPO } from '../helpers/cli.js';
import { tempRoot } from '../helpers/tree.js';

/**
 * The Ansible collection's module (contrib/ansible/ansible_collections/vfioctl/vfio): its
 * plain-Python unit tests (argument validation, argument vectors, vfioctl's output and errors,
 * the diff), and, where ansible-core is installed (.ci/run installs it), the module run through
 * `ansible localhost -m vfioctl.vfio.vfio_bindings` in check and diff mode on a copy of the
 * sample tree (examples/hosts/switch) as its root.
 */

const COLLECTION = path.join(REPO, 'contrib/ansible/ansible_collections/vfioctl/vfio');
const has = (tool: string) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status === 0;

test('Ansible module vfioctl.vfio.vfio_bindings: python unit tests, and through ansible where installed', { skip: !has('python3') && 'python3 not installed' }, (t) => {
  const { root: tmp, cleanup } = tempRoot('vfioctl-ansible-');
  t.after(cleanup);
  const tree = path.join(tmp, 'switch');
  fs.cpSync(path.join(REPO, 'examples/hosts/switch'), tree, { recursive: true, verbatimSymlinks: true });
  const r = spawnSync('python3', ['-m', 'unittest', 'discover', '-v', '-s', path.join(COLLECTION, 'tests/unit')], {
    cwd: COLLECTION,
    encoding: 'utf8',
    env: { ...process.env, VFIOCTL_BIN: BIN, VFIOCTL_TEST_ROOT: tree, PYTHONDONTWRITEBYTECODE: '1', HOME: tmp },
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const ran = /^Ran (\d+) tests?/m.exec(r.stderr);
  assert.ok(ran && Number(ran[1]) >= 9, r.stderr);
  assert.match(r.stderr, /test_bad_entries_name_the_field .* ok$/m);
  const ansible = has('ansible');
  const skipped = /test_check_and_diff_mode .* skipped/m.test(r.stderr);
  assert.equal(skipped, !ansible, ansible ? 'ansible is installed: the module must run through it' : 'no ansible: those tests skip');
  if (!ansible) t.diagnostic('ansible-core not installed: the module was not run through ansible (apt-get install ansible-core)');
  assert.equal(fs.existsSync(path.join(tree, 'etc/vfioctl')), false, 'check mode left the tree as it was');
});
