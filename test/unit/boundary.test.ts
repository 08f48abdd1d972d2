import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { scanHost } from '../../src/sysfs/scan.js';
import { FsRoot, READ_MAX_BYTES } from '../../src/sysfs/fsroot.js';
import { VfioctlError } from '../../src/errors.js';
import { ExitCode } from '../../src/exit-codes.js';
import { devicePath, driverPath, moduleDriversPath, modulesAliasPath } from '../../src/sysfs/paths.js';
import { checkDriverOption } from '../../src/sysfs/modules.js';
import { driverOfModule, loadedDriverOfModule, moduleOfDriver, readVfioAliases, resolveDriverName } from '../../src/sysfs/modules.js';
import { MAX_DEPTH, parseJsonWithPositions } from '../../src/provision/json-pos.js';
import { parseDesiredState } from '../../src/provision/desired-state.js';
import { INPUT_MAX_BYTES, readDesiredInput } from '../../src/provision/read-input.js';
import { fdWriter, readFdCapped } from '../../src/cli/stdio.js';
import { run } from '../../src/cli/main.js';
import { recordingRunner } from '../helpers/cli.js';
import { eachFileCalls } from '../helpers/file-calls.js';

/** A root with an outside directory next to it. */
function setup(t: { after: (f: () => void) => void }) {
  const { root: base, cleanup } = tempRoot('vfioctl-boundary-');
  t.after(cleanup);
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  const put = (p: string, text: string) => {
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
  };
  put(path.join(outside, 'secret'), 'outside\n');
  put(path.join(root, 'sys/devices/pci0000:00/0000:00:01.0/vendor'), '0x8086\n');
  fs.mkdirSync(path.join(root, 'sys/bus/pci/devices'), { recursive: true });
  fs.symlinkSync('../../../devices/pci0000:00/0000:00:01.0', path.join(root, 'sys/bus/pci/devices/0000:00:01.0'));
  return { base, root, outside, put };
}

const throwsCode = (f: () => unknown, code: number, msg: RegExp) =>
  assert.throws(f, (e: unknown) => e instanceof VfioctlError && e.code === code && msg.test(`${e.what}: ${e.why}`));

for (const calls of eachFileCalls()) test(`reads (${calls.kind}'s calls): links inside the root work (sysfs relative links); links leading out read as missing, by every read method`, (t) => {
  const { root, outside } = setup(t);
  const fsr = new FsRoot(root);
  fsr.fileCalls = calls;
  assert.equal(fsr.read('/sys/bus/pci/devices/0000:00:01.0/vendor'), '0x8086');
  assert.equal(fsr.realpath('/sys/bus/pci/devices/0000:00:01.0'), '/sys/devices/pci0000:00/0000:00:01.0');
  // An absolute link out, a relative one climbing out, a directory on the way, a final component.
  fs.symlinkSync(outside, path.join(root, 'sys/bus/pci/devices/abs'));
  fs.symlinkSync('../../../../../outside', path.join(root, 'sys/bus/pci/devices/rel'));
  fs.symlinkSync(path.join(outside, 'secret'), path.join(root, 'sys/devices/pci0000:00/0000:00:01.0/modalias'));
  fs.symlinkSync('x', path.join(root, 'loop-y'));
  fs.symlinkSync('loop-y', path.join(root, 'x'));
  for (const dir of ['/sys/bus/pci/devices/abs', '/sys/bus/pci/devices/rel']) {
    assert.equal(fsr.read(`${dir}/secret`), undefined, dir);
    assert.equal(fsr.readText(`${dir}/secret`), undefined, dir);
    assert.deepEqual(fsr.list(dir), [], dir);
    assert.equal(fsr.exists(`${dir}/secret`), false, dir);
    assert.equal(fsr.isDir(dir), false, dir);
    assert.equal(fsr.stat(`${dir}/secret`), undefined, dir);
    assert.equal(fsr.realpath(dir), undefined, dir);
    assert.equal(fsr.lexists(dir), false, `${dir}: a link leading out counts as missing`);
    assert.equal(fsr.readLink(`${dir}/x`), undefined, dir);
  }
  assert.equal(fsr.read('/sys/devices/pci0000:00/0000:00:01.0/modalias'), undefined);
  assert.equal(fsr.readText('/sys/devices/pci0000:00/0000:00:01.0/modalias'), undefined);
  // The link itself can still be read as a link (the scan reads targets as names).
  assert.equal(fsr.readLink('/sys/bus/pci/devices/abs'), outside);
  // Loops end.
  assert.equal(fsr.read('/x/y'), undefined);
  assert.deepEqual(fsr.list('/x'), []);
  // An in-root link to a file is followed.
  fs.symlinkSync('vendor', path.join(root, 'sys/devices/pci0000:00/0000:00:01.0/vendor2'));
  assert.equal(fsr.read('/sys/bus/pci/devices/0000:00:01.0/vendor2'), '0x8086');
  // ".." never climbs above the root.
  assert.equal(fsr.read('/../outside/secret'), undefined);
});

