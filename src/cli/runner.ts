import type { Runner } from './context.js';

/** The real runner: execa with an argument array, loaded only when a command needs it. */
export const execaRunner: Runner = async (file, args) => {
  const { execa } = await import('execa');
  const r = await execa(file, [...args], { reject: false, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
};
