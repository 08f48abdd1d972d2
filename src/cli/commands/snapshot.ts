import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { VfioctlError, usageError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import { takeSnapshot } from '../../snapshot/index.js';
import { openSession, type CliContext } from '../context.js';

interface SnapshotOptions {
  tar?: string;
}

function ensureEmptyDir(dir: string): void {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw usageError(`snapshot target ${dir}`, 'exists and is not a directory');
    if (fs.readdirSync(dir).length > 0) throw usageError(`snapshot target ${dir}`, 'is not empty', 'give a new or empty directory');
  }
  fs.mkdirSync(dir, { recursive: true });
}

export function registerSnapshot(program: Command, ctx: CliContext): void {
  program
    .command('snapshot')
    .description('copy the sysfs, /dev/vfio, /proc and modules.alias parts vfioctl reads into DIR (use it with --root)')
    .argument('[dir]', 'new or empty directory to write the tree into')
    .option('--tar <file>', 'write a gzip-compressed tar archive instead of (or as well as) DIR')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (dir: string | undefined, opts: SnapshotOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (dir === undefined && opts.tar === undefined) throw usageError('snapshot', 'give a directory, --tar FILE, or both');
      const temp = dir === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), 'vfioctl-snapshot-')) : path.resolve(dir);
      if (dir !== undefined) ensureEmptyDir(temp);
      try {
        const stats = takeSnapshot(s.fs.root, temp, s.fs.root === '/' ? os.release() : null);
        let tarFile: string | null = null;
        if (opts.tar !== undefined) {
          tarFile = path.resolve(opts.tar);
          const r = await ctx.runner('tar', ['-C', temp, '-czf', tarFile, '.']);
          if (r.exitCode !== 0) {
            throw new VfioctlError(ExitCode.FAILURE, `tar into ${tarFile}`, r.stderr.trim() || `tar exited ${r.exitCode}`);
          }
        }
        if (s.json) {
          s.printJson({ changed: true, dir: dir === undefined ? null : temp, tar: tarFile, release: stats.release, devices: stats.devices,
            files: stats.files, links: stats.links, dirs: stats.dirs, skipped: stats.skipped });
        } else {
          s.print(`snapshot of ${stats.devices} PCI functions (${stats.files} files, ${stats.links} links) ` +
            `written to ${[dir === undefined ? null : temp, tarFile].filter(Boolean).join(' and ')}` +
            `; use it with: vfioctl --root ${dir === undefined ? 'DIR' : temp} groups`);
        }
      } finally {
        if (dir === undefined) fs.rmSync(temp, { recursive: true, force: true });
      }
    });
}
