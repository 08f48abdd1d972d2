import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempRoot } from '../helpers/tree.js';
import { fdWriter, isTerminal, majorOf } from '../../src/cli/stdio.js';
import { synthHost, writeHost } from '../bench/synth.js';
import { BIN, REPO } from '../helpers/cli.js';


test('fdWriter puts every byte of each text on the descriptor, multi-byte UTF-8 included', (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const file = path.join(root, 'out');
  const fd = fs.openSync(file, 'w');
  const w = fdWriter(fd, () => assert.fail('not a pipe'));
  const big = 'x'.repeat(3 << 20);
  w.write('group 13 — viable\n');
  w.write(big);
  w.write('\n✓\n');
  fs.closeSync(fd);
  assert.equal(fs.readFileSync(file, 'utf8'), `group 13 — viable\n${big}\n✓\n`);
});

test('fdWriter on a full non-blocking pipe: a write cut short goes on at the byte it stopped at, multi-byte characters included', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const file = path.join(root, 'out');
  // The reader starts late, so the pipe (64 KiB) fills and the first write is cut short;
  // libuv made the parent's end non-blocking, so later writes meet EAGAIN.
  const child = spawn('sh', ['-c', 'sleep 0.3; exec cat > "$0"', file], { stdio: ['pipe', 'ignore', 'inherit'] });
  const fd = (child.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  assert.ok(fd > 2);
  const w = fdWriter(fd, () => assert.fail('the reader is there'));
  const text = 'é✓x'.repeat(100_000) + '\n';
  assert.equal(w.write(text), true);
  assert.equal(w.write('end\n'), true);
  child.stdin.end();
  await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(w.failure, undefined);
  assert.equal(fs.readFileSync(file, 'utf8'), text + 'end\n');
});

test('isTerminal: a file is not a terminal, nor is /dev/null (a character device), nor a closed descriptor', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const fd = fs.openSync(path.join(root, 'f'), 'w');
  t.after(() => fs.closeSync(fd));
  assert.equal(await isTerminal(fd), false);
  const nul = fs.openSync('/dev/null', 'w');
  t.after(() => fs.closeSync(nul));
  assert.equal(await isTerminal(nul), false);
  assert.equal(await isTerminal(987654), false, 'a closed descriptor is not a terminal');
});

test('majorOf takes a device number apart as glibc does: /dev/null is major 1, a pty 136, and majors above 4095', () => {
  assert.equal(majorOf(fs.statSync('/dev/null').rdev), 1);
  // glibc's makedev: major bits 0-11 at 8-19, the rest at 44 and up; minor bits 0-7 at 0, the rest at 20.
  const makedev = (major: number, minor: number) => ((major & 0xfff) << 8) + (minor & 0xff) + (minor >>> 8) * 2 ** 20 + Math.floor(major / 0x1000) * 2 ** 44;
  assert.equal(majorOf(makedev(136, 3)), 136);
  assert.equal(majorOf(makedev(4, 64)), 4);
  assert.equal(majorOf(makedev(0x1234, 0x56789)), 0x1234);
});

test('isTerminal answers /dev/null without loading node:tty (and its net and stream modules)', () => {
  const probe = `import(${JSON.stringify(path.join(REPO, 'dist/src/cli/stdio.js'))}).then(async (m) => {
    const answer = await m.isTerminal(1);
    process.stderr.write(JSON.stringify({ answer, tty: process.moduleLoadList.includes('NativeModule tty') }));
  });`;
  const nul = fs.openSync('/dev/null', 'w');
  try {
    const r = spawnSync(process.execPath, ['-e', probe], { stdio: ['ignore', nul, 'pipe'], encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stderr), { answer: false, tty: false });
  } finally {
    fs.closeSync(nul);
  }
});

test('bin/vfioctl | head: the reader going away ends vfioctl quietly with status 0', async (t) => {
  // Output far larger than a pipe's buffer, so the write after the reader leaves gets EPIPE.
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  writeHost(root, synthHost(600));
  const child = spawn(process.execPath, [BIN, '--root', root, 'groups', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const first = await new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d))));
  child.stdout.destroy();
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  assert.match(first, /^\{\n {2}"schemaVersion": 1,/);
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.equal(stderr, '');
});

test('on a terminal (a pseudo-terminal from script(1)) groups fits the terminal\'s width; in a pipe, plain columns', (t) => {
  if (spawnSync('script', ['--version'], { stdio: 'ignore' }).status !== 0) return t.skip('script(1) not installed');
  const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const cmd = [process.execPath, BIN, '--root', path.join(REPO, 'test/fixtures/lab-switch/host'), 'groups', '--group', '4'].map(q).join(' ');
  // No COLUMNS: the width is the pseudo-terminal's, set by stty.
  for (const cols of [80, 120]) {
    const tty = spawnSync('script', ['-qec', `stty cols ${cols}; ${cmd}`, '/dev/null'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', TERM: 'xterm' } });
    assert.equal(tty.status, 0, tty.stderr);
    const lines = tty.stdout.replace(/\r/g, '').trimEnd().split('\n');
    assert.match(lines[0]!, /^GROUP +VIABLE +DEVICE +ID \/ NAME +CLASS +DRIVER$/);
    assert.match(lines[1]!, /^4 +no +0000:00:1f\.0 +\[8086:2918\]/);
    for (const l of lines) assert.ok(l.length <= cols, `${l.length} > ${cols}: ${l}`);
    assert.ok(lines.some((l) => l.includes('…')), 'names are shortened to fit');
  }
  const pipe = spawnSync(process.execPath, [BIN, '--root', path.join(REPO, 'test/fixtures/lab-switch/host'), 'groups', '--group', '4'], { encoding: 'utf8' });
  assert.equal(pipe.status, 0);
  assert.doesNotMatch(pipe.stdout, /┌/);
  assert.match(pipe.stdout, /^GROUP +VIABLE +DEVICE/);
});
