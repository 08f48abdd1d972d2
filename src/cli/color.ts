import { Chalk, type ChalkInstance } from 'chalk';

export type ColorLevel = 0 | 1 | 2 | 3;

/**
 * Decide colour once. chalk itself ignores NO_COLOR (chalk/supports-color#74), so the
 * rule lives here: a flag on the command line wins (--no-color, --color), then NO_COLOR,
 * then FORCE_COLOR, otherwise colour only on a TTY that is not "dumb".
 */
export function resolveColorLevel(env: Record<string, string | undefined>, isTTY: boolean, flag?: boolean): ColorLevel {
  if (flag === false) return 0;
  if (flag === true) return 1;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  if (env.FORCE_COLOR !== undefined) {
    const n = Number(env.FORCE_COLOR);
    return env.FORCE_COLOR === '' || env.FORCE_COLOR === 'true' ? 1 : Number.isInteger(n) && n >= 0 && n <= 3 ? (n as ColorLevel) : 1;
  }
  return !isTTY || env.TERM === 'dumb' ? 0 : 1;
}

export const makeChalk = (level: ColorLevel): ChalkInstance => new Chalk({ level });