for (const calls of eachFileCalls()) test(`reads (${calls.kind}'s calls) never block and are bounded: FIFO, oversized and non-regular files read as missing`, (t) => {
  const { root, put } = setup(t);
  const fsr = new FsRoot(root);
  fsr.fileCalls = calls;
  const dir = path.join(root, 'sys/devices/pci0000:00/0000:00:01.0');
  assert.equal(spawnSync('mkfifo', [path.join(dir, 'fifo'), path.join(root, 'fifo')]).status, 0);
  const started = Date.now();
  assert.equal(fsr.read('/sys/bus/pci/devices/0000:00:01.0/fifo'), undefined);
  assert.equal(fsr.read('/fifo'), undefined);
  assert.equal(fsr.readText('/fifo'), undefined);
  assert.ok(Date.now() - started < 2000);
  put(path.join(dir, 'big'), 'x'.repeat(READ_MAX_BYTES + 10));
  assert.equal(fsr.read('/sys/devices/pci0000:00/0000:00:01.0/big'), undefined);
  put(path.join(root, 'etc/big'), 'y'.repeat(5000));
  assert.equal(fsr.readText('/etc/big', 4096), undefined, 'readText takes a cap');
  assert.equal(fsr.readText('/etc/big')?.length, 5000);
  assert.equal(fsr.read('/etc/big')?.length, 5000, 'files other than sysfs attributes read to the end');
  put(path.join(dir, 'empty'), '');
  assert.equal(fsr.read('/sys/devices/pci0000:00/0000:00:01.0/empty'), '');
  if (process.getuid?.() === 0 && spawnSync('mknod', [path.join(dir, 'zero'), 'c', '1', '5']).status === 0) {
    assert.equal(fsr.read('/sys/devices/pci0000:00/0000:00:01.0/zero'), undefined, 'a character device is not an attribute');
    assert.equal(fsr.readText('/sys/devices/pci0000:00/0000:00:01.0/zero'), undefined);
  }
  // Writing to a FIFO without a reader fails at once instead of hanging.
  assert.throws(() => fsr.write('/fifo', 'x'), VfioctlError);
});

