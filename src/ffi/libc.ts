/**
 * koffi, the foreign-function interface vfioctl reaches libc through (its npm package
 * carries prebuilt binaries: no compiler on the user's machine). Only what vfioctl uses of
 * it is declared here. Loaded on demand by the few paths that need it: probe's ioctls
 * (vfio/sys.ts) and the file calls of a long scan (sysfs/libc-file-calls.ts).
 */
export interface Koffi {
  load(name: string): { func(decl: string): (...args: unknown[]) => number };
  errno(): number;
}

/** The module object, whether it came through require or import. */
export function koffiOf(mod: unknown): Koffi {
  const m = mod as { default?: Koffi } & Koffi;
  return m.default ?? m;
}

/** glibc's soname, else musl's (Alpine). Throws what the first failed with. */
export function loadLibc(koffi: Koffi): ReturnType<Koffi['load']> {
  const names = ['libc.so.6', `libc.musl-${process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch}.so.1`];
  let first: unknown;
  for (const name of names) {
    try {
      return koffi.load(name);
    } catch (err) {
      first ??= err;
    }
  }
  throw first;
}
