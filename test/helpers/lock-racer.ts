import * as fs from 'node:fs';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { takeLock } from '../../src/exec/lock.js';

/**
 * One racer of the lock test: ROUNDS times take vfioctl's lock, append "enter PID" and
 * "leave PID" to LOG around a short critical section, release. Two racers inside at once
 * show up as two enters in a row.
 */
const [root, log, rounds] = process.argv.slice(2);
const fsr = new FsRoot(root!);
for (let i = 0; i < Number(rounds); i++) {
  const lock = await takeLock(fsr, { waitMs: 60_000 });
  fs.appendFileSync(log!, `enter ${process.pid}\n`);
  await new Promise((r) => setTimeout(r, Number(process.env.RACER_HOLD_MS ?? Math.random() * 3)));
  fs.appendFileSync(log!, `leave ${process.pid}\n`);
  await lock.release();
}
