/**
 * A chain: boots of one disk overlay in order, each running one step. A "reboot" is the next
 * boot of the same overlay, with the kernel and initramfs the guest left in its /boot.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bootArgs, createOverlay, guestBoot, runQemu, type BootImage } from './qemu.js';

export interface Boot {
  readonly name: string;
  /** step.sh and any files it reads, written to the labin share. */
  readonly files: Readonly<Record<string, string>>;
  /** QEMU -device arguments of this boot's topology. */
  readonly devices: readonly string[];
}

export interface BootRun {
  readonly name: string;
  readonly outDir: string;
  readonly consoleLog: string;
  readonly seconds: number;
  /** The guest's uptime when the step started: how long the boot itself took. */
  readonly bootSeconds: number | null;
  /** null: the step ran to its end; otherwise why this boot failed. */
  readonly failure: string | null;
}

export interface ChainOptions {
  readonly image: BootImage;
  readonly workDir: string;
  readonly projDir: string;
  readonly timeoutSec: number;
  readonly smp: number;
}

/** The project as the guest installs it (lab-step): the built bundle, schema, Ansible collection. */
export function stageProject(repo: string, dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'dist'), { recursive: true });
  for (const p of ['bin', 'package.json', 'schema', 'man', 'contrib']) fs.cpSync(path.join(repo, p), path.join(dir, p), { recursive: true });
  for (const f of fs.readdirSync(path.join(repo, 'dist'))) {
    if (f.endsWith('.cjs') || f.endsWith('.cache')) fs.copyFileSync(path.join(repo, 'dist', f), path.join(dir, 'dist', f));
  }
  // Another stamp than the one on a disk means: install this copy.
  fs.writeFileSync(path.join(dir, '.stamp'), crypto.randomUUID() + '\n');
}

export async function runChain(name: string, boots: readonly Boot[], o: ChainOptions): Promise<BootRun[]> {
  const dir = path.join(o.workDir, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const disk = path.join(dir, 'disk.qcow2');
  createOverlay(o.image, disk);
  let kernel = path.join(o.image.dir, 'boot', `vmlinuz-${o.image.kver}`);
  let initrd = path.join(o.image.dir, 'boot', `initrd.img-${o.image.kver}`);
  const runs: BootRun[] = [];
  for (const [i, b] of boots.entries()) {
    const base = path.join(dir, `${i + 1}-${b.name}`);
    const inDir = path.join(base, 'in');
    const outDir = path.join(base, 'out');
    let run: BootRun | null = null;
    // One retry when the guest never reached the step (an early hang under TCG): nothing of the
    // step has touched the disk then.
    for (let attempt = 1; attempt <= 2 && run === null; attempt++) {
      for (const d of [inDir, outDir]) {
        fs.rmSync(d, { recursive: true, force: true });
        fs.mkdirSync(d, { recursive: true });
      }
      for (const [f, text] of Object.entries(b.files)) fs.writeFileSync(path.join(inDir, f), text, { mode: 0o644 });
      const consoleLog = path.join(base, attempt === 1 ? 'console.log' : 'console.retry.log');
      const r = await runQemu(bootArgs({ kernel, initrd, disk, inDir, outDir, projDir: o.projDir, devices: b.devices, smp: o.smp }), consoleLog, o.timeoutSec);
      const started = fs.existsSync(path.join(outDir, 'started'));
      if (!started && attempt === 1) continue;
      const rcFile = path.join(outDir, 'step.rc');
      const uptime = readOr(path.join(outDir, 'uptime.txt'));
      const failure = r.timedOut ? `timed out after ${o.timeoutSec}s` : !started ? `the step never started (QEMU exit ${r.exitCode})`
        : !fs.existsSync(rcFile) ? `the step did not finish (QEMU exit ${r.exitCode})` : null;
      run = { name: b.name, outDir, consoleLog, seconds: r.seconds, bootSeconds: uptime ? Number(uptime) : null, failure };
    }
    runs.push(run!);
    if (run!.failure) break;
    const next = guestBoot(outDir, o.image.kver);
    if (!next) {
      runs[runs.length - 1] = { ...run!, failure: 'the guest left no kernel and initramfs on its output share' };
      break;
    }
    ({ kernel, initrd } = next);
  }
  return runs;
}

export function readOr(file: string, fallback = ''): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/**
 * The runs a previous `runChain` left in workDir, without booting (LAB_BOOT_REPLAY=1): to work
 * on the assertions against a real guest's evidence in seconds.
 */
export function replayChain(name: string, boots: readonly Boot[], workDir: string): BootRun[] {
  const runs: BootRun[] = [];
  for (const [i, b] of boots.entries()) {
    const base = path.join(workDir, name, `${i + 1}-${b.name}`);
    const outDir = path.join(base, 'out');
    if (!fs.existsSync(outDir)) break;
    const uptime = readOr(path.join(outDir, 'uptime.txt'));
    const failure = fs.existsSync(path.join(outDir, 'step.rc')) ? null : 'the step did not finish (replayed)';
    runs.push({ name: b.name, outDir, consoleLog: path.join(base, 'console.log'), seconds: 0, bootSeconds: uptime ? Number(uptime) : null, failure });
  }
  return runs;
}
