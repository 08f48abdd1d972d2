/**
 * Kernel command line parameters, the way the kernel splits them: whitespace-separated,
 * double quotes group a value, `-` and `_` are the same in parameter names.
 */
export interface CmdlineParam {
  /** Name with `-` folded to `_` (`vfio_pci.ids`). */
  readonly name: string;
  /** Value after the first `=`, or null for a bare flag. */
  readonly value: string | null;
  /** The token as written. */
  readonly raw: string;
}

export function parseCmdline(cmdline: string): CmdlineParam[] {
  const out: CmdlineParam[] = [];
  const re = /(?:[^\s"]+|"[^"]*")+/g;
  for (const m of cmdline.matchAll(re)) {
    const raw = m[0];
    const eq = raw.indexOf('=');
    const name = (eq < 0 ? raw : raw.slice(0, eq)).replace(/"/g, '').replace(/-/g, '_');
    const value = eq < 0 ? null : raw.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    out.push({ name, value, raw });
  }
  return out;
}

/** Last value given for a parameter (the kernel's own rule for repeated core parameters). */
export function paramValue(params: readonly CmdlineParam[], name: string): string | null | undefined {
  const hits = params.filter((p) => p.name === name);
  return hits.length === 0 ? undefined : hits[hits.length - 1]!.value;
}
