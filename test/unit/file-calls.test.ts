import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { nodeFileCalls } from '../../src/sysfs/file-calls.js';
import { REPO } from '../helpers/cli.js';
import { eachFileCalls, libcCalls } from '../helpers/file-calls.js';
import { tempRoot } from '../helpers/tree.js';
import { extractSnapshot, SNAPSHOTS, type SnapshotName } from '../fixtures/ghw/snapshots.js';

const { ENOENT, ELOOP, EISDIR } = os.constants.errno;
const { O_RDONLY, O_NONBLOCK, O_NOFOLLOW, O_WRONLY } = fs.constants;

test("libc's and Node's file calls answer alike: descriptors, -errno, link targets (UTF-8), a NUL in a path", (t) => {
  const { root, cleanup } = tempRoot('vfioctl-calls-');
  t.after(cleanup);
  fs.writeFileSync(path.join(root, 'attr'), 'pci:v00008086\n');
  fs.symlinkSync('attr', path.join(root, 'link'));
  fs.symlinkSync('../../devices/pci0000:00/0000:00:01.0/né', path.join(root, 'utf8-link'));
  for (const calls of eachFileCalls()) {
    const at = (name: string) => path.join(root, name);
    const fd = calls.open(at('attr'), O_RDONLY | O_NONBLOCK);
    assert.ok(fd >= 0, calls.kind);
    const buf = Buffer.alloc(4096);
    assert.equal(calls.read(fd, buf), 14, calls.kind);
    assert.equal(buf.toString('latin1', 0, 14), 'pci:v00008086\n');
    assert.equal(calls.read(fd, buf), 0, `${calls.kind}: end of file`);
    calls.close(fd);
    assert.ok(calls.read(fd, buf) < 0, `${calls.kind}: the descriptor is closed`);
    assert.equal(calls.open(at('missing'), O_RDONLY), -ENOENT, calls.kind);
    assert.equal(calls.open(at('link'), O_RDONLY | O_NOFOLLOW), -ELOOP, `${calls.kind}: O_NOFOLLOW on a link`);
    assert.equal(calls.open(root, O_WRONLY), -EISDIR, calls.kind);
    // Node refuses a path with a NUL; libc would open the path cut at it (here: attr).
    assert.ok(calls.open(`${at('attr')}\0/x`, O_RDONLY) < 0, `${calls.kind}: a NUL in a path`);
    assert.equal(calls.readlink(`${at('link')}\0`), undefined, calls.kind);
    assert.equal(calls.readlink(at('link')), 'attr', calls.kind);
    assert.equal(calls.readlink(at('utf8-link')), '../../devices/pci0000:00/0000:00:01.0/né', calls.kind);
    assert.equal(calls.readlink(at('attr')), undefined, `${calls.kind}: not a link`);
  }
  // libc's opens are close-on-exec, as libuv's are.
  const calls = libcCalls();
  const fd = calls.open(path.join(root, 'attr'), O_RDONLY);
  try {
    const flags = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1');
    assert.match(flags, /^flags:\s+0?2[0-7]{6}$/m, 'O_CLOEXEC (02000000) is set');
  } finally {
    calls.close(fd);
  }
});

/** Every captured tree: the lab's (both kernels, host and vfio) and the ghw snapshots. */
function capturedRoots(t: { after: (f: () => void) => void }): string[] {
  const fixtures = path.join(REPO, 'test/fixtures');
  const roots = fs.readdirSync(fixtures).filter((d) => d.startsWith('lab-')).flatMap((lab) => ['host', 'vfio'].map((side) => path.join(fixtures, lab, side)));
  for (const name of Object.keys(SNAPSHOTS) as SnapshotName[]) {
    const x = extractSnapshot(name);
    t.after(x.cleanup);
    roots.push(x.root);
  }
  return roots.filter((r) => fs.existsSync(r));
}

test("a scan through libc's calls reads every captured tree exactly as through Node's", (t) => {
  const roots = capturedRoots(t);
  assert.ok(roots.length >= 28, `${roots.length} trees`);
  for (const root of roots) {
    const viaNode = scanHost(new FsRoot(root));
    const fsr = new FsRoot(root);
    fsr.fileCalls = libcCalls();
    const viaLibc = scanHost(fsr);
    assert.ok(viaNode.devices.size > 0, root);
    assert.deepEqual(viaLibc, viaNode, root);
  }
  assert.equal(new FsRoot('/').fileCalls, nodeFileCalls, "Node's calls unless a long scan asks for libc's");
});
