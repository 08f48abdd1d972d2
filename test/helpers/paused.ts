import { spawn } from 'node:child_process';

export interface PausedRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The process reached the pause (and `act` was called). */
  paused: boolean;
}

/**
 * Run `node ARGS…` (vfioctl, or vfioctl on a fake kernel) with the executor's test hook set to
 * pause before step `at`; once it says it is paused, `act(pid)` signals or kills it.
 */
export function runPaused(args: readonly string[], at: number, env: Record<string, string | undefined>, act: (pid: number) => void, cwd?: string): Promise<PausedRun> {
  const child = spawn(process.execPath, [...args], {
    ...(cwd ? { cwd } : {}),
    env: { ...process.env, ...env, VFIOCTL_TEST_PAUSE_BEFORE_STEP: String(at), VFIOCTL_TEST_PAUSE_MS: '30000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let paused = false;
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => {
    stderr += d;
    if (!paused && /test hook: paused before step/.test(stderr)) {
      paused = true;
      act(child.pid!);
    }
  });
  // The streams may still hold the last output when 'exit' fires: wait for 'close'.
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, paused })));
}