test('writes: every method refuses a path through a link out of the root (exit 4); links inside it work', (t) => {
  const { root, outside } = setup(t);
  const fsr = new FsRoot(root);
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.symlinkSync(outside, path.join(root, 'etc/udev'));
  fs.symlinkSync('../outside', path.join(root, 'run'));
  fs.mkdirSync(path.join(root, 'dev/vfio'), { recursive: true });
  fs.symlinkSync(path.join(outside, 'secret'), path.join(root, 'dev/vfio/11'));
  const before = fs.readdirSync(outside).sort();
  throwsCode(() => fsr.writeFileAtomic('/etc/udev/rules.d/60-vfioctl.rules', 'x'), ExitCode.REFUSED, /\/etc\/udev\/rules.d\/60-vfioctl.rules: .*outside the root/);
  throwsCode(() => fsr.createExclusive('/run/lock/vfioctl.lock', '1'), ExitCode.REFUSED, /outside the root/);
  throwsCode(() => fsr.mkdirp('/run/vfioctl/devices'), ExitCode.REFUSED, /outside the root/);
  throwsCode(() => fsr.removeFile('/etc/udev/secret'), ExitCode.REFUSED, /outside the root/);
  throwsCode(() => fsr.symlink('/x', '/etc/udev/link'), ExitCode.REFUSED, /outside the root/);
  throwsCode(() => fsr.chown('/dev/vfio/11', 1000, 1000), ExitCode.REFUSED, /outside the root/);
  throwsCode(() => fsr.chmod('/dev/vfio/11', 0o666), ExitCode.REFUSED, /outside the root/);
  throwsCode(() => fsr.write('/dev/vfio/11', 'x'), ExitCode.REFUSED, /outside the root/);
  throwsCode(() => fsr.write('/../outside/secret', 'x'), ExitCode.REFUSED, /"\.\." .*leads outside the root/);
  assert.deepEqual(fs.readdirSync(outside).sort(), before);
  assert.equal(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'outside\n');
  assert.equal(fs.statSync(path.join(outside, 'secret')).mode & 0o777, 0o644);
  // removeFile of the link itself removes the link, never its target.
  fsr.removeFile('/dev/vfio/11');
  assert.equal(fs.existsSync(path.join(outside, 'secret')), true);
  // Links that stay inside the root keep working for writes.
  fs.mkdirSync(path.join(root, 'etc/systemd.real'));
  fs.symlinkSync('systemd.real', path.join(root, 'etc/systemd'));
  fsr.writeFileAtomic('/etc/systemd/system/vfioctl.service', 'unit\n');
  assert.equal(fs.readFileSync(path.join(root, 'etc/systemd.real/system/vfioctl.service'), 'utf8'), 'unit\n');
  fs.writeFileSync(path.join(root, 'dev/vfio/12.real'), '');
  fs.symlinkSync('12.real', path.join(root, 'dev/vfio/12'));
  fsr.chmod('/dev/vfio/12', 0o660);
  assert.equal(fs.statSync(path.join(root, 'dev/vfio/12.real')).mode & 0o777, 0o660);
});

test('writeFileAtomic is durable and leaves no temporary file behind when it fails', (t) => {
  const { root } = setup(t);
  const fsr = new FsRoot(root);
  fsr.writeFileAtomic('/run/vfioctl/devices/a.json', '{}\n', 0o600);
  assert.equal(fs.readFileSync(path.join(root, 'run/vfioctl/devices/a.json'), 'utf8'), '{}\n');
  assert.equal(fs.statSync(path.join(root, 'run/vfioctl/devices/a.json')).mode & 0o777, 0o600);
  // The target is a directory: the rename fails, and the temporary file goes.
  fs.mkdirSync(path.join(root, 'run/vfioctl/devices/b.json'));
  assert.throws(() => fsr.writeFileAtomic('/run/vfioctl/devices/b.json', '{}\n'));
  assert.deepEqual(fs.readdirSync(path.join(root, 'run/vfioctl/devices')).sort(), ['a.json', 'b.json']);
  // A temporary file left by a crashed run (same pid) is replaced, not followed.
  fs.symlinkSync('/etc/passwd', path.join(root, `run/vfioctl/devices/c.json.tmp-${process.pid}`));
  fsr.writeFileAtomic('/run/vfioctl/devices/c.json', 'c\n');
  assert.equal(fs.readFileSync(path.join(root, 'run/vfioctl/devices/c.json'), 'utf8'), 'c\n');
  assert.deepEqual(fs.readdirSync(path.join(root, 'run/vfioctl/devices')).sort(), ['a.json', 'b.json', 'c.json']);
});

test('on the real root, a write below /dev (and /etc, /run) will not follow a symlink a user owns', { skip: process.getuid?.() !== 0 && 'lchown needs root' }, (t) => {
  if (!fs.existsSync('/dev/shm')) return t.skip('no /dev/shm');
  const dir = fs.mkdtempSync('/dev/shm/vfioctl-owner-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'real'));
  fs.symlinkSync('real', path.join(dir, 'users'));
  fs.lchownSync(path.join(dir, 'users'), 1000, 1000);
  fs.symlinkSync('real', path.join(dir, 'roots'));
  const fsr = new FsRoot('/');
  throwsCode(() => fsr.writeFileAtomic(`${dir}/users/f`, 'x'), ExitCode.REFUSED, /owned by uid 1000/);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'real')), []);
  fsr.writeFileAtomic(`${dir}/roots/f`, 'x');
  assert.equal(fs.readFileSync(path.join(dir, 'real/f'), 'utf8'), 'x');
});

