import type { Command } from 'commander';
import { VfioctlError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import { runChecks } from '../../doctor/checks.js';
import { readDoctorFacts } from '../../doctor/read-facts.js';
import { openSession, type CliContext } from '../context.js';
import { renderDoctor } from '../render/doctor.js';
import { personalise } from '../first-minute.js';

export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description('check that this host can use VFIO: IOMMU, interrupt remapping, modules, unsafe modes, /dev/vfio permissions')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action((_opts: unknown, cmd: Command) => {
      const s = openSession(ctx, cmd);
      // Fixes name vfioctl the way it runs here (./bin/vfioctl when not on PATH).
      const checks = runChecks(readDoctorFacts(s.fs)).map((c) => (c.fix ? { ...c, fix: personalise(ctx, c.fix) } : c));
      const failed = checks.filter((c) => c.status === 'FAIL');
      if (s.json) s.printJson({ checks: checks.map((c) => ({ id: c.id, status: c.status, code: c.code, message: c.message, fix: c.fix })), ok: failed.length === 0 });
      else s.print(renderDoctor(checks, s.chalk));
      if (failed.length) {
        throw new VfioctlError(ExitCode.FAILURE, 'doctor', `${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((c) => c.id).join(', ')}`, undefined, { errorCode: 'checks-failed' });
      }
    });
}
