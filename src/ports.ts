/**
 * The ports between vfioctl's core and the outside world, below the CLI layer so the
 * executor, binder and provisioning code need nothing from src/cli.
 */
export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with an argument array (never a shell string). Injected so tests can record. */
export type Runner = (file: string, args: readonly string[]) => Promise<RunResult>;

export interface Writer {
  write(text: string): unknown;
}