test('names are never paths: path helpers refuse non-names; sysfs and modules.alias names that fail the grammar are ignored', (t) => {
  for (const bad of ['..', '.', '', 'a/b', '../../x', 'a b', 'x'.repeat(65), 'a\u0000']) {
    assert.throws(() => driverPath(bad), /refusing to join it into a path/, JSON.stringify(bad));
    assert.throws(() => moduleDriversPath(bad), /refusing/);
  }
  for (const bad of ['..', '../x', '1:00.0', '0000:01:00.0/..', '']) assert.throws(() => devicePath(bad), /refusing/);
  for (const bad of ['..', '.', '', 'a/b', '../../../outside']) assert.throws(() => modulesAliasPath(bad), /refusing/);
  assert.equal(driverPath('vfio-pci'), '/sys/bus/pci/drivers/vfio-pci');
  assert.equal(modulesAliasPath('6.1.0-13-amd64+'), '/lib/modules/6.1.0-13-amd64+/modules.alias');

  assert.equal(checkDriverOption(' vfio-pci ', '--to'), 'vfio-pci');
  for (const bad of ['', ' ', '..', '../../x', 'a b', 'x'.repeat(100_000)]) {
    throwsCode(() => checkDriverOption(bad, '--variant'), ExitCode.USAGE, /^--variant /);
    const err = (() => {
      try {
        checkDriverOption(bad, '--variant');
      } catch (e) {
        return e as VfioctlError;
      }
      return undefined;
    })()!;
    assert.ok(`${err.what}: ${err.why}`.length < 200, 'the message quotes a short prefix only');
  }

  const { root } = setup(t);
  const fsr = new FsRoot(root);
  const mk = (p: string) => fs.mkdirSync(path.join(root, p), { recursive: true });
  mk('sys/module/evil/drivers');
  fs.symlinkSync('../../../bus/pci/drivers', path.join(root, 'sys/module/evil/drivers/pci:..'));
  mk('sys/bus/pci/drivers/e1000e');
  fs.symlinkSync('../../../../..', path.join(root, 'sys/bus/pci/drivers/e1000e/module'));
  assert.equal(loadedDriverOfModule(fsr, 'evil'), undefined);
  assert.equal(moduleOfDriver(fsr, 'e1000e'), undefined);
  assert.equal(moduleOfDriver(fsr, '..'), undefined);
  throwsCode(() => resolveDriverName(fsr, '../../..', null), ExitCode.USAGE, /driver "..\/..\/.."/);
  throwsCode(() => driverOfModule(fsr, 'a/b'), ExitCode.USAGE, /module/);
  fs.mkdirSync(path.join(root, 'lib/modules/6.1.0'), { recursive: true });
  fs.writeFileSync(path.join(root, 'lib/modules/6.1.0/modules.alias'), 'alias vfio_pci:v*d*sv*sd*bc*sc*i* ../../x\nalias vfio_pci:v*d*sv*sd*bc*sc*i* mlx5_vfio_pci\n');
  assert.deepEqual(readVfioAliases(fsr, '6.1.0').aliases!.map((a) => a.module), ['mlx5_vfio_pci']);
  assert.equal(readVfioAliases(fsr, '../../..').aliases, null, 'an osrelease that is not one path component reads nothing');
});

