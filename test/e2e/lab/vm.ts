/**
 * Host side: boot one lab VM for a topology and collect what the guest wrote to
 * its results share. QEMU runs from an argument array with a hard timeout, so a
 * hung guest costs minutes, not CI's whole budget.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Topology } from './topologies.js';

/** The lab's kernels: Debian's 6.1 (no cdev) and the 6.12 one built with IOMMUFD and VFIO_DEVICE_CDEV. */
export type LabKernel = 'debian' | 'cdev';
export const LAB_KERNELS: readonly LabKernel[] = ['debian', 'cdev'];

export interface LabPaths {
  repo: string;
  e2e: string;
  cache: string;
  work: string;
  kernel: LabKernel;
  kver: string;
  /** The unpacked kernel: boot/vmlinuz-<kver> and lib/modules/<kver>/. */
  kroot: string;
}

/** LAB_KERNEL=debian|cdev|all (default all): the kernels the lab boots. */
export function labKernels(env: string | undefined): LabKernel[] {
  const v = (env ?? 'all').trim();
  if (v === 'all' || v === '') return [...LAB_KERNELS];
  const picked = v.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = picked.find((x) => !(LAB_KERNELS as readonly string[]).includes(x));
  if (bad !== undefined) throw new Error(`LAB_KERNEL: unknown kernel '${bad}' (debian, cdev or all)`);
  return picked as LabKernel[];
}

/** Where a lab kernel lives, from the descriptor setup.sh or kernel/build-cdev.sh wrote. */
export function labPaths(repo: string, kernel: LabKernel = 'debian'): LabPaths {
  const e2e = path.join(repo, 'test', 'e2e');
  const cache = path.join(e2e, 'cache');
  const env = fs.readFileSync(path.join(cache, `kernel-${kernel}.env`), 'utf8');
  const field = (k: string) => {
    const m = new RegExp(`^${k}=(.*)$`, 'm').exec(env);
    if (!m) throw new Error(`${k} missing from cache/kernel-${kernel}.env`);
    return m[1]!.trim();
  };
  return { repo, e2e, cache, work: path.join(e2e, 'work'), kernel, kver: field('KVER'), kroot: path.join(cache, field('KROOT')) };
}

export type LabMode = 'test' | 'capture' | 'debug';

export interface VmResult {
  topology: string;
  /** QEMU exit code, or null when killed by the timeout. */
  exitCode: number | null;
  timedOut: boolean;
  seconds: number;
  outDir: string;
  consoleLog: string;
}

export function qemuArgs(p: LabPaths, t: Topology, mode: LabMode, outDir: string, smp: number): string[] {
  const append = [
    // no_timer_check: under TCG on a busy host the IO-APIC timer check can fail and panic.
    'console=ttyS0', 'intel_iommu=on', 'panic=-1', 'quiet', 'loglevel=4', 'no_timer_check',
    `lab.repo=${path.join(p.work, 'stage')}`, `lab.kmods=${path.join(p.kroot, 'lib', 'modules', p.kver)}`, `lab.topology=${t.name}`, `lab.mode=${mode}`,
    `lab.kernel=${p.kernel}`,
  ].join(' ');
  return [
    '-accel', 'tcg,thread=multi', '-smp', String(smp), '-m', '2048',
    '-machine', 'q35,kernel-irqchip=split',
    '-device', 'intel-iommu,intremap=on,caching-mode=on',
    '-nographic', '-no-reboot', '-nic', 'none',
    ...(t.qemuArgs.includes('-vga') ? [] : ['-vga', 'none']),
    '-kernel', path.join(p.kroot, 'boot', `vmlinuz-${p.kver}`),
    '-initrd', path.join(p.work, p.kernel, 'initramfs.cpio.gz'),
    '-append', append,
    // The host's root, read-only; remap keeps inode numbers unique across host mounts.
    '-fsdev', 'local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,bus=pcie.0,addr=0x10',
    '-fsdev', `local,id=labout,path=${outDir},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=labout,mount_tag=labout,bus=pcie.0,addr=0x11',
    ...t.qemuArgs,
  ];
}

export async function bootVm(p: LabPaths, t: Topology, mode: LabMode, opts: { timeoutSec: number; smp: number }): Promise<VmResult> {
  const outDir = path.join(p.work, 'runs', p.kernel, `${t.name}-${mode}`);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const consoleLog = path.join(outDir, 'console.log');
  const log = fs.openSync(consoleLog, 'w');
  const args = qemuArgs(p, t, mode, outDir, opts.smp);
  fs.writeFileSync(path.join(outDir, 'qemu-args.json'), JSON.stringify(args, null, 1) + '\n');
  const started = Date.now();
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', log, log] });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutSec * 1000);
  const exitCode = await new Promise<number | null>((resolve) => {
    child.on('exit', (code) => resolve(code));
    child.on('error', () => resolve(-1));
  });
  clearTimeout(timer);
  fs.closeSync(log);
  return { topology: t.name, exitCode, timedOut, seconds: (Date.now() - started) / 1000, outDir, consoleLog };
}

/** Last lines of the guest console, without the firmware's escape sequences. */
export function consoleTail(file: string, lines = 60): string {
  let text = '';
  try {
    text = fs.readFileSync(file, 'latin1');
  } catch {
    return '(no console log)';
  }
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').replace(/\r/g, '');
  return clean.split('\n').slice(-lines).join('\n');
}

/** Run async jobs with at most `limit` at a time, results in input order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return results;
}
