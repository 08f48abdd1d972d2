import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempRoot } from '../helpers/tree.js';
import { BIN, REPO, cli } from '../helpers/cli.js';

// The shipped entry point: bin/vfioctl loading dist/vfioctl.cjs through its code cache, run
// as a process the way users and provisioning scripts run it.
const LAB = path.join(REPO, 'test/fixtures/lab-switch/host');

function runBin(bin: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', VFIOCTL_DEBUG: '1', ...env } });
  const said = /^vfioctl: code cache: (\w+) \(([^)]+)\)$/m.exec(r.stderr);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.replace(/^vfioctl: code cache: .*\n/m, ''), cache: said?.[1], cacheFile: said?.[2] };
}

/** A copy of bin/ and dist/ (node_modules linked) whose cache a test may spoil. */
function installCopy(t: { after: (f: () => void) => void }): { bin: string; cacheFile: string } {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  fs.cpSync(path.join(REPO, 'bin'), path.join(root, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(root, 'dist'));
  for (const f of ['vfioctl.cjs', 'vfioctl.cjs.cache', 'vfioctl.cjs.device.cache', 'execa.cjs']) fs.copyFileSync(path.join(REPO, 'dist', f), path.join(root, 'dist', f));
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
  return { bin: path.join(root, 'bin/vfioctl'), cacheFile: path.join(root, 'dist/vfioctl.cjs.cache') };
}

test('bin/vfioctl prints what the in-process CLI prints, through the code cache the build made', async () => {
  const direct = await cli(['groups', '--json'], LAB);
  const r = runBin(BIN, ['--root', LAB, 'groups', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.cache, 'used');
  assert.equal(r.stderr, '');
  assert.deepEqual(JSON.parse(r.stdout), direct.json());
  assert.ok(direct.json().groups.length > 5);
});

test('run as a program (its #! line), bin/vfioctl starts node without NODE_EXTRA_CA_CERTS, through a symlink on PATH too, arguments intact', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  fs.mkdirSync(path.join(root, 'bin'));
  fs.symlinkSync(BIN, path.join(root, 'bin/vfioctl'));
  // A CA file that cannot be read makes Node warn at start-up: the warning tells whether Node was given it.
  const env = { PATH: `${root}/bin:${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`, NO_COLOR: '1', NODE_EXTRA_CA_CERTS: path.join(root, 'missing.pem') };
  const args = ['--root', LAB, 'show', '0000:99:00.0 "$x" `y`'];
  for (const file of [BIN, 'vfioctl']) {
    const r = spawnSync(file, args, { encoding: 'utf8', env });
    assert.equal(r.status, 2, `${file}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /extra certs/i, file);
    assert.match(r.stderr, /^vfioctl: device selector "0000:99:00\.0 \\"\$x\\" `y`": contains blanks/, `${file}: the argument reaches vfioctl as given`);
  }
  // Control: node running the file itself keeps the variable, and Node says so.
  const viaNode = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8', env });
  assert.equal(viaNode.status, 0);
  assert.match(viaNode.stderr, /Ignoring extra certs/);
});

test('each command starts from the code cache trained on it: show and reset-plan from the device cache, the others from the default one', () => {
  const LAB_SRIOV = path.join(REPO, 'test/fixtures/lab-sriov/host');
  const cases: [string[], string][] = [
    [['--root', LAB_SRIOV, 'show', '0000:01:00.1', '--json'], 'vfioctl.cjs.device.cache'],
    [['--root', LAB_SRIOV, 'reset-plan', '0000:01:00.1', '--json'], 'vfioctl.cjs.device.cache'],
    [['--root', LAB_SRIOV, 'groups', '--json'], 'vfioctl.cjs.cache'],
    [['--root', LAB_SRIOV, 'doctor', '--json'], 'vfioctl.cjs.cache'],
    [['--version'], 'vfioctl.cjs.cache'],
  ];
  for (const [args, file] of cases) {
    const r = runBin(BIN, args);
    assert.equal(r.cacheFile, file, args.join(' '));
    assert.equal(r.cache, 'used', args.join(' '));
    assert.ok(r.code === 0 || r.code === 1, `${args.join(' ')}: ${r.stderr}`);
  }
});

test('without its device cache show compiles from source, with the same output', (t) => {
  const { bin, cacheFile } = installCopy(t);
  const device = cacheFile.replace(/\.cache$/, '.device.cache');
  const args = ['--root', LAB, 'show', '0000:03:00.0', '--json'];
  const good = runBin(bin, args);
  assert.equal(good.cache, 'used');
  assert.equal(good.code, 0, good.stderr);
  fs.rmSync(device);
  const none = runBin(bin, args);
  assert.equal(none.cache, 'none');
  assert.equal(none.cacheFile, 'vfioctl.cjs.device.cache');
  assert.equal(none.stdout, good.stdout);
});

test('bin/vfioctl exits with the documented code and a one-line error', () => {
  const r = runBin(BIN, ['--root', LAB, 'show', '0000:99:00.0']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /^vfioctl: device 0000:99:00\.0: no such PCI device\nhint: /);
  assert.equal(r.stdout, '');
});

test('a cache from another build is never used; a damaged one is refused by V8; the output stays the same', (t) => {
  const { bin, cacheFile } = installCopy(t);
  const args = ['--root', LAB, 'groups'];
  const good = runBin(bin, args);
  assert.equal(good.cache, 'used');
  assert.equal(good.code, 0);

  const data = fs.readFileSync(cacheFile);
  // Another build's id in front of otherwise valid code: the code must not run.
  const other = Buffer.from(data);
  other.write('0'.repeat(40), 0, 'latin1');
  fs.writeFileSync(cacheFile, other);
  const stale = runBin(bin, args);
  assert.equal(stale.cache, 'stale');
  assert.equal(stale.stdout, good.stdout);

  // The right id, damaged code: V8's own checks reject it and the source is compiled.
  const damaged = Buffer.from(data);
  for (let i = 40; i < damaged.length; i += 97) damaged[i] = damaged[i]! ^ 0xff;
  fs.writeFileSync(cacheFile, damaged);
  const rejected = runBin(bin, args);
  assert.equal(rejected.cache, 'rejected');
  assert.equal(rejected.stdout, good.stdout);

  fs.rmSync(cacheFile);
  const none = runBin(bin, args);
  assert.equal(none.cache, 'none');
  assert.equal(none.stdout, good.stdout);
});

test('commands that run programs load execa from its own bundle (snapshot --tar runs tar)', (t) => {
  const { bin } = installCopy(t);
  const { root: out, cleanup } = tempRoot();
  t.after(cleanup);
  const tarFile = path.join(out, 'lab.tar.gz');
  const r = runBin(bin, ['--root', LAB, 'snapshot', path.join(out, 'snap'), '--tar', tarFile]);
  assert.equal(r.code, 0, r.stderr);
  const list = spawnSync('tar', ['-tzf', tarFile], { encoding: 'utf8' });
  assert.equal(list.status, 0);
  assert.ok(list.stdout.split('\n').some((l) => l.endsWith('sys/bus/pci/devices/0000:03:00.0')), 'the tarball holds the devices');
});
