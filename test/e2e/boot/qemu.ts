/**
 * Host side of the boot lab: one disk overlay per chain of boots, one QEMU run per boot.
 * A boot takes the kernel and initramfs the guest left on its output share at the previous
 * power-off (its own /boot, so an `update-initramfs -u` counts), or the image's for the first.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BootImage {
  /** test/e2e/cache/boot-<key>/ */
  readonly dir: string;
  readonly base: string;
  readonly kver: string;
}

export function bootImage(dir: string): BootImage {
  return { dir, base: path.join(dir, 'base.raw'), kver: fs.readFileSync(path.join(dir, 'KVER'), 'utf8').trim() };
}

export interface BootSpec {
  readonly kernel: string;
  readonly initrd: string;
  readonly disk: string;
  /** 9p shares: the step (read-only), the results, the project to install (read-only). */
  readonly inDir: string;
  readonly outDir: string;
  readonly projDir: string;
  readonly devices: readonly string[];
  readonly smp: number;
}

/** The kernel's command line: the lab's IOMMU, and every driver bind logged (dyndbg, dd.c). */
export const KERNEL_APPEND = [
  'root=/dev/vda', 'rw', 'console=ttyS0', 'intel_iommu=on', 'panic=-1', 'no_timer_check',
  'quiet', 'loglevel=4', 'log_buf_len=8M', 'systemd.show_status=0', 'lab.step=1',
  // driver_bound() and really_probe() report every probe and bind, initramfs included: the
  // evidence that a host driver did (or never did) take a device during boot.
  'dyndbg="file drivers/base/dd.c +p"',
].join(' ');

export function bootArgs(s: BootSpec): string[] {
  const share = (id: string, dir: string, addr: string, ro: boolean) => [
    '-fsdev', `local,id=${id},path=${dir},security_model=none${ro ? ',readonly=on' : ''}`,
    '-device', `virtio-9p-pci,fsdev=${id},mount_tag=${id},bus=pcie.0,addr=${addr}`,
  ];
  return [
    '-accel', 'tcg,thread=multi', '-smp', String(s.smp), '-m', '2048',
    '-machine', 'q35,kernel-irqchip=split',
    '-device', 'intel-iommu,intremap=on,caching-mode=on',
    '-nographic', '-no-reboot', '-nic', 'none', '-vga', 'none',
    '-kernel', s.kernel, '-initrd', s.initrd, '-append', KERNEL_APPEND,
    '-drive', `file=${s.disk},format=qcow2,if=none,id=disk0,cache=unsafe`,
    '-device', 'virtio-blk-pci,drive=disk0,bus=pcie.0,addr=0x8',
    ...share('labin', s.inDir, '0x10', true),
    ...share('labout', s.outDir, '0x11', false),
    ...share('labproj', s.projDir, '0x12', true),
    ...s.devices,
  ];
}

/** A fresh copy-on-write overlay on the cached base image: each chain starts from a clean disk. */
export function createOverlay(image: BootImage, file: string): void {
  fs.rmSync(file, { force: true });
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', image.base, '--', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img create ${file}: ${r.stderr || r.error}`);
}

export interface BootResult {
  exitCode: number | null;
  timedOut: boolean;
  seconds: number;
  consoleLog: string;
}

export async function runQemu(args: readonly string[], consoleLog: string, timeoutSec: number): Promise<BootResult> {
  fs.writeFileSync(`${consoleLog}.args.json`, JSON.stringify(args, null, 1) + '\n');
  const log = fs.openSync(consoleLog, 'w');
  const started = Date.now();
  const child = spawn('qemu-system-x86_64', [...args], { stdio: ['ignore', log, log] });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutSec * 1000);
  const exitCode = await new Promise<number | null>((resolve) => {
    child.on('exit', (code) => resolve(code));
    child.on('error', () => resolve(-1));
  });
  clearTimeout(timer);
  fs.closeSync(log);
  return { exitCode, timedOut, seconds: (Date.now() - started) / 1000, consoleLog };
}

/** The guest's /boot as it left it: vmlinuz-KVER and initrd.img-KVER on the output share. */
export function guestBoot(outDir: string, kver: string): { kernel: string; initrd: string } | null {
  const kernel = path.join(outDir, 'boot', `vmlinuz-${kver}`);
  const initrd = path.join(outDir, 'boot', `initrd.img-${kver}`);
  return fs.existsSync(kernel) && fs.existsSync(initrd) ? { kernel, initrd } : null;
}