test('input is bounded: JSON nesting, the 1 MiB cap on files and standard input, short quotes in messages', async (t) => {
  assert.doesNotThrow(() => parseJsonWithPositions(`${'['.repeat(MAX_DEPTH)}${']'.repeat(MAX_DEPTH)}`));
  assert.throws(() => parseJsonWithPositions('['.repeat(200_000)), /nested deeper than 64 levels/);
  assert.throws(() => parseJsonWithPositions(`{"${'k'.repeat(1000)}":1,"${'k'.repeat(1000)}":2}`), (e: Error) => e.message.length < 100);
  assert.throws(() => parseDesiredState(JSON.stringify({ schemaVersion: 1, devices: [{ match: 'x'.repeat(100_000), driver: 'auto' }] })),
    (e: VfioctlError) => e.code === ExitCode.USAGE && e.why.length < 200 && /longer than 64/.test(e.why));
  assert.throws(() => parseDesiredState(JSON.stringify({ schemaVersion: 1, devices: [{ match: '0000:01:00.0', driver: '..' }] })), /devices\[0\]\.driver: "\.\." is not a driver name/);
  assert.equal(parseDesiredState(JSON.stringify({ schemaVersion: 1, devices: [{ match: '0000:01:00.0', driver: 'host' }, { match: '0000:02:00.0', driver: 'auto' }] })).devices.length, 2);

  const { base } = setup(t);
  const big = path.join(base, 'big.json');
  fs.writeFileSync(big, ' '.repeat(INPUT_MAX_BYTES + 1));
  await assert.rejects(readDesiredInput(big, undefined, base), (e: VfioctlError) => e.code === ExitCode.USAGE && /larger than 1048576 bytes/.test(e.why));
  await assert.rejects(readDesiredInput('/dev/zero', undefined, base), (e: VfioctlError) => e.code === ExitCode.USAGE);
  await assert.rejects(readDesiredInput(base, undefined, base), (e: VfioctlError) => e.code === ExitCode.USAGE && /directory/.test(e.why));
  await assert.rejects(readDesiredInput('-', async (max) => 'y'.repeat((max ?? 0) + 1), base), (e: VfioctlError) => e.code === ExitCode.USAGE);
  let asked: number | undefined;
  assert.equal((await readDesiredInput('-', async (max) => ((asked = max), '{}'), base)).text, '{}');
  assert.equal(asked, INPUT_MAX_BYTES, 'standard input is read with the cap');

  // readFdCapped stops after cap + 1 bytes of an endless source.
  const zero = fs.openSync('/dev/zero', 'r');
  t.after(() => fs.closeSync(zero));
  assert.equal(readFdCapped(zero, 1000).length, 1001);
});

test('a failing standard output: the writer keeps the error and stops; run exits 1 and says why on stderr', async (t) => {
  const { base } = setup(t);
  const w = fdWriter(987654, () => assert.fail('not a reader going away'));
  assert.equal(w.write('x'), false);
  assert.match(String(w.failure), /EBADF/);
  assert.equal(w.write('y'), false, 'later texts are dropped');

  let stderr = '';
  const code = await run(['--root', base, 'groups'], {
    stdout: { write: () => false, failure: Object.assign(new Error('no space'), { code: 'ENOSPC' }) },
    stderr: { write: (s: string) => (stderr += s) },
    env: { NO_COLOR: '1' }, isTTY: false, runner: recordingRunner().runner,
  });
  assert.equal(code, ExitCode.FAILURE);
  assert.equal(stderr, 'vfioctl: cannot write to standard output: no space left (ENOSPC)\n');
});

test('sriov_numvfs is capped by sriov_totalvfs (and TotalVFs by its 16-bit register): a garbage count reads no more links', (t) => {
  const { root: base, cleanup } = tempRoot('vfioctl-sriov-cap-');
  t.after(cleanup);
  const PF = '0000:02:00.0';
  buildTree(base, { devices: [
    { bdf: '0000:00:01.0', id: '8086:347a', class: '060400', driver: 'pcieport', group: 1 },
    { bdf: PF, parent: '0000:00:01.0', id: '8086:1572', class: '020000', driver: 'i40e', group: 2, sriov: { total: 4, num: 2 } },
    { bdf: '0000:02:02.0', parent: '0000:00:01.0', id: '8086:154c', class: '020000', group: 3, physfn: PF },
    { bdf: '0000:02:02.1', parent: '0000:00:01.0', id: '8086:154c', class: '020000', group: 4, physfn: PF },
  ] });
  const dir = fs.realpathSync(path.join(base, 'sys/bus/pci/devices', PF));
  fs.writeFileSync(path.join(dir, 'sriov_numvfs'), '2000000000\n');
  let links = 0;
  class Counting extends FsRoot {
    override readLink(p: string) {
      if (/\/virtfn\d+$/.test(p)) links++;
      return super.readLink(p);
    }
  }
  const pf = scanHost(new Counting(base)).devices.get(PF)!;
  assert.equal(pf.sriovNumVfs, 4);
  assert.equal(links, 4, 'virtfn links beyond sriov_totalvfs are not read');
  assert.deepEqual(pf.virtfns, ['0000:02:02.0', '0000:02:02.1']);
  fs.writeFileSync(path.join(dir, 'sriov_totalvfs'), '2000000000\n');
  links = 0;
  const garbage = scanHost(new Counting(base)).devices.get(PF)!;
  assert.equal(garbage.sriovTotalVfs, null, 'a TotalVFs no register can hold is garbage');
  assert.equal(links, 0);
});
