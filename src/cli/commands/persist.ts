import type { Command } from 'commander';
import { VfioctlError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import { parseDesiredState, type DesiredState } from '../../provision/desired-state.js';
import { ALL_PERSIST_PATHS, INITRAMFS_FILES, buildPersistSet, diffFiles, type FileAction, type PersistFile } from '../../provision/persist.js';
import { readDesiredInput } from '../../provision/read-input.js';
import { readVfioAliases } from '../../sysfs/modules.js';
import { scanHost } from '../../sysfs/scan.js';
import { execute } from '../../exec/executor.js';
import type { Step } from '../../exec/steps.js';
import { execOptions, withChange } from '../change.js';
import { rollbackJson } from '../render/bind.js';
import { openSession, type CliContext, type Session } from '../context.js';

interface PersistOptions {
  dryRun?: boolean;
  remove?: boolean;
}

/** How the unit starts vfioctl: through PATH by default, or VFIOCTL_EXEC (an absolute path). */
export function execWords(env: Record<string, string | undefined>): string[] {
  const exec = env.VFIOCTL_EXEC?.trim();
  return exec && exec.startsWith('/') ? [exec] : ['/usr/bin/env', 'vfioctl'];
}

/**
 * Install (or with remove, delete) the persistence files and report them. Shared with
 * `apply --persist`. Returns whether anything changed.
 */
export async function runPersist(s: Session, state: DesiredState | null, source: string, opts: PersistOptions, print = true): Promise<{ changed: boolean; rebuildInitramfs: boolean; files: { path: string; action: FileAction; content: string | null }[]; warnings: string[] }> {
  let files: PersistFile[];
  let warnings: string[] = [];
  if (opts.remove) {
    files = ALL_PERSIST_PATHS.map((path) => ({ path, content: null }));
  } else {
    const host = scanHost(s.fs);
    const aliases = readVfioAliases(s.fs, host.kernelRelease).aliases;
    const set = buildPersistSet(s.fs, host, aliases, state!.devices, source, execWords(s.ctx.env));
    files = set.files;
    warnings = set.warnings;
  }
  const diff = diffFiles(s.fs, files, opts.remove === true);
  const changed = diff.some((d) => d.action !== 'unchanged' && d.action !== 'absent');
  // The initramfs holds a copy of the rule: any change to it is only seen there once rebuilt.
  const rebuildInitramfs = diff.some((d) => INITRAMFS_FILES.includes(d.file.path) && d.action !== 'unchanged' && d.action !== 'absent');
  if (!opts.dryRun) {
    // The whole set of files or none of it: the executor keeps each file's old content for undo.
    const steps: Step[] = diff.filter((d) => d.action === 'create' || d.action === 'replace' || d.action === 'remove').map(({ file, action }) => ({
      op: 'file', path: file.path, content: action === 'remove' ? null : file.content, link: action === 'remove' ? null : file.link ?? null, mode: file.mode ?? 0o644,
    }));
    const r = steps.length === 0 ? null : await execute({ ...execOptions(s, opts.remove ? 'persist --remove' : `persist ${source}`), fs: s.fs }, (tx) => tx.run(steps));
    if (r && !r.ok) {
      if (s.json && print) s.printJson({ changed: !r.rolledBack, dryRun: false, remove: opts.remove === true, rebuildInitramfs: rebuildInitramfs && !r.rolledBack, files: diff.map((d) => ({ path: d.file.path, action: d.action, content: d.file.content })), rollback: rollbackJson(r.subjects) });
      throw new VfioctlError(r.exitCode as 1, opts.remove ? 'persist --remove' : 'persist', r.message,
        r.rolledBack ? 'every file was put back as it was; run as root, on a writable /etc' : `NOT put back: ${r.subjects.filter((x) => x.status === 'rollback-failed').map((x) => `${x.id} (fix: ${x.fix})`).join('; ')}`);
    }
    // Only the live system's managers are told; under --root there is nothing running to reload.
    if (changed && s.fs.root === '/') {
      for (const [file, args] of [['udevadm', ['control', '--reload']], ['systemctl', ['daemon-reload']]] as const) {
        const r = await s.ctx.runner(file, args).catch((e: unknown) => ({ exitCode: 127, stdout: '', stderr: String(e) }));
        if (r.exitCode !== 0) warnings.push(`${file} ${args.join(' ')} failed (${r.stderr.trim().split('\n')[0] || `exit ${r.exitCode}`}); run it by hand`);
      }
    }
  }
  if (rebuildInitramfs) {
    warnings.push(opts.remove
      ? 'the initramfs still holds the rule until it is rebuilt: run update-initramfs -u (or dracut -f) and reboot'
      : 'rebuild the initramfs (update-initramfs -u, or dracut -f) so a host driver loaded there leaves the devices alone; until then vfioctl.service moves such devices at boot');
  }
  const report = diff.map((d) => ({ path: d.file.path, action: d.action, content: d.file.content }));
  if (print) {
    for (const w of warnings) s.warn(w);
    if (s.json) s.printJson({ changed, dryRun: opts.dryRun === true, remove: opts.remove === true, rebuildInitramfs, files: report });
    else {
      const verb = (a: FileAction) => (opts.dryRun && a !== 'unchanged' && a !== 'absent' ? `would ${a}` : a);
      for (const d of diff) {
        s.print(`${verb(d.action)} ${d.file.path}${d.file.content === null && d.file.link ? ` -> ${d.file.link}` : ''}`);
        if (opts.dryRun && d.file.content !== null && d.action !== 'unchanged') s.print(d.file.content.replace(/^/gm, '    ').replace(/\s+$/, ''));
      }
    }
  }
  return { changed, rebuildInitramfs, files: report, warnings };
}

export function registerPersist(program: Command, ctx: CliContext): void {
  program
    .command('persist')
    .description('make a desired state come back at boot: a udev rule setting driver_override on add, and a systemd unit running vfioctl apply early')
    .argument('[file]', 'desired-state JSON file (as for apply), or - for standard input')
    .option('--remove', 'delete the rule, the unit, the initramfs hook and dracut module, and the installed state')
    .option('--dry-run', 'show the files without writing them')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (file: string | undefined, opts: PersistOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (opts.remove && file !== undefined) throw new VfioctlError(ExitCode.USAGE, 'persist --remove', 'takes no FILE');
      if (!opts.remove && file === undefined) throw new VfioctlError(ExitCode.USAGE, 'persist', 'missing FILE', 'vfioctl persist FILE (or - for standard input), or vfioctl persist --remove');
      let state: DesiredState | null = null;
      let source = '';
      if (file !== undefined) {
        const input = await readDesiredInput(file, ctx.readStdin, process.cwd());
        state = parseDesiredState(input.text, input.source);
        source = input.source;
      }
      await withChange(s, opts.dryRun === true, () => runPersist(s, state, source, opts));
    });
}
