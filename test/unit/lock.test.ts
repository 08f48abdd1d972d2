import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tempRoot } from '../helpers/tree.js';

const RACER = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/lock-racer.js');

test('lock: 6 processes racing over 50 rounds each never hold it at once; a killed holder frees it', async (t) => {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  const log = path.join(root, 'race.log');
  const racers = Array.from({ length: 6 }, () => spawn(process.execPath, [RACER, root, log, '50'], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const errors = racers.map((c) => {
    let text = '';
    c.stderr!.on('data', (b: Buffer) => (text += b.toString()));
    return () => text;
  });
  const codes = await Promise.all(racers.map((c) => new Promise<number | null>((r) => c.on('close', (code) => r(code)))));
  assert.deepEqual(codes, [0, 0, 0, 0, 0, 0], `racers' stderr: ${errors.map((e) => e()).join('\n')}`);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines.length, 6 * 50 * 2);
  let inside: string | null = null;
  for (const [i, line] of lines.entries()) {
    const [what, pid] = line.split(' ');
    if (what === 'enter') {
      assert.equal(inside, null, `line ${i}: ${pid} entered while ${inside} was inside`);
      inside = pid!;
    } else {
      assert.equal(inside, pid, `line ${i}: ${pid} left without being inside`);
      inside = null;
    }
  }
  // SIGKILL a holder in its critical section: the kernel frees the lock, the next racer gets it.
  const holder = spawn(process.execPath, [RACER, root, log, '1'], { stdio: 'ignore', env: { ...process.env, RACER_HOLD_MS: '30000' } });
  const entered = `enter ${holder.pid}`;
  for (let i = 0; i < 500 && !fs.readFileSync(log, 'utf8').includes(entered); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(fs.readFileSync(log, 'utf8').includes(entered), 'the holder took the lock');
  holder.kill('SIGKILL');
  await new Promise((r) => holder.on('exit', r));
  const next = spawn(process.execPath, [RACER, root, log, '1'], { stdio: 'ignore' });
  assert.equal(await new Promise((r) => next.on('exit', r)), 0);
  assert.equal((fs.statSync(path.join(root, 'run/vfioctl')).mode & 0o777), 0o700, 'the state directory is root\'s alone');
});
