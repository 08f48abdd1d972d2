/** Exit codes: one table, repeated in man/vfioctl.8 (EXIT STATUS). */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  REFUSED: 4,
  PERMISSION: 5,
  INTERNAL: 70,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];
